"""The transformer's MLP: out = gelu(x W_1 + b_1) W_2 + b_2, at every position.

Embedding, layer norm and GELU live in ``attention_np.layers`` (the memory models and
the exercises use them too); they are re-exported here.

Shape legend: D model width, F hidden width of the MLP (usually 4 D).
"""

import numpy as np

from .. import validate as V
from ..layers import (
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
)
from ..linear import linear_backward, linear_forward

__all__ = [
    "embedding_backward",
    "embedding_forward",
    "gelu_backward",
    "gelu_forward",
    "init_mlp_params",
    "layernorm_backward",
    "layernorm_forward",
    "mlp_backward",
    "mlp_forward",
]

MLP_KEYS = ("W_1", "b_1", "W_2", "b_2")


def init_mlp_params(d_model, d_hidden, *, rng, dtype=np.float64):
    """W_1 (D, F), W_2 (F, D) ~ N(0, 1 / fan_in); biases 0."""
    D = V.positive_int("d_model", d_model)
    F = V.positive_int("d_hidden", d_hidden)
    V.rng_arg(rng)
    return {
        "W_1": (rng.standard_normal((D, F)) / np.sqrt(D)).astype(dtype),
        "b_1": np.zeros(F, dtype=dtype),
        "W_2": (rng.standard_normal((F, D)) / np.sqrt(F)).astype(dtype),
        "b_2": np.zeros(D, dtype=dtype),
    }


def mlp_forward(x, params):
    """out = gelu(x W_1 + b_1) W_2 + b_2, applied to every position.

    Args:
        x: (..., D) inputs.
        params: dict W_1 (D, F), b_1 (F,), W_2 (F, D), b_2 (D,).

    Returns:
        out (..., D), cache.
    """
    h, c1 = linear_forward(x, params["W_1"], params["b_1"])  # (..., F)
    a, c_act = gelu_forward(h)  # (..., F)
    out, c2 = linear_forward(a, params["W_2"], params["b_2"])  # (..., D)
    return out, (c1, c_act, c2)


def mlp_backward(dout, cache):
    """Gradients of mlp_forward: dx (..., D), grads keyed like params."""
    c1, c_act, c2 = cache
    da, dW_2, db_2 = linear_backward(dout, c2)  # (checks dout's shape)
    dh = gelu_backward(da, c_act)
    dx, dW_1, db_1 = linear_backward(dh, c1)
    return dx, {"W_1": dW_1, "b_1": db_1, "W_2": dW_2, "b_2": db_2}

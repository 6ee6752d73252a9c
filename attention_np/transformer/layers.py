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
    "check_mlp_params",
    "init_mlp_params",
    "layernorm_backward",
    "layernorm_forward",
    "mlp_backward",
    "mlp_forward",
    "mlp_param_shapes",
]

WEIGHT_KEYS = ("W_1", "W_2")
BIAS_KEYS = ("b_1", "b_2")


def init_mlp_params(d_model, d_hidden, *, rng, dtype=np.float64, bias=True):
    """W_1 (D, F), W_2 (F, D) ~ N(0, 1 / fan_in); biases b_1 (F,), b_2 (D,) start at 0.

    ``bias=False`` leaves the biases out (the forward accepts both kinds of dict).
    """
    D = V.positive_int("d_model", d_model)
    F = V.positive_int("d_hidden", d_hidden)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    params = {
        "W_1": (rng.standard_normal((D, F)) / np.sqrt(D)).astype(dtype),
        "W_2": (rng.standard_normal((F, D)) / np.sqrt(F)).astype(dtype),
    }
    if V.bool_arg("bias", bias):
        params.update({"b_1": np.zeros(F, dtype=dtype), "b_2": np.zeros(D, dtype)})
    return params


def mlp_param_shapes(d_model, d_hidden, *, bias):
    """{key: shape} of MLP params (biases only when ``bias``)."""
    D, F = d_model, d_hidden
    shapes = {"W_1": (D, F), "W_2": (F, D)}
    return {**shapes, "b_1": (F,), "b_2": (D,)} if bias else shapes


def check_mlp_params(params, d_model, *, dtype=None, name="params"):
    """Raise a clear error unless ``params`` fits inputs of width d_model.

    Returns whether the dict has biases (it must carry both or neither).
    """
    V.instance(name, params, dict)
    has_bias = any(k in params for k in BIAS_KEYS)
    W_1 = params.get("W_1")
    F = W_1.shape[-1] if isinstance(W_1, np.ndarray) and W_1.ndim == 2 else 1
    if F == 0:
        raise ValueError(f"{name}['W_1']{W_1.shape} needs a hidden width F >= 1")
    shapes = mlp_param_shapes(d_model, F, bias=has_bias)
    V.check_params(params, shapes, name=name, dtype=dtype)
    return has_bias


def mlp_forward(x, params):
    """out = gelu(x W_1 + b_1) W_2 + b_2, applied to every position.

    Args:
        x: (..., D) inputs, D >= 1.
        params: dict W_1 (D, F), W_2 (F, D) and, optionally, b_1 (F,), b_2 (D,).

    Returns:
        out (..., D), cache.
    """
    x = V.float_array("x", x, min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(f"x{x.shape} needs a width D >= 1")
    has_bias = check_mlp_params(params, x.shape[-1], dtype=x.dtype)
    b_1, b_2 = (params["b_1"], params["b_2"]) if has_bias else (None, None)
    h, c1 = linear_forward(x, params["W_1"], b_1)  # (..., F)
    a, c_act = gelu_forward(h)  # (..., F)
    # W_2 sees a (rows, F) matrix: its backward dout @ W_2^T is then one BLAS call,
    # where a (B, N, D) dout makes NumPy run one small product per batch row (3-4x
    # slower at the course's sizes; the numbers are the same)
    out, c2 = linear_forward(a.reshape(-1, a.shape[-1]), params["W_2"], b_2)
    return out.reshape(x.shape), (c1, c_act, c2, has_bias)  # (..., D)


def mlp_backward(dout, cache):
    """Gradients of mlp_forward: dx (..., D), grads keyed like params."""
    c1, c_act, c2, has_bias = cache
    shape = c_act[0].shape  # (..., F) of the hidden layer
    V.grad_shape("dout", dout, shape[:-1] + c2[1].shape[1:])
    da, dW_2, db_2 = linear_backward(dout.reshape(-1, dout.shape[-1]), c2)
    dh = gelu_backward(da.reshape(shape), c_act)
    dx, dW_1, db_1 = linear_backward(dh, c1)
    grads = {"W_1": dW_1, "W_2": dW_2}
    if has_bias:
        grads.update({"b_1": db_1, "b_2": db_2})
    return dx, grads

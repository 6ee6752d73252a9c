"""A pre-norm decoder block: two residual branches, each behind a layer norm.

    x1  = x  + attn(LN_1(x))       causal self-attention
    out = x1 + mlp(LN_2(x1))       position-wise MLP

Backward: a residual connection ``y = x + f(x)`` passes the gradient through twice,
``dx = dy + f'(x)^T dy``, so the gradient reaches the input undiminished however deep
the stack is.

Parameter keys: ``ln1.gamma, ln1.beta, attn.W_q ... attn.W_o, ln2.gamma, ln2.beta,
mlp.W_1, mlp.W_2`` and, unless the block was made with ``bias=False``, ``attn.b_q ...
attn.b_o, mlp.b_1, mlp.b_2``. Shape legend: B batch, N positions, D width.
"""

import numpy as np

from .. import validate as V
from ..multihead import mha_param_shapes
from ._params import prefixed, sub
from .layers import (
    init_mlp_params,
    layernorm_backward,
    layernorm_forward,
    mlp_backward,
    mlp_forward,
    mlp_param_shapes,
)
from .self_attention import (
    init_mha_params,
    self_attention_backward,
    self_attention_forward,
)

BIAS_KEYS = ("attn.b_q", "attn.b_k", "attn.b_v", "attn.b_o", "mlp.b_1", "mlp.b_2")


def init_block_params(
    d_model, n_heads, d_mlp, *, n_kv_heads=None, rng, dtype=np.float64, bias=True
):
    """Flat dict of one block's parameters (layer norms start as the identity).

    Args:
        d_model: D; n_heads: H (must divide D); d_mlp: F, the MLP's hidden width.
        n_kv_heads: G key/value heads (default H; must divide H).
        rng: np.random.Generator; dtype: float16/32/64.
        bias: include the attention and MLP biases (layer norms always keep beta).
    """
    D = V.positive_int("d_model", d_model)
    dtype, bias = V.dtype_arg(dtype), V.bool_arg("bias", bias)
    F = V.positive_int("d_mlp", d_mlp)
    attn = init_mha_params(
        D, n_heads, n_kv_heads=n_kv_heads, rng=rng, dtype=dtype, bias=bias
    )
    mlp = init_mlp_params(D, F, rng=rng, dtype=dtype, bias=bias)
    ln = {"gamma": np.ones(D, dtype=dtype), "beta": np.zeros(D, dtype)}
    return {
        **prefixed(ln, "ln1"),
        **prefixed(attn, "attn"),
        **prefixed({k: v.copy() for k, v in ln.items()}, "ln2"),
        **prefixed(mlp, "mlp"),
    }


def block_param_shapes(d_model, n_heads, n_kv_heads, d_mlp, *, bias):
    """{key: shape} of one block's params (attention and MLP biases when ``bias``)."""
    ln = {"gamma": (d_model,), "beta": (d_model,)}
    attn = mha_param_shapes(d_model, d_model, n_heads, n_kv_heads, bias=bias)
    return {
        **prefixed(ln, "ln1"),
        **prefixed(attn, "attn"),
        **prefixed(ln, "ln2"),
        **prefixed(mlp_param_shapes(d_model, d_mlp, bias=bias), "mlp"),
    }


def check_block_params(params, d_model, n_heads, n_kv_heads=None, *, dtype=None):
    """Raise a clear error unless ``params`` is one block of width d_model.

    The attention and the MLP carry all of their biases or none. Returns whether
    they do.
    """
    V.instance("params", params, dict)
    H = V.positive_int("n_heads", n_heads)
    G = H if n_kv_heads is None else V.positive_int("n_kv_heads", n_kv_heads)
    if d_model % H or H % G:
        raise ValueError(
            f"need n_heads={H} to divide d_model={d_model} and n_kv_heads={G} "
            f"to divide n_heads={H}"
        )
    has_bias = any(k in params for k in BIAS_KEYS)
    W_1 = params.get("mlp.W_1")
    F = W_1.shape[-1] if isinstance(W_1, np.ndarray) and W_1.ndim == 2 else 1
    if F == 0:
        raise ValueError(f"params['mlp.W_1']{W_1.shape} needs a hidden width >= 1")
    shapes = block_param_shapes(d_model, H, G, F, bias=has_bias)
    V.check_params(params, shapes, dtype=dtype)
    return has_bias


def block_forward(
    x,
    params,
    mask=None,
    *,
    n_heads,
    causal,
    align="top_left",
    n_kv_heads=None,
    positions=None,
    kv_cache=None,
):
    """One pre-norm block.

    Args:
        x: (B, N, D) inputs.
        params: dict from ``init_block_params``.
        mask, n_heads, causal, align, n_kv_heads, positions, kv_cache: as in
            ``self_attention_forward`` (positions turn RoPE on).

    Returns:
        out (B, N, D), cache; ``cache[1].weights`` is the (B, H, N, M) attention.
    """
    x = V.float_array("x", x, ndim=3)
    check_block_params(params, x.shape[-1], n_heads, n_kv_heads, dtype=x.dtype)
    ln1, ln2 = sub(params, "ln1"), sub(params, "ln2")
    h, c_ln1 = layernorm_forward(x, ln1["gamma"], ln1["beta"])  # (B, N, D)
    a, c_attn = self_attention_forward(
        h,
        sub(params, "attn"),
        mask,
        n_heads=n_heads,
        causal=causal,
        align=align,
        n_kv_heads=n_kv_heads,
        positions=positions,
        kv_cache=kv_cache,
    )
    x1 = x + a  # (B, N, D) first residual
    h2, c_ln2 = layernorm_forward(x1, ln2["gamma"], ln2["beta"])
    m, c_mlp = mlp_forward(h2, sub(params, "mlp"))
    return x1 + m, (c_ln1, c_attn, c_ln2, c_mlp)  # second residual


def block_backward(dout, cache):
    """Gradients of block_forward: dx (B, N, D), grads keyed like params."""
    c_ln1, c_attn, c_ln2, c_mlp = cache
    # forward: out = x1 + mlp(LN_2(x1)); mlp_backward checks dout's shape
    dh2, g_mlp = mlp_backward(dout, c_mlp)
    dx1_ln, dgamma2, dbeta2 = layernorm_backward(dh2, c_ln2)
    dx1 = dout + dx1_ln  # the residual path adds dout unchanged
    dh, g_attn = self_attention_backward(dx1, c_attn)  # forward: x1 = x + attn(LN_1 x)
    dx_ln, dgamma1, dbeta1 = layernorm_backward(dh, c_ln1)
    dx = dx1 + dx_ln
    grads = {"ln1.gamma": dgamma1, "ln1.beta": dbeta1, **prefixed(g_attn, "attn")}
    grads.update({"ln2.gamma": dgamma2, "ln2.beta": dbeta2, **prefixed(g_mlp, "mlp")})
    return dx, grads

"""Self-attention: multi-head attention of a sequence over itself.

    self_attention_forward(x, params, ...) == mha_forward(x, x, params, ...)

A thin wrapper: the one multi-head attention of the package (``attention_np.multihead``)
with its H query heads, G key/value heads (GQA; G = 1 is multi-query), optional RoPE
(``positions``) and KV cache. Its input gradient adds the two paths of x:
dx = dx_q + dx_kv (queries on one side, keys and values on the other).

Shape legend: B batch, N positions, D model width, H heads, M attended positions.
"""

from .. import validate as V
from ..multihead import (
    check_heads,
    check_input_widths,
    init_mha_params,
    mha_backward,
    mha_forward,
)

__all__ = ["init_mha_params", "self_attention_backward", "self_attention_forward"]


def self_attention_forward(
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
    """Multi-head (G = H), grouped-query or multi-query (G = 1) self-attention.

    Args:
        x: (B, N, D) inputs.
        params: dict from ``init_mha_params`` (with or without biases).
        mask: boolean, broadcastable to (B, H, N, M); True = may attend.
        n_heads, causal, align, n_kv_heads, positions, kv_cache: as in
            ``mha_forward`` (with a KV cache, M is the cached length and a causal
            step needs ``align="bottom_right"``).

    Returns:
        out (B, N, D) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    x = V.float_array("x", x, ndim=3)  # named x here, not x_q / x_kv
    H = V.positive_int("n_heads", n_heads)
    check_heads(x.shape[-1], H, H, d_model_name=f"the width of x{x.shape}")
    check_input_widths(params, {"x": x.shape})
    return mha_forward(
        x,
        x,
        params,
        mask,
        n_heads=n_heads,
        causal=causal,
        align=align,
        n_kv_heads=n_kv_heads,
        positions=positions,
        kv_cache=kv_cache,
    )


def self_attention_backward(dout, cache):
    """Gradients of self_attention_forward: dx (B, N, D), grads keyed like params."""
    dx_q, dx_kv, grads = mha_backward(dout, cache)
    return dx_q + dx_kv, grads  # x feeds the queries and the keys/values

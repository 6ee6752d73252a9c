"""Causal self-attention with H query heads, G key/value heads and optional RoPE.

    q = x W_q + b_q (B, N, H d),   k = x W_k + b_k,  v = x W_v + b_v (B, N, G d)
    q, k <- RoPE(q), RoPE(k)                                (when positions are given)
    o = gqa_attention(q, k, v, mask)                        (B, H, N, d)
    out = merge(o) W_o + b_o                                (B, N, D)

With G = H the parameters have the shapes of ``init_mha_params`` and the layer
equals ``mha_forward(x, x, ...)``; G = 1 is multi-query attention. Given a KVCache,
the new keys/values are appended and the queries attend over everything cached:
the same code serves training (no cache) and token-by-token generation.

Shape legend: B batch, N positions, D model width, H query heads, G key/value heads,
d = D / H head width, M cached positions.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..decoding import gqa_attention_backward, gqa_attention_forward
from ..linear import linear_backward, linear_forward
from ..multihead import merge_heads, split_heads
from ..positional import rope_backward, rope_forward
from ..validate import check_keys

KEYS = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")


def init_attention_params(d_model, n_heads, n_kv_heads=None, *, rng, dtype=np.float64):
    """W_q, W_o (D, D) and W_k, W_v (D, G d) ~ N(0, 1/D); biases 0."""
    D = V.positive_int("d_model", d_model)
    H = V.positive_int("n_heads", n_heads)
    G = H if n_kv_heads is None else V.positive_int("n_kv_heads", n_kv_heads)
    if D % H or H % G:
        raise ValueError(f"need n_heads={H} | d_model={D} and n_kv_heads={G} | {H}")
    V.rng_arg(rng)
    widths = {"q": D, "k": G * D // H, "v": G * D // H, "o": D}
    params = {}
    for name, width in widths.items():
        W = rng.standard_normal((D, width)) / np.sqrt(D)
        params[f"W_{name}"] = W.astype(dtype)
        params[f"b_{name}"] = np.zeros(width, dtype=dtype)
    return params


class SelfAttentionCache(NamedTuple):
    """What ``self_attention_backward`` needs; ``.weights`` is (B, H, N, M)."""

    lin_caches: tuple  # caches of the q, k, v, o projections
    rope_caches: tuple | None  # (q, k) rope caches, or None without RoPE
    attn_cache: tuple
    n_heads: int
    n_kv_heads: int

    @property
    def weights(self):
        return self.attn_cache.weights


def _project(x, params, name, n_heads):
    """Project x with W_name, b_name and split into heads: (B, heads, N, d)."""
    t, cache = linear_forward(x, params[f"W_{name}"], params[f"b_{name}"])  # (B, N, .)
    return split_heads(t, n_heads), cache


def self_attention_forward(
    x, params, n_heads, n_kv_heads=None, mask=None, *, positions=None, kv_cache=None
):
    """Multi-head (G = H), grouped-query or multi-query (G = 1) self-attention.

    Args:
        x: (B, N, D) inputs.
        params: dict from ``init_attention_params``.
        n_heads: H; n_kv_heads: G (default H).
        mask: boolean, broadcastable to (B, H, N, M); True = may attend.
        positions: (N,) positions for RoPE on q and k; None = no RoPE.
        kv_cache: a ``decoding.KVCache``: append this call's k, v and attend over
            the whole cache (M = cached length). Inference only: no backward.

    Returns:
        out (B, N, D) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    x = V.float_array("x", x, ndim=3)
    G = n_heads if n_kv_heads is None else n_kv_heads
    check_keys(params, KEYS)
    q, cq = _project(x, params, "q", n_heads)  # (B, H, N, d)
    k, ck = _project(x, params, "k", G)  # (B, G, N, d)
    v, cv = _project(x, params, "v", G)  # (B, G, N, d)
    rope_caches = None
    if positions is not None:  # rotate before caching: the cache stores rotated keys
        q, rq = rope_forward(q, positions)
        k, rk = rope_forward(k, positions)
        rope_caches = (rq, rk)
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # (B, G, M, d) every key so far
    o, attn_cache = gqa_attention_forward(q, k, v, mask)  # (B, H, N, d)
    out, co = linear_forward(merge_heads(o), params["W_o"], params["b_o"])  # (B, N, D)
    cache = SelfAttentionCache((cq, ck, cv, co), rope_caches, attn_cache, n_heads, G)
    return out, cache


def self_attention_backward(dout, cache):
    """Gradients of self_attention_forward: dx (B, N, D), grads keyed like params."""
    (cq, ck, cv, co), rope_caches, attn_cache, n_heads, G = cache
    # forward: out = merge(o) W_o + b_o (linear_backward checks dout's shape)
    do, dW_o, db_o = linear_backward(dout, co)
    dq, dk, dv = gqa_attention_backward(split_heads(do, n_heads), attn_cache)
    if rope_caches is not None:  # forward: q = R q_raw -> dq_raw = R^T dq
        dq, dk = rope_backward(dq, rope_caches[0]), rope_backward(dk, rope_caches[1])
    dx_q, dW_q, db_q = linear_backward(merge_heads(dq), cq)
    dx_k, dW_k, db_k = linear_backward(merge_heads(dk), ck)
    dx_v, dW_v, db_v = linear_backward(merge_heads(dv), cv)
    dx = dx_q + dx_k + dx_v  # x feeds three paths: queries, keys and values
    grads = {"W_q": dW_q, "b_q": db_q, "W_k": dW_k, "b_k": db_k}
    grads.update({"W_v": dW_v, "b_v": db_v, "W_o": dW_o, "b_o": db_o})
    return dx, grads

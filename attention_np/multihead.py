"""Multi-head attention: project, split into heads, attend, merge, project.

    q = x_q W_q + b_q,  k = x_kv W_k + b_k,  v = x_kv W_v + b_v        (B, N|M, D)
    o_h = attention(q_h, k_h, v_h)  for each head h                    (B, H, N, d)
    out = merge(o) W_o + b_o                                           (B, N, D)

Shape legend: B batch, H heads, N query positions, M key positions, D = d_model,
d = D / H head width, D_kv width of the key/value source (cross-attention).
Self-attention passes the same array as x_q and x_kv; its input gradient is then
dx = dx_q + dx_kv (the input feeds three paths: Q, K and V). With G < H key/value
heads (``n_kv_heads``) the layer is grouped-query attention (G = 1: multi-query);
``positions`` turns RoPE on, ``kv_cache`` serves token-by-token generation. The
transformer's ``self_attention_forward(x, ...)`` is ``mha_forward(x, x, ...)``.
"""

from typing import NamedTuple

import numpy as np

from . import validate as V
from ._mha_checks import (  # noqa: F401 (BIAS_KEYS, check_*: public here)
    BIAS_KEYS,
    WEIGHT_KEYS,
    check_call,
    check_heads,
    check_input_widths,
    check_inputs,
    check_mha_params,
    mha_param_shapes,
)
from .decoding import gqa_attention_backward, gqa_attention_forward
from .linear import linear_backward, linear_forward
from .positional import rope_backward, rope_forward


def split_heads(x, n_heads):
    """(B, N, D) -> (B, H, N, d): cut the feature axis into H heads of width d."""
    x = V.float_array("x", x, ndim=3)
    n_heads = V.positive_int("n_heads", n_heads)
    B, N, D = x.shape
    if D % n_heads:
        raise ValueError(
            f"n_heads={n_heads} must divide the feature width D={D} of x{x.shape}"
        )
    # reshape alone would give (B, N, H, d); the transpose puts heads before positions
    return x.reshape(B, N, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, N, d)


def merge_heads(x):
    """(B, H, N, d) -> (B, N, H * d): the inverse of split_heads."""
    x = V.float_array("x", x, ndim=4)
    B, H, N, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * d)  # (B, N, D)


def init_mha_params(
    d_model,
    n_heads,
    *,
    rng,
    n_kv_heads=None,
    d_kv=None,
    bias=True,
    dtype=np.float64,
):
    """Random multi-head (or grouped-query) attention parameters.

    W entries ~ N(0, 1 / D_in) so activations keep their scale; biases start at 0.

    Args:
        d_model: D, width of x_q and of the output; must be divisible by n_heads.
        n_heads: H query heads.
        rng: np.random.Generator.
        n_kv_heads: G key/value heads (default H; G must divide H; 1 = multi-query).
        d_kv: width of x_kv for cross-attention (default d_model).
        bias: include b_q, b_k, b_v, b_o.
        dtype: float16, float32 or float64.

    Returns:
        dict W_q (D, D), W_k (D_kv, G d), W_v (D_kv, G d), W_o (D, D) [+ biases].
    """
    D = V.positive_int("d_model", d_model)
    H = V.positive_int("n_heads", n_heads)
    G = H if n_kv_heads is None else V.positive_int("n_kv_heads", n_kv_heads)
    D_kv = D if d_kv is None else V.positive_int("d_kv", d_kv)
    check_heads(D, H, G)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    shapes = mha_param_shapes(D, D_kv, H, G, bias=V.bool_arg("bias", bias))
    return {  # weights ~ N(0, 1 / D_in), biases 0
        name: (rng.standard_normal(s) / np.sqrt(s[0])).astype(dtype)
        if name in WEIGHT_KEYS
        else np.zeros(s, dtype)
        for name, s in shapes.items()
    }


class MHACache(NamedTuple):
    """What ``mha_backward`` needs; ``.weights`` gives the per-head P (B, H, N, M)."""

    lin_caches: tuple  # caches of the q, k, v and output projections
    rope_caches: tuple | None  # (q, k) RoPE caches, or None without positions
    attn_cache: tuple  # decoding.GQACache
    n_heads: int
    n_kv_heads: int
    has_bias: bool
    cached: bool  # True when a KVCache was used: inference only, no backward

    @property
    def weights(self):
        """(B, H, N, M) attention weights of every head."""
        return self.attn_cache.weights


def _project(x, params, name, n_heads, has_bias):
    """x W_name (+ b_name), split into heads: (B, heads, length, d)."""
    b = params[f"b_{name}"] if has_bias else None
    t, cache = linear_forward(x, params[f"W_{name}"], b)  # (B, length, heads * d)
    return split_heads(t, n_heads), cache


def mha_forward(
    x_q,
    x_kv,
    params,
    mask=None,
    *,
    n_heads,
    causal,
    align="top_left",
    n_kv_heads=None,
    positions=None,
    kv_cache=None,
    dropout_p=0.0,
    rng=None,
):
    """Multi-head attention of x_q (queries) over x_kv (keys and values).

    Args:
        x_q: (B, N, D) query-side inputs.
        x_kv: (B, M, D_kv) key/value-side inputs (pass x_q again for self-attention).
        params: dict from ``init_mha_params`` (with or without biases).
        mask: boolean, broadcastable to (B, H, N, M); True = may attend.
        n_heads: H; n_kv_heads: G key/value heads (default H; G = 1 is MQA).
        causal, align: as in ``attention_forward``.
        positions: (N,) or (B, N) token positions: RoPE on q and k (self-attention).
        kv_cache: a ``decoding.KVCache``: append this call's keys and values and
            attend over the whole cache (M = cached length; a causal step needs
            ``align="bottom_right"``). Inference only; a failed call leaves it as
            it was.
        dropout_p, rng: attention dropout, as in ``attention_forward``.

    Returns:
        out (B, N, D) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    x_q, x_kv, H, G = check_inputs(x_q, x_kv, n_heads, n_kv_heads, positions, kv_cache)
    inputs = {"x_q": x_q.shape, "x_kv": x_kv.shape}
    has_bias = check_mha_params(
        params, x_q.shape[-1], x_kv.shape[-1], H, G, dtype=x_q.dtype, inputs=inputs
    )
    check_call(
        x_q, x_kv, H, G, mask, causal, align, dropout_p, rng, positions, kv_cache
    )
    q, cq = _project(x_q, params, "q", H, has_bias)  # (B, H, N, d)
    k, ck = _project(x_kv, params, "k", G, has_bias)  # (B, G, M, d)
    v, cv = _project(x_kv, params, "v", G, has_bias)  # (B, G, M, d)
    rope_caches = None
    if positions is not None:  # rotate before caching: the cache keeps rotated keys
        q, rq = rope_forward(q, positions)
        k, rk = rope_forward(k, positions)
        rope_caches = (rq, rk)
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # (B, G, M, d): every key so far
    o, attn_cache = gqa_attention_forward(
        q, k, v, mask, causal=causal, align=align, dropout_p=dropout_p, rng=rng
    )  # (B, H, N, d)
    b_o = params["b_o"] if has_bias else None
    out, co = linear_forward(merge_heads(o), params["W_o"], b_o)  # (B, N, D)
    lin = (cq, ck, cv, co)
    cached = kv_cache is not None
    return out, MHACache(lin, rope_caches, attn_cache, H, G, has_bias, cached)


def mha_backward(dout, cache):
    """Gradients of mha_forward.

    Args:
        dout: (B, N, D) upstream gradient.
        cache: from ``mha_forward`` (without a KV cache).

    Returns:
        dx_q (B, N, D), dx_kv (B, M, D_kv), grads keyed exactly like params.
    """
    (cq, ck, cv, co), rope_caches, attn_cache, H, G, has_bias, cached = cache
    if cached:
        raise ValueError(
            "mha_backward: this forward appended to a KVCache (inference only); "
            "run the forward without kv_cache to train"
        )
    do, dW_o, db_o = linear_backward(dout, co)  # forward: out = merge(o) W_o + b_o
    dq, dk, dv = gqa_attention_backward(split_heads(do, H), attn_cache)
    if rope_caches is not None:  # forward: q = R q_raw -> dq_raw = R^T dq
        dq, dk = rope_backward(dq, rope_caches[0]), rope_backward(dk, rope_caches[1])
    dx_q, dW_q, db_q = linear_backward(merge_heads(dq), cq)
    dx_k, dW_k, db_k = linear_backward(merge_heads(dk), ck)
    dx_v, dW_v, db_v = linear_backward(merge_heads(dv), cv)
    dx_kv = dx_k + dx_v  # x_kv feeds both the key and the value projection
    grads = {"W_q": dW_q, "W_k": dW_k, "W_v": dW_v, "W_o": dW_o}
    if has_bias:
        grads.update({"b_q": db_q, "b_k": db_k, "b_v": db_v, "b_o": db_o})
    return dx_q, dx_kv, grads

"""Multi-head cross-attention of a decoder over an encoder's output, two score types.

    q = x_q W_q + b_q,  k = x_kv W_k + b_k,  v = x_kv W_v + b_v   split into H heads
    dot:       e_ij = q_i . k_j / sqrt(d)                    (Vaswani et al. 2017)
    additive:  e_ij = v_a^T tanh(q_i W_a + k_j U_a)          (Bahdanau et al. 2014)
    P = softmax_j(e) (source padding masked),  out = merge(P v) W_o + b_o

Queries come from the decoder (N target positions), keys and values from the encoder
(M source positions); every target position may read every source token, so the
layer is never causal. The dot score is the package's one multi-head attention,
``mha_forward(x_q, x_kv, causal=False)``; the additive score runs the core
``additive_attention_forward`` on the same projected heads (W_a, U_a, v_a shared by
the heads, which differ through W_q and W_k).

Decoding (``cross_memory.py``): the encoder's keys and values never change while
the target grows, so they are projected once per layer.

Shape legend: B batch, H heads, N target positions, M source positions, D model
width, D_kv encoder width, d = D / H head width, A hidden width of the additive score.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..additive import (
    ADDITIVE_KEYS,
    additive_attention_backward,
    additive_attention_forward,
    init_additive_params,
)
from ..linear import linear_backward, linear_forward
from ..multihead import (
    check_mha_params,
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    mha_param_shapes,
    split_heads,
)

SCORES = ("dot", "additive")


def init_cross_attention_params(
    d_model,
    n_heads,
    *,
    d_kv=None,
    score="dot",
    d_attn=None,
    rng,
    dtype=np.float64,
    bias=True,
):
    """W_q (D, D), W_k, W_v (D_kv, D), W_o (D, D) [+ biases]; additive: W_a, U_a, v_a.

    Args:
        d_model: D (queries and output); n_heads: H, must divide D.
        d_kv: D_kv, width of the encoder output (default D).
        score: "dot" or "additive"; d_attn: A for "additive" (default d = D / H).
        rng: np.random.Generator; dtype: float16/32/64; bias: the four biases.
    """
    V.choice("score", score, SCORES)
    params = init_mha_params(
        d_model, n_heads, d_kv=d_kv, rng=rng, dtype=dtype, bias=bias
    )
    if score == "additive":
        d = d_model // n_heads
        A = d if d_attn is None else V.positive_int("d_attn", d_attn)
        params.update(init_additive_params(d, d, A, rng=rng, dtype=dtype))
    return params


def cross_attention_param_shapes(d_model, d_kv, n_heads, *, score, bias, d_attn=None):
    """{key: shape} of cross-attention params."""
    shapes = mha_param_shapes(d_model, d_kv, n_heads, n_heads, bias=bias)
    if score == "additive":
        d = d_model // n_heads
        A = d if d_attn is None else d_attn
        shapes.update({"W_a": (d, A), "U_a": (d, A), "v_a": (A,)})
    return shapes


def check_cross_attention_params(
    params, d_model, d_kv, n_heads, *, score, dtype=None, inputs=None
):
    """Raise unless ``params`` fits; return (has_bias, its multi-head part).

    ``inputs`` as in ``multihead.check_mha_params``: an input whose width does not
    fit the weights is named.
    """
    V.instance("params", params, dict)
    V.choice("score", score, SCORES)
    extra = [k for k in ADDITIVE_KEYS if k in params]
    if score == "dot" and extra:
        raise ValueError(f"params has additive keys {extra} but score='dot'")
    mha = {k: p for k, p in params.items() if k not in ADDITIVE_KEYS}
    has_bias = check_mha_params(mha, d_model, d_kv, n_heads, dtype=dtype, inputs=inputs)
    if score == "additive":
        v_a = params.get("v_a")
        A = v_a.shape[0] if isinstance(v_a, np.ndarray) and v_a.ndim == 1 else 1
        shapes = cross_attention_param_shapes(
            d_model, d_kv, n_heads, score=score, bias=has_bias, d_attn=A
        )
        V.check_params(params, shapes, dtype=dtype)
    return has_bias, mha


class CrossCache(NamedTuple):
    """What ``cross_attention_backward`` needs; ``.weights`` is (B, H, N, M)."""

    score: str
    mha_cache: tuple | None  # multihead.MHACache (dot)
    lin_caches: tuple | None  # q, k, v, o projection caches (additive)
    add_cache: tuple | None  # additive.AdditiveCache (additive)
    n_heads: int
    has_bias: bool

    @property
    def weights(self):
        """(B, H, N, M) attention weights of every head."""
        inner = self.mha_cache if self.score == "dot" else self.add_cache
        return inner.weights


def _check(x_q, x_kv, params, mask, n_heads, score):
    x_q = V.float_array("x_q", x_q, ndim=3)
    x_kv = V.float_array("x_kv", x_kv, ndim=3)
    H = V.positive_int("n_heads", n_heads)
    if x_q.shape[0] != x_kv.shape[0]:
        raise ValueError(f"x_q{x_q.shape} and x_kv{x_kv.shape} must share B")
    V.same_dtype(x_q=x_q, x_kv=x_kv)
    inputs = {"x_q": x_q.shape, "x_kv": x_kv.shape}
    has_bias, mha = check_cross_attention_params(
        params,
        x_q.shape[-1],
        x_kv.shape[-1],
        H,
        score=score,
        dtype=x_q.dtype,
        inputs=inputs,
    )
    if mask is not None:
        (B, N, _), M = x_q.shape, x_kv.shape[1]
        V.bool_mask("mask", mask, (B, H, N, M))
    return x_q, x_kv, H, has_bias, mha


def _project(x, params, name, n_heads, has_bias):
    """x W_name (+ b_name), split into heads: (B, H, length, d)."""
    b = params[f"b_{name}"] if has_bias else None
    t, cache = linear_forward(x, params[f"W_{name}"], b)  # (B, length, D)
    return split_heads(t, n_heads), cache


def cross_attention_forward(x_q, x_kv, params, mask=None, *, n_heads, score="dot"):
    """Multi-head cross-attention of x_q (decoder) over x_kv (encoder output).

    Args:
        x_q: (B, N, D) decoder states; x_kv: (B, M, D_kv) encoder output.
        params: from ``init_cross_attention_params`` (with this ``score``).
        mask: boolean, broadcastable to (B, H, N, M), True = may attend: the source
            padding, e.g. ``padding_mask(src_lengths, M)``.
        n_heads: H; score: "dot" (scaled dot product) or "additive" (Bahdanau).

    Returns:
        out (B, N, D) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    x_q, x_kv, H, has_bias, mha = _check(x_q, x_kv, params, mask, n_heads, score)
    if score == "dot":
        out, c = mha_forward(x_q, x_kv, mha, mask, n_heads=H, causal=False)
        return out, CrossCache(score, c, None, None, H, has_bias)
    q, cq = _project(x_q, params, "q", H, has_bias)  # (B, H, N, d)
    k, ck = _project(x_kv, params, "k", H, has_bias)  # (B, H, M, d)
    v, cv = _project(x_kv, params, "v", H, has_bias)  # (B, H, M, d)
    add = {key: params[key] for key in ADDITIVE_KEYS}
    o, ca = additive_attention_forward(q, k, v, add, mask, causal=False)  # (B,H,N,d)
    b_o = params["b_o"] if has_bias else None
    out, co = linear_forward(merge_heads(o), params["W_o"], b_o)  # (B, N, D)
    return out, CrossCache(score, None, (cq, ck, cv, co), ca, H, has_bias)


def cross_attention_backward(dout, cache):
    """Gradients of cross_attention_forward: dx_q, dx_kv, grads keyed like params."""
    score, mha_cache, lin_caches, add_cache, H, has_bias = cache
    if score == "dot":
        return mha_backward(dout, mha_cache)
    cq, ck, cv, co = lin_caches
    do, dW_o, db_o = linear_backward(dout, co)  # forward: out = merge(o) W_o + b_o
    dq, dk, dv, g_add = additive_attention_backward(split_heads(do, H), add_cache)
    dx_q, dW_q, db_q = linear_backward(merge_heads(dq), cq)
    dx_k, dW_k, db_k = linear_backward(merge_heads(dk), ck)
    dx_v, dW_v, db_v = linear_backward(merge_heads(dv), cv)
    grads = {"W_q": dW_q, "W_k": dW_k, "W_v": dW_v, "W_o": dW_o, **g_add}
    if has_bias:
        grads.update({"b_q": db_q, "b_k": db_k, "b_v": db_v, "b_o": db_o})
    return dx_q, dx_k + dx_v, grads  # x_kv feeds the keys and the values

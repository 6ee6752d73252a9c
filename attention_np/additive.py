"""Additive (Bahdanau) and multiplicative (Luong) attention, forward and backward.

    Bahdanau (2014):  e_ij = v_a^T tanh(q_i W_a + k_j U_a),  P = softmax_j(e),  o = P v
    Luong (2015):     e_ij = q_i k_j^T (dot)  or  q_i W_a k_j^T (general)

The additive score runs a one-hidden-layer network on every (query, key) pair: it
builds an (N, M, A) tensor, where dot-product attention needs only an (N, M) matrix
product. Luong's "general" score is dot-product attention on projected queries, so
with W_a = s I it *is* scaled dot-product attention.

Shape legend: (...) leading axes such as B, N queries, M keys, D_q / D_k query / key
widths, A hidden width of the additive score, d_v value width.
"""

from typing import NamedTuple

import numpy as np

from . import validate as V
from .attention import attention_backward, attention_forward
from .linear import linear_backward, linear_forward
from .masks import attention_mask
from .softmax import softmax_backward, softmax_forward

ADDITIVE_KEYS = ("W_a", "U_a", "v_a")


def init_additive_params(d_q, d_k, d_attn, *, rng, dtype=np.float64):
    """W_a (D_q, A), U_a (D_k, A) ~ N(0, 1/fan_in); v_a (A,) ~ N(0, 1/A)."""
    D_q = V.positive_int("d_q", d_q)
    D_k = V.positive_int("d_k", d_k)
    A = V.positive_int("d_attn", d_attn)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    return {
        "W_a": (rng.standard_normal((D_q, A)) / np.sqrt(D_q)).astype(dtype),
        "U_a": (rng.standard_normal((D_k, A)) / np.sqrt(D_k)).astype(dtype),
        "v_a": (rng.standard_normal(A) / np.sqrt(A)).astype(dtype),
    }


class AdditiveCache(NamedTuple):
    """What ``additive_attention_backward`` needs; ``.weights`` is P (..., N, M)."""

    q_cache: tuple
    k_cache: tuple
    t: np.ndarray  # (..., N, M, A) tanh of the pairwise sums
    v_a: np.ndarray
    softmax_cache: tuple
    v: np.ndarray

    @property
    def weights(self):
        return self.softmax_cache[0]


def _check_additive(q, k, v, params, mask):
    """Validated (q, k, v, params): one float dtype, equal leading axes, params
    W_a (D_q, A), U_a (D_k, A), v_a (A,) with A >= 1."""
    q = V.float_array("q", q, min_ndim=2)
    k = V.float_array("k", k, min_ndim=2)
    v = V.float_array("v", v, min_ndim=2)
    V.same_dtype(q=q, k=k, v=v)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]) or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"q{q.shape}, k{k.shape}, v{v.shape} must share leading axes, and k, v "
            "the length M"
        )
    V.check_keys(params, ADDITIVE_KEYS)
    v_a = V.float_array("params['v_a']", params["v_a"], ndim=1)
    if v_a.shape[0] == 0:
        raise ValueError("params['v_a'] must have A >= 1 entries, got shape (0,)")
    A = v_a.shape[0]
    shapes = {"W_a": (q.shape[-1], A), "U_a": (k.shape[-1], A), "v_a": (A,)}
    params = V.check_params(params, shapes, dtype=q.dtype)
    if mask is not None:
        V.bool_mask("mask", mask, q.shape[:-2] + (q.shape[-2], k.shape[-2]))
    return q, k, v, params


def additive_attention_forward(q, k, v, params, mask=None, *, causal, align="top_left"):
    """Bahdanau attention: out = softmax(v_a^T tanh(q W_a + k U_a)) v.

    Args:
        q: (..., N, D_q) queries (the decoder state s_{i-1} in the paper).
        k: (..., M, D_k) keys (the encoder states h_j).
        v: (..., M, d_v) values (h_j again in the paper).
        params: dict W_a (D_q, A), U_a (D_k, A), v_a (A,).
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal, align: as in ``attention_forward``.

    Returns:
        out (..., N, d_v) and a cache; ``cache.weights`` is P (..., N, M).
    """
    q, k, v, params = _check_additive(q, k, v, params, mask)
    N, M = q.shape[-2], k.shape[-2]
    mask = attention_mask(mask, causal=causal, align=align, N=N, M=M)
    a, q_cache = linear_forward(q, params["W_a"])  # (..., N, A)
    u, k_cache = linear_forward(k, params["U_a"])  # (..., M, A)
    # t = tanh(a_i + u_j) for every pair, in place in one array (the layer's
    # largest): a_i copied for every key, then u_j added (3x faster than the
    # broadcast sum a[..., :, None, :] + u[..., None, :, :] into a new array)
    t = np.repeat(a[..., :, None, :], M, axis=-2)  # (..., N, M, A)
    t += u[..., None, :, :]
    np.tanh(t, out=t)
    # one matrix-vector product over all pairs (a stacked t @ v_a runs one small
    # product per (..., N) index, 3x slower at the course's sizes)
    pairs = t.reshape(-1, t.shape[-1])  # (... * N * M, A)
    e = (pairs @ params["v_a"]).reshape(t.shape[:-1])  # (..., N, M) scores
    P, softmax_cache = softmax_forward(e, mask)  # (..., N, M)
    out = P @ v  # (..., N, d_v)
    return out, AdditiveCache(q_cache, k_cache, t, params["v_a"], softmax_cache, v)


def additive_attention_backward(dout, cache):
    """Gradients of additive_attention_forward: dq, dk, dv and grads for params."""
    q_cache, k_cache, t, v_a, softmax_cache, v = cache
    P = softmax_cache[0]
    V.grad_shape("dout", dout, P.shape[:-1] + v.shape[-1:])  # out = P v
    dv = np.swapaxes(P, -1, -2) @ dout  # forward: out = P v -> dv = P^T dout
    de = softmax_backward(dout @ np.swapaxes(v, -1, -2), softmax_cache)  # (..., N, M)
    # forward: e = t @ v_a -> dv_a = sum over all pairs of de * t
    dv_a = t.reshape(-1, t.shape[-1]).T @ de.reshape(-1)  # (A,)
    # forward: t = tanh(z), z = a_i + u_j -> dz = de v_a (1 - t^2); a_i feeds every
    # key j and u_j every query i, so da sums dz over j and du over i (v_a, the
    # same for every pair, is applied after the sums)
    dtanh = t * t
    np.subtract(1.0, dtanh, out=dtanh)  # (..., N, M, A) tanh' = 1 - t^2, in place
    da = np.einsum("...nm,...nma->...na", de, dtanh) * v_a  # (..., N, A)
    du = np.einsum("...nm,...nma->...ma", de, dtanh) * v_a  # (..., M, A)
    dq, dW_a, _ = linear_backward(da, q_cache)
    dk, dU_a, _ = linear_backward(du, k_cache)
    return dq, dk, dv, {"W_a": dW_a, "U_a": dU_a, "v_a": dv_a}


class LuongCache(NamedTuple):
    """What ``luong_attention_backward`` needs; ``.weights`` is P (..., N, M)."""

    q_cache: tuple | None  # the q W_a projection's cache, None for "dot"
    attn_cache: tuple

    @property
    def weights(self):
        return self.attn_cache.weights


def _check_luong(q, k, W_a):
    """W_a must be a (D_q, D_k) float array of q's dtype (None: the "dot" score)."""
    q = V.float_array("q", q, min_ndim=2)
    k = V.float_array("k", k, min_ndim=2)
    if W_a is None:
        return q
    W_a = V.float_array("W_a", W_a, ndim=2)
    if W_a.shape != (q.shape[-1], k.shape[-1]):
        raise ValueError(
            f"W_a{W_a.shape} must be (D_q, D_k) = ({q.shape[-1]}, {k.shape[-1]}) "
            f"for q{q.shape} and k{k.shape}"
        )
    V.same_dtype(q=q, k=k, W_a=W_a)
    return q


def luong_attention_forward(q, k, v, W_a=None, mask=None, *, causal, align="top_left"):
    """Luong attention, unscaled: "dot" (W_a None) or "general" (q W_a k^T).

    Args:
        q: (..., N, D_q) queries; k: (..., M, D_k) keys; v: (..., M, d_v) values.
        W_a: (D_q, D_k) for the "general" score, or None for "dot" (D_q == D_k).
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal, align: as in ``attention_forward``.

    Returns:
        out (..., N, d_v) and a cache; ``cache.weights`` is P (..., N, M).
    """
    q = _check_luong(q, k, W_a)
    q_cache = None
    if W_a is not None:
        q, q_cache = linear_forward(q, W_a)  # (..., N, D_k) projected queries
    out, attn_cache = attention_forward(
        q, k, v, mask, causal=causal, align=align, scale=1.0
    )
    return out, LuongCache(q_cache, attn_cache)


def luong_attention_backward(dout, cache):
    """Gradients of luong_attention_forward: dq, dk, dv, dW_a (None for "dot")."""
    q_cache, attn_cache = cache
    dq, dk, dv = attention_backward(dout, attn_cache)  # (checks dout's shape)
    if q_cache is None:
        return dq, dk, dv, None
    dq, dW_a, _ = linear_backward(dq, q_cache)  # forward: q' = q W_a
    return dq, dk, dv, dW_a

"""Scaled dot-product attention, forward and backward.

    S = scale * q k^T  (masked entries -> -inf)     P = softmax(S)     out = P v

``causal`` is required (True or False, keyword-only): key j is visible to query i
when j <= i ("top_left") or j <= i + M - N ("bottom_right", ``align``), ANDed with
``mask``. NaN/inf in q, k, v are not scanned for (README): they reach the output rows
that may attend them (and, through 0 * NaN in P @ v, every row for a NaN value).

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), S and P (..., N, M),
out (..., N, d_v). Leading dimensions ("...", e.g. (B, H)) broadcast like ``@``;
gradients are summed back to each input's own shape, so k of shape (B, 1, M, d)
shared by every head gets the sum over heads.

Implementation notes (why the code looks the way it does):
- q is scaled before the product (N*d multiplications instead of N*M).
- The cache keeps the unnormalised ``p = exp(S - rowmax)`` and the row sums ``l``;
  the (N, d_v) output is divided by ``l`` instead of the (N, M) weights.
- The backward uses rowsum(dP * P) == rowsum(dout * out), an O(N*d_v) quantity, so
  no (M, M) Jacobian and no extra (N, M) pass are needed.
"""

from typing import NamedTuple

import numpy as np

from . import validate as V


class AttentionCache(NamedTuple):
    """What ``attention_backward`` needs; ``.weights`` gives P for plotting."""

    q_scaled: np.ndarray  # (..., N, d) q * scale
    k: np.ndarray  # (..., M, d)
    v: np.ndarray  # (..., M, d_v)
    p: np.ndarray  # (..., N, M) exp(S - rowmax), unnormalised, 0 where masked
    l: np.ndarray  # (..., N, 1) row sums of p (1 for a fully masked row)
    out: np.ndarray  # (..., N, d_v)
    keep: np.ndarray | None  # (..., N, M) dropout keep-mask, or None
    dropout_p: float
    scale: float

    @property
    def weights(self):
        """(..., N, M) attention weights P (before dropout); rows sum to 1 or 0."""
        return self.p / self.l


# Row blocks of about this many bytes stay in the CPU cache between the element-wise
# passes (max, subtract, exp), so each (N, M) element travels from memory once.
_BLOCK_BYTES = 1 << 18
# Softmax is unchanged by subtracting any constant from a row. Subtracting one scalar
# from a whole block is ~3x faster in NumPy than subtracting a column of row maxima, and
# is just as safe when the rows' maxima lie within _SHARED_SHIFT of each other: every
# row's largest entry then becomes exp(>= -20) >= 2e-9, far from float32/64 underflow.
_SHARED_SHIFT = {np.dtype(np.float32): 20.0, np.dtype(np.float64): 20.0}


def _row_blocks(x):
    """Yield (slice, view) pairs over a contiguous array seen as (rows, last axis)."""
    flat = x.reshape(-1, x.shape[-1]) if x.size else x.reshape(0, 0)
    step = max(1, _BLOCK_BYTES // max(1, flat.shape[-1] * flat.itemsize))
    for start in range(0, flat.shape[0], step):
        yield slice(start, start + step), flat[start : start + step]


def _exp_shifted(s):
    """In place: s <- exp(s - c), c = row max (or one shared max, see _SHARED_SHIFT)."""
    m = np.max(s, axis=-1, keepdims=True, initial=-np.inf)  # (rows, 1) row max
    finite = m[m > -np.inf]  # rows with at least one allowed key
    top = finite.max(initial=0.0)
    if finite.size and top - finite.min() <= _SHARED_SHIFT.get(s.dtype, -1.0):
        np.subtract(s, top, out=s)  # one shift for the block; every entry <= 0
    else:
        m[m == -np.inf] = 0.0  # fully masked row: exp(-inf - 0) = 0 instead of NaN
        np.subtract(s, m, out=s)  # subtract the row max: exp never overflows
    np.exp(s, out=s)


def _causal_block(N, M, offset):
    """(N, M) True where key j lies in query i's future: j > i + offset."""
    return np.arange(M)[None, :] > np.arange(N)[:, None] + offset  # (N, M)


def _masked_exp(qs, k, mask, offset=None):
    """p = exp(S - c), c a per-row shift, in one (N, M) buffer (the scores').

    ``offset``: the causal offset (None = no causal rule), see validate.causal_offset.
    """
    p = qs @ np.swapaxes(k, -1, -2)  # (..., N, M) scores, turned into p in place
    if mask is not None:
        np.copyto(p, -np.inf, where=~mask)  # masked scores -> -inf -> weight 0
    if offset is not None:  # the future -> -inf
        np.copyto(p, -np.inf, where=_causal_block(*p.shape[-2:], offset))
    for _, block in _row_blocks(p):
        _exp_shifted(block)
    return p


def _normalise(out, l):
    """out /= l in place, with l = 0 (fully masked row) treated as 1: 0 / 1 = 0."""
    l[l == 0] = 1.0
    out /= l
    return out, l


def attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    causal,
    align="top_left",
    scale=None,
    dropout_p=0.0,
    rng=None,
):
    """out = softmax(scale * q k^T, masked) @ v, with optional inverted dropout on P.

    Args:
        q: (..., N, d) queries.
        k: (..., M, d) keys.
        v: (..., M, d_v) values.
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal: True or False (required): hide the keys in each query's future.
        align: "top_left" (j <= i) or "bottom_right" (j <= i + M - N) when N != M.
        scale: score scale, default 1/sqrt(d).
        dropout_p: probability of zeroing a weight after softmax (survivors / (1-p)).
        rng: np.random.Generator, required when dropout_p > 0.

    Returns:
        out (..., N, d_v) and a cache; ``cache.weights`` is P (..., N, M).
    """
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    dropout_p = V.dropout_args(dropout_p, rng)
    qs = q * scale  # (..., N, d) scale q, not the (N, M) scores
    p = _masked_exp(qs, k, mask, offset)  # (..., N, M) unnormalised weights
    keep = None
    if dropout_p > 0:
        keep = rng.random(p.shape, dtype=np.float32) >= dropout_p  # (..., N, M)
        l = np.sum(p, axis=-1, keepdims=True)  # (..., N, 1) row sums
        out = (p * keep) @ v / (1.0 - dropout_p)  # (..., N, d_v) rescaled survivors
    else:
        # append a column of ones to v: the same product also gives the row sums of p
        ones = np.ones(v.shape[:-1] + (1,), dtype=v.dtype)  # (..., M, 1)
        out_l = p @ np.concatenate([v, ones], axis=-1)  # (..., N, d_v + 1)
        out = out_l[..., :-1].copy()  # (..., N, d_v)
        l = out_l[..., -1:].copy()  # (..., N, 1) row sums of p
    out, l = _normalise(out, l)  # divide the (N, d_v) output, not the (N, M) weights
    return out, AttentionCache(qs, k, v, p, l, out, keep, dropout_p, scale)


def attention_weights(q, k, mask=None, *, causal, align="top_left", scale=None):
    """P = softmax(scale * q k^T, masked): (..., N, M) weights for heatmaps.

    Arguments as in ``attention_forward`` (no values needed).
    """
    q, k, _, scale = V.check_qkv(q, k, None, mask, scale, need_v=False)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    p = _masked_exp(q * scale, k, mask, offset)  # (..., N, M)
    l = np.sum(p, axis=-1, keepdims=True)  # (..., N, 1)
    l[l == 0] = 1.0  # fully masked row stays all zeros
    p /= l
    return p


def unbroadcast(grad, shape):
    """Sum ``grad`` over the dimensions that broadcasting added or stretched."""
    if grad.shape == tuple(shape):
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True)


def attention_backward(dout, cache):
    """Gradients of attention_forward.

    Args:
        dout: (..., N, d_v) upstream gradient.
        cache: from ``attention_forward``.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v), each in its input's shape.
    """
    qs, k, v, p, l, out, keep, dropout_p, scale = cache
    V.grad_shape("dout", dout, out.shape)
    # out = pk @ v / c with pk = p * keep and c = l * (1 - dropout_p)
    g = dout / (l * (1.0 - dropout_p))  # (..., N, d_v) dout / c
    pk = p if keep is None else p * keep  # (..., N, M) weights actually applied
    # forward: out = pk @ v / c -> dv = pk^T (dout / c)
    dv = np.swapaxes(pk, -1, -2) @ g  # (..., M, d_v)
    ds = g @ np.swapaxes(v, -1, -2)  # (..., N, M) dP / l, with dP = dout @ v^T
    if keep is not None:
        # forward: Z = P * keep / (1 - dropout_p) -> dP = dZ * keep / (1 - dropout_p)
        ds *= keep  # (the / (1 - dropout_p) is already in g)
    # softmax backward: dS = P * (dP - rowsum(dP * P)),
    # and rowsum(dP * P) = rowsum(dout * out): O(N d_v) work instead of O(N M)
    row_term = (np.sum(dout * out, axis=-1, keepdims=True) / l).reshape(-1, 1)
    if ds.size:  # N = 0 or M = 0: nothing to correct
        p_flat = p.reshape(-1, p.shape[-1])  # (rows, M)
        # cache-sized blocks: both passes in one visit
        for rows, block in _row_blocks(ds):
            block -= row_term[rows]
            block *= p_flat[rows]  # dS; zero where masked, since p = 0 there
    dq = (ds @ k) * scale  # forward: S = (q * scale) @ k^T -> dq = scale * dS @ k
    dk = np.swapaxes(ds, -1, -2) @ qs  # dk = dS^T @ (q * scale)
    return (
        unbroadcast(dq, qs.shape),
        unbroadcast(dk, k.shape),
        unbroadcast(dv, v.shape),
    )

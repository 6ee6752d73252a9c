"""Tiled attention in its plainest form: a teaching reference for ``flash.py``.

A double loop over query tiles and key tiles, and the FlashAttention-2 forward
exactly as written in the algorithm (REFERENCE.md 2.2):

    for each query tile Q_i:   m = -inf, l = 0, acc = 0
        for each key tile j:   S = scale Q_i K_j^T  (-inf where masked)
                               m_new = max(m, rowmax S)
                               P = exp(S - m_new),  alpha = exp(m - m_new)
                               l = alpha l + rowsum P,  acc = alpha acc + P V_j
                               m = m_new
        O_i = acc / l,   lse_i = m + log l

It is slow (every tile is a few Python-level NumPy calls, and no tile is skipped)
but every line is the algorithm; ``flash.flash_attention_forward`` computes the same
numbers faster. Leading (batch, head) dimensions simply ride along in every
product. Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v); a tile is
(..., rows, cols) with rows <= block_q, cols <= block_k.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


class ReferenceCache(NamedTuple):
    """What the reference computes besides ``out`` (it has no backward)."""

    lse: np.ndarray  # (..., N) log-sum-exp of each row's scores; -inf if fully masked


def _tile_allow(mask, offset, rows, cols):
    """(..., rows, cols) boolean: which (query, key) pairs of this tile may attend."""
    i = np.arange(rows.start, rows.stop)[:, None]  # (rows, 1) query positions
    j = np.arange(cols.start, cols.stop)[None, :]  # (1, cols) key positions
    allow = np.ones((i.size, j.size), bool) if offset is None else j <= i + offset
    return allow if mask is None else allow & mask[..., rows, cols]


def _checked(q, k, v, mask, causal, align, scale, block_q, block_k):
    """Validated inputs, causal offset (None: no rule), scale, tiles, leading shape."""
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    tiles = V.positive_int("block_q", block_q), V.positive_int("block_k", block_k)
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])  # (B, H)
    return q, k, v, offset, scale, *tiles, lead


def flash_attention_reference(
    q, k, v, mask=None, *, causal, align="top_left", block_q=16, block_k=16, scale=None
):
    """out = softmax(scale q k^T, masked) v and its log-sum-exp, tile by tile.

    Args:
        q: (..., N, d) queries.  k: (..., M, d) keys.  v: (..., M, d_v) values.
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal: True or False (required): key j only for query i with j <= i + off.
        align: "top_left" (off = 0) or "bottom_right" (off = M - N).
        block_q, block_k: tile sizes (need not divide N and M).
        scale: score scale, default 1/sqrt(d).

    Returns:
        out (..., N, d_v) and a ReferenceCache with ``lse`` (..., N); a row with no
        allowed key gets 0 and -inf.
    """
    q, k, v, off, scale, block_q, block_k, lead = _checked(
        q, k, v, mask, causal, align, scale, block_q, block_k
    )
    N, M, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    out, lse = np.zeros(lead + (N, d_v), q.dtype), np.zeros(lead + (N,), q.dtype)
    for i0 in range(0, N, block_q):  # outer loop: one tile of queries at a time
        rows = slice(i0, min(i0 + block_q, N))
        qs = q[..., rows, :] * scale  # (..., rows, d) scale q, not every score tile
        m = np.full(lead + (qs.shape[-2],), -np.inf, q.dtype)  # (..., rows) max
        l = np.zeros_like(m)  # (..., rows) running sum of exp(S - m)
        acc = np.zeros(lead + (qs.shape[-2], d_v), q.dtype)  # sum of exp(S - m) v
        for j0 in range(0, M, block_k):  # inner loop: stream over tiles of keys
            cols = slice(j0, min(j0 + block_k, M))
            s = qs @ np.swapaxes(k[..., cols, :], -1, -2)  # (..., rows, cols) one tile
            s = np.where(_tile_allow(mask, off, rows, cols), s, -np.inf)  # masked: 0
            m_new = np.maximum(m, s.max(axis=-1))  # (..., rows) max over keys so far
            base = np.where(np.isneginf(m_new), 0.0, m_new)  # never -inf - (-inf)
            p = np.exp(s - base[..., None])  # (..., rows, cols) against the new max
            alpha = np.exp(m - base)  # (..., rows) rescales the old sums; 0 if m = -inf
            l = alpha * l + p.sum(axis=-1)
            acc = alpha[..., None] * acc + p @ v[..., cols, :]  # (..., rows, d_v)
            m = m_new
        safe_l = np.where(l > 0, l, 1.0)  # l = 0: no allowed key, acc = 0 stays 0
        out[..., rows, :] = acc / safe_l[..., None]  # divide once, at the very end
        lse[..., rows] = np.where(l > 0, m + np.log(safe_l), -np.inf)
    return out, ReferenceCache(lse)

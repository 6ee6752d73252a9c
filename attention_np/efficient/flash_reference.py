"""Tiled attention in its plainest form: a teaching reference for ``flash.py``.

One head, 2-D arrays, a double loop over query tiles and key tiles, and the
FlashAttention-2 forward exactly as written in the algorithm (REFERENCE.md 2.2):

    for each query tile Q_i:   m = -inf, l = 0, acc = 0
        for each key tile j:   S = scale Q_i K_j^T  (-inf where masked)
                               m_new = max(m, rowmax S)
                               P = exp(S - m_new),  alpha = exp(m - m_new)
                               l = alpha l + rowsum P,  acc = alpha acc + P V_j
                               m = m_new
        O_i = acc / l,   lse_i = m + log l

It is slow (every tile is a few Python-level NumPy calls, and no tile is skipped)
but every line is the algorithm; ``flash.flash_attention_forward`` computes the same
numbers faster. Shape legend: q (N, d), k (M, d), v (M, d_v); a tile is
(rows, cols) with rows <= block_q, cols <= block_k.
"""

import numpy as np

from .. import validate as V


def _tile_allow(mask, causal, rows, cols):
    """(rows, cols) boolean: which (query, key) pairs of this tile may attend."""
    i = np.arange(rows.start, rows.stop)[:, None]  # (rows, 1) query positions
    j = np.arange(cols.start, cols.stop)[None, :]  # (1, cols) key positions
    allow = (j <= i) if causal else np.ones((i.size, j.size), dtype=bool)
    return allow if mask is None else allow & mask[rows, cols]


def _checked(q, k, v, mask, causal, scale, block_q, block_k):
    """Validated inputs: 2-D q, k, v, the mask as an (N, M) view or None, scale."""
    V.bool_arg("causal", causal)
    for name, a in (("q", q), ("k", k), ("v", v)):
        V.float_array(name, a, ndim=2)
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    if mask is not None:
        mask = np.broadcast_to(mask, (q.shape[0], k.shape[0]))
    tiles = V.positive_int("block_q", block_q), V.positive_int("block_k", block_k)
    return q, k, v, mask, scale, *tiles


def flash_attention_reference(
    q, k, v, mask=None, *, causal=False, block_q=16, block_k=16, scale=None
):
    """out = softmax(scale q k^T, masked) v and its log-sum-exp, tile by tile.

    Args:
        q: (N, d) queries.  k: (M, d) keys.  v: (M, d_v) values.
        mask: boolean, broadcastable to (N, M); True = may attend.
        causal: also allow key j for query i only when j <= i (top-left).
        block_q, block_k: tile sizes (need not divide N and M).
        scale: score scale, default 1/sqrt(d).

    Returns:
        out (N, d_v) and lse (N,); a row with no allowed key gets 0 and -inf.
    """
    q, k, v, mask, scale, block_q, block_k = _checked(
        q, k, v, mask, causal, scale, block_q, block_k
    )
    N, M, d_v = q.shape[0], k.shape[0], v.shape[1]
    out = np.zeros((N, d_v), q.dtype)  # (N, d_v)
    lse = np.full(N, -np.inf, q.dtype)  # (N,)
    for i0 in range(0, N, block_q):  # outer loop: one tile of queries at a time
        rows = slice(i0, min(i0 + block_q, N))
        n = rows.stop - rows.start
        m = np.full(n, -np.inf, q.dtype)  # (rows,) running max of the scores
        l = np.zeros(n, q.dtype)  # (rows,) running sum of exp(S - m)
        acc = np.zeros((n, d_v), q.dtype)  # (rows, d_v) running sum of exp(S - m) v
        for j0 in range(0, M, block_k):  # inner loop: stream over tiles of keys
            cols = slice(j0, min(j0 + block_k, M))
            s = scale * (q[rows] @ k[cols].T)  # (rows, cols) the only score tile
            s[~_tile_allow(mask, causal, rows, cols)] = -np.inf  # masked: weight 0
            m_new = np.maximum(m, s.max(axis=1))  # (rows,) max of all keys so far
            base = np.where(np.isneginf(m_new), 0.0, m_new)  # no -inf - (-inf) = NaN
            p = np.exp(s - base[:, None])  # (rows, cols) weights against the new max
            alpha = np.exp(m - base)  # (rows,) rescales the old sums; 0 if m = -inf
            l = alpha * l + p.sum(axis=1)
            acc = alpha[:, None] * acc + p @ v[cols]  # (rows, d_v)
            m = m_new
        safe_l = np.where(l > 0, l, 1.0)  # l = 0: no allowed key, acc = 0 stays 0
        out[rows] = acc / safe_l[:, None]  # divide once, at the very end
        lse[rows] = np.where(l > 0, m + np.log(safe_l), -np.inf)
    return out, lse

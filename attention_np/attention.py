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
- The (batch, head) slices run on ``workers`` threads (``threads.run_slices``; the
  result is the same, bit for bit, for any number). Within a slice, S is made a
  block of rows at a time that stays in the CPU's caches while it is masked,
  exponentiated and multiplied by v. q is scaled first (N*d products, not N*M).
- Softmax ignores a per-row shift c; the textbook takes the row max so that exp
  cannot overflow. By Cauchy-Schwarz |S_ij| <= |q_i| |k_j|: where that bound is
  within EXP_BOUND, c = 0 is just as safe and saves two passes over S.
- The cache keeps p = exp(S - c) and its row sums l; one product with [v, 1] gives
  p v and l together, and the (N, d_v) output is divided by l, not the weights.
- The backward uses D = rowsum(dP * P) = rowsum(dout * out) (O(N d_v) work) and
  one product [g, -D] [v, 1]^T = dP - D: softmax's backward is one multiply by p.
"""

from typing import NamedTuple

import numpy as np

from . import threads
from . import validate as V


class AttentionCache(NamedTuple):
    """What ``attention_backward`` needs; ``.weights`` gives P for plotting."""

    q_scaled: np.ndarray  # (..., N, d) q * scale
    k: np.ndarray  # (..., M, d)
    v: np.ndarray  # (..., M, d_v)
    p: np.ndarray  # (..., N, M) exp(S - c), unnormalised, 0 where masked
    l: np.ndarray  # (..., N, 1) row sums of p (1 for a fully masked row)
    out: np.ndarray  # (..., N, d_v)
    keep: np.ndarray | None  # (..., N, M) dropout keep-mask, or None
    dropout_p: float
    scale: float
    workers: int = 1  # threads over the (batch, head) slices, forward and backward

    @property
    def weights(self):
        """(..., N, M) attention weights P (before dropout); rows sum to 1 or 0."""
        return self.p / self.l


# A block of rows of S this large stays in the CPU's caches (L2, L3) between the
# product that makes it, the element-wise passes and the product that consumes it.
_BLOCK_BYTES = 1 << 21
# exp(S) needs no shift while every |S_ij| <= EXP_BOUND: no overflow (entries below
# e^30 = 1e13 sum safely over a million keys times a large v), no underflow (every
# weight >= e^-30, a normal float). float16 has no such room: it always shifts.
EXP_BOUND = {np.dtype(np.float32): 30.0, np.dtype(np.float64): 300.0}


def _row_blocks(a):
    """Slices over axis -2 of ``a`` (..., N, M): blocks of about _BLOCK_BYTES."""
    row_bytes = max(1, a.size // max(1, a.shape[-2]) * a.itemsize)  # all of (...)
    step = max(1, _BLOCK_BYTES // row_bytes)
    return [slice(i, i + step) for i in range(0, a.shape[-2], step)]


def with_ones(v):
    """[v, 1]: (..., M, d_v) -> (..., M, d_v + 1); times p, it gives p v and sum p."""
    return np.concatenate([v, np.ones(v.shape[:-1] + (1,), v.dtype)], axis=-1)


def _hide(s, mask, offset, rows):
    """Scores a query may not see -> -inf (weight exp(-inf) = 0), for block ``rows``.

    Returns ``seen``: keys >= seen are in the future of every row of the block (the
    causal rule); their weights are set to 0 here, so exp can skip them.
    """
    if mask is not None:
        np.copyto(s, -np.inf, where=~mask[..., rows, :])
    if offset is None:
        return s.shape[-1]
    (n, M), first = s.shape[-2:], rows.start + offset  # row r sees j <= first + r
    seen = min(max(first + n, 0), M)
    s[..., seen:] = 0.0  # weight 0 without an exp
    for r in range(0, n, 64):  # the diagonal, 64 rows at a time: small triangles
        sub = s[..., r : r + 64, :seen]  # (..., <= 64, seen)
        lo, hi = (min(max(first + r + i, 0), seen) for i in (1, sub.shape[-2]))
        sub[..., hi:] = -np.inf  # in the future of every row of ``sub``
        tri = np.arange(hi - lo) > np.arange(sub.shape[-2])[:, None] + first + r - lo
        np.copyto(sub[..., lo:hi], -np.inf, where=tri)  # (<= 64, hi - lo)
    return seen


def _score_bound(qs, k):
    """(..., N, 1): |q_i| max_j |k_j| >= |S_ij| for every key j (Cauchy-Schwarz)."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN means "shift"
        q_norm = np.sqrt(np.einsum("...nd,...nd->...n", qs, qs))  # (..., N)
        k_norm = np.sqrt(np.einsum("...md,...md->...m", k, k))  # (..., M)
        bound = q_norm * np.max(k_norm, axis=-1, keepdims=True, initial=0.0)
    return bound[..., None]  # (..., N, 1)


def _exp(s, bound):
    """In place: s <- exp(s - c). c = 0 when every |S_ij| <= EXP_BOUND (``bound``
    says so), else the row max (the textbook); a row with no visible key gives 0."""
    if not np.all(bound <= EXP_BOUND.get(s.dtype, -np.inf)):  # NaN: shift
        top = np.max(s, axis=-1, keepdims=True, initial=-np.inf)  # (..., rows, 1)
        top[np.isneginf(top)] = 0.0  # exp(-inf - 0) = 0 instead of NaN
        s -= top
    np.exp(s, out=s)


def _exp_scores(qs, k, v_ext, mask, offset, p, pv):
    """One task: p = exp(S - c) and pv = p [v, 1], a cache-sized block of rows at a
    time (p and pv are the task's slices of the outputs)."""
    k_t = np.swapaxes(k, -1, -2)  # (..., d, M)
    bound = _score_bound(qs, k)  # (..., N, 1)
    for rows in _row_blocks(p):
        s = p[..., rows, :]  # (..., rows, M) this block's scores, in place in p
        np.matmul(qs[..., rows, :], k_t, out=s)  # S = (q * scale) k^T
        seen = _hide(s, mask, offset, rows)  # keys >= seen: weight 0 already
        _exp(s[..., :seen], bound[..., rows, :])
        np.matmul(s, v_ext, out=pv[..., rows, :])  # [p v, rowsum p]


def _forward(q, k, v, mask, offset, scale, workers):
    """qs, p (..., N, M) and pv = p [v, 1] (..., N, d_v + 1), slice by slice."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    N, M = q.shape[-2], k.shape[-2]
    qs = q * scale  # (..., N, d) scale q, not the (N, M) scores
    p = np.empty(lead + (N, M), q.dtype)  # (..., N, M)
    pv = np.empty(lead + (N, v.shape[-1] + 1), q.dtype)  # (..., N, d_v + 1)
    qh, kh, vh = threads.lead_views(lead, qs, k, with_ones(v))
    mh = None if mask is None else np.broadcast_to(mask, lead + (N, M))

    def work(h):
        head_mask = None if mh is None else mh[h]
        _exp_scores(qh[h], kh[h], vh[h], head_mask, offset, p[h], pv[h])

    threads.run_slices(lead, work, workers, size=N * M)
    return qs, p, pv


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
    workers=None,
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
        workers: threads over the (batch, head) slices, None for
            ``validate.default_workers()``; the backward uses the same.

    Returns:
        out (..., N, d_v) and a cache; ``cache.weights`` is P (..., N, M).
    """
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    dropout_p = V.dropout_args(dropout_p, rng)
    workers = V.workers_arg(workers)
    qs, p, pv = _forward(q, k, v, mask, offset, scale, workers)
    l = pv[..., -1:].copy()  # (..., N, 1) row sums of p
    keep = None
    if dropout_p > 0:
        keep = rng.random(p.shape, dtype=np.float32) >= dropout_p  # (..., N, M)
        pv[..., :-1] = (p * keep) @ v / (1.0 - dropout_p)  # rescaled survivors
    l[l == 0] = 1.0  # fully masked row: 0 / 1 = 0
    out = pv[..., :-1] / l  # (..., N, d_v): divide the output, not the weights
    return out, AttentionCache(qs, k, v, p, l, out, keep, dropout_p, scale, workers)


def attention_weights(
    q, k, mask=None, *, causal, align="top_left", scale=None, workers=None
):
    """P = softmax(scale * q k^T, masked): (..., N, M) weights for heatmaps.

    Arguments as in ``attention_forward`` (no values needed).
    """
    q, k, _, scale = V.check_qkv(q, k, None, mask, scale, need_v=False)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    no_values = np.empty(k.shape[:-1] + (0,), k.dtype)  # (..., M, 0): no values
    _, p, _ = _forward(q, k, no_values, mask, offset, scale, V.workers_arg(workers))
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
    """Gradients of attention_forward, a cache-sized block of rows at a time.

    Args:
        dout: (..., N, d_v) upstream gradient.
        cache: from ``attention_forward``.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v), each in its input's shape.
    """
    qs, k, v, p, l, out, keep, dropout_p, scale, workers = cache
    V.grad_shape("dout", dout, out.shape)
    # softmax backward needs D = rowsum(dP * P) = rowsum(dout * out): O(N d_v) work
    D = np.sum(dout * out, axis=-1, keepdims=True)  # (..., N, 1)
    g = np.concatenate([dout / (1 - dropout_p), -D], axis=-1) / l  # [dout / c, -D / l]
    grads = [np.zeros(p.shape[:-2] + a.shape[-2:], qs.dtype) for a in (qs, k, v)]
    qh, kh, vh, gh = threads.lead_views(p.shape[:-2], qs, k, with_ones(v), g)

    def slices(h):  # one (batch, head) slice, or a run of them (threads.run_slices)
        dq, dk, dv = (x[h] for x in grads)
        v_ext_t = np.swapaxes(vh[h], -1, -2)  # (..., d_v + 1, M) [v, 1]^T
        for rows in _row_blocks(p[h]):
            p_r, g_r = p[h][..., rows, :], gh[h][..., rows, :]  # (..., rows, M | d_v+1)
            pk = p_r if keep is None else p_r * keep[h][..., rows, :]  # weights used
            dv += np.swapaxes(pk, -1, -2) @ g_r[..., :-1]  # out = pk v / c -> dv
            ds = g_r @ v_ext_t  # (dP - D) / l with dP = dout v^T: [g, -D / l] [v, 1]^T
            if keep is not None:  # forward: Z = P * keep / (1 - p) -> dP = dZ * keep
                ds = (ds - g_r[..., -1:]) * keep[h][..., rows, :] + g_r[..., -1:]
            ds *= p_r  # softmax backward: dS = P * (dP - D); 0 where masked
            dq[..., rows, :] = ds @ kh[h]  # forward: S = qs k^T -> dqs = dS k
            dk += np.swapaxes(ds, -1, -2) @ qh[h][..., rows, :]  # dk = dS^T qs

    threads.run_slices(p.shape[:-2], slices, workers, size=p.shape[-2] * p.shape[-1])
    grads[0] *= scale  # qs = q * scale
    return tuple(map(unbroadcast, grads, (qs.shape, k.shape, v.shape)))

"""Exact attention in tiles with an online softmax (FlashAttention-2 on a CPU).

Forward, for each block of queries (rows), streaming over blocks of keys (cols):

    S = scale * q_rows k_cols^T (masked -> -inf)        one (rows, cols) tile only
    m_new = max(m, rowmax S);  acc = e^(m - m_new) acc + exp(S - m_new) [v_cols, 1]
    out = acc[:, :d_v] / acc[:, d_v],   lse = m + log acc[:, d_v]

Backward recomputes each tile's weights from the stored log-sum-exp instead of
storing them: P = exp(S - lse), D = rowsum(dout * out), dS = P * (dout v^T - D).
Memory: the inputs and outputs plus O(block_q * block_k) per tile, never (N, M).

Causal alignment: ``causal`` (required, True or False) allows key j for query i
when j <= i + offset with offset 0 ("top_left", the default of ``masks.causal_mask``
and PyTorch ``is_causal``) or M - N ("bottom_right", for a KV-cache step). Tiles that
lie wholly in the future are skipped, as are tiles where ``mask`` is all False.
``workers`` threads (None: ``validate.default_workers()``) share the (batch, head)
slices through ``threads.run_slices``; the result is bit-identical whatever their
number.

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), out (..., N, d_v),
lse (..., N); leading dimensions ("...", e.g. (B, H)) broadcast like ``@``.
"""

from typing import NamedTuple

import numpy as np

from .. import threads
from .. import validate as V
from ..attention import unbroadcast
from .tile_softmax import backward_weights, finish, merge, tile_sums
from .tiles import blocks, key_blocks, query_blocks, tile_mask, tile_view

BLOCK_Q, BLOCK_K = 256, 1024  # a float32 tile of 1 MiB stays in a CPU core's L2 cache
V_EXT_BYTES = 1 << 21  # [v, 1] of a whole head is kept when at most this large


class TilePlan(NamedTuple):
    """How to run: causal offset (None = no causal rule), scale, tiles, threads."""

    offset: int | None
    scale: float
    block_q: int
    block_k: int
    workers: int = 1  # threads over the (batch, head) slices


class FlashCache(NamedTuple):
    """What ``flash_attention_backward`` needs: inputs, out and the log-sum-exp."""

    q: np.ndarray  # (..., N, d)
    k: np.ndarray  # (..., M, d)
    v: np.ndarray  # (..., M, d_v)
    mask: np.ndarray | None  # broadcastable to (..., N, M)
    out: np.ndarray  # (..., N, d_v)
    lse: np.ndarray  # (..., N) log-sum-exp of each row's scores; -inf if fully masked
    plan: TilePlan


def _values_and_ones(v, block_k):
    """cols -> [v[cols], 1] (cols, d_v + 1): one product then gives p v and sum p.

    Built once for the whole head when that is small (every query block reuses
    it); otherwise copied into one tile-sized buffer per tile, so that memory stays
    O(tile) however long the sequence.
    """
    M, d_v = v.shape
    if M * (d_v + 1) * v.itemsize <= V_EXT_BYTES:
        whole = np.concatenate([v, np.ones((M, 1), v.dtype)], axis=1)  # (M, d_v + 1)
        return lambda cols: whole[cols]
    buffer = np.ones((min(block_k, M), d_v + 1), v.dtype)  # last column stays 1

    def fill(cols):
        v_ext = buffer[: cols.stop - cols.start]
        v_ext[:, :-1] = v[cols]
        return v_ext

    return fill


def _forward_head(q, k, v, mask, plan, out, lse):
    """One head: fill out (N, d_v) and lse (N,) one block of queries at a time."""
    bq, bk = min(plan.block_q, q.shape[0]), min(plan.block_k, k.shape[0])
    values = _values_and_ones(v, plan.block_k)
    buffer = np.empty(bq * bk, q.dtype)  # the memory of the one score tile
    for rows in blocks(q.shape[0], plan.block_q):
        qs = q[rows] * plan.scale  # (rows, d) scale q, not the (rows, cols) tile
        m = np.full((qs.shape[0], 1), -np.inf, q.dtype)  # (rows, 1) reference
        acc = np.zeros((qs.shape[0], v.shape[1] + 1), q.dtype)  # [sum p v, sum p]
        for cols in key_blocks(rows, k.shape[0], plan.block_k, plan.offset):
            allow = tile_mask(mask, plan.offset, rows, cols)
            if allow is False:  # nothing in this tile may attend: skip it
                continue
            s = tile_view(buffer, rows, cols)  # (rows, cols) the only score tile
            ref, part = tile_sums(qs, k[cols], values(cols), allow, s)
            m, acc = merge(m, acc, ref, part)
        out[rows], lse[rows] = finish(m, acc)


def _head_views(lead, q, k, v, mask):
    """q, k, v broadcast to ``lead`` and the mask to lead + (N, M): views."""
    views = threads.lead_views(lead, q, k, v)
    if mask is not None:
        mask = np.broadcast_to(mask, lead + (q.shape[-2], k.shape[-2]))
    return views + [mask]


def tiled_forward(q, k, v, mask, plan):
    """out (..., N, d_v), lse (..., N) of validated inputs, one head at a time."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    N, d_v = q.shape[-2], v.shape[-1]
    out = np.empty(lead + (N, d_v), q.dtype)  # (..., N, d_v)
    lse = np.empty(lead + (N,), q.dtype)  # (..., N)
    qh, kh, vh, mh = _head_views(lead, q, k, v, mask)

    def work(h):
        head_mask = None if mh is None else mh[h]
        _forward_head(qh[h], kh[h], vh[h], head_mask, plan, out[h], lse[h])

    threads.run_slices(lead, work, plan.workers)  # one task per (batch, head)
    return out, lse


def _recompute_weights(e, qs, k_cols, allow, shift):
    """Fill the tile buffer e (rows, cols) with P / w = exp(S - shift), S recomputed."""
    np.matmul(qs, k_cols.T, out=e)  # S = scale q k^T of this tile
    if allow is not None:
        np.copyto(e, -np.inf, where=~allow)
    if shift.any():
        with np.errstate(over="ignore"):  # float16: may round to -inf (P = 0)
            e -= shift
    np.exp(e, out=e)


def _backward_head(q, k, v, mask, plan, dout, out, lse, grads):
    """One head, keys outer and queries inner; adds into grads = (dq, dk, dv)."""
    dq, dk, dv = grads
    qs = q * plan.scale  # (N, d)
    shift, w = backward_weights(lse[:, None])  # P = exp(S - shift) * w, (N, 1) each
    dout_w = dout * w  # (N, d_v) the row factor w moves onto the small arrays
    delta_w = np.sum(dout * out, axis=-1, keepdims=True) * w  # (N, 1) D = rowsum
    size = min(plan.block_q, q.shape[0]) * min(plan.block_k, k.shape[0])
    buffers = np.empty(size, q.dtype), np.empty(size, q.dtype)  # two tiles: P, dS
    for cols in blocks(k.shape[0], plan.block_k):
        for rows in query_blocks(cols, q.shape[0], plan.block_q, plan.offset):
            allow = tile_mask(mask, plan.offset, rows, cols)
            if allow is False:
                continue
            e = tile_view(buffers[0], rows, cols)  # (rows, cols)
            _recompute_weights(e, qs[rows], k[cols], allow, shift[rows])  # P / w
            dv[cols] += e.T @ dout_w[rows]  # forward: out = P v -> dv = P^T dout
            ds = tile_view(buffers[1], rows, cols)  # w * dP, dP = dout v^T
            np.matmul(dout_w[rows], v[cols].T, out=ds)
            ds -= delta_w[rows]
            ds *= e  # dS = P * (dP - D), softmax backward without storing P
            dq[rows] += ds @ k[cols]  # forward: S = qs k^T -> dqs = dS k
            dk[cols] += ds.T @ qs[rows]  # dk = dS^T qs
    dq *= plan.scale  # qs = q * scale


def tiled_backward(dout, q, k, v, mask, plan, out, lse):
    """dq, dk, dv (each in its input's shape) from the global out and lse."""
    lead = out.shape[:-2]
    grads = [np.zeros(lead + a.shape[-2:], q.dtype) for a in (q, k, v)]
    qh, kh, vh, mh = _head_views(lead, q, k, v, mask)

    def work(h):
        head_mask = None if mh is None else mh[h]
        head_grads = [g[h] for g in grads]  # each head writes its own slices
        inputs = qh[h], kh[h], vh[h], head_mask
        _backward_head(*inputs, plan, dout[h], out[h], lse[h], head_grads)

    threads.run_slices(lead, work, plan.workers)
    return tuple(unbroadcast(g, a.shape) for g, a in zip(grads, (q, k, v), strict=True))


def check_blocks(block_q, block_k, workers=None):
    """Validated tile sizes (positive ints) and thread count (None: the default)."""
    return (
        V.positive_int("block_q", block_q),
        V.positive_int("block_k", block_k),
        V.workers_arg(workers),
    )


def flash_attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    causal,
    align="top_left",
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
    scale=None,
    workers=None,
):
    """out = softmax(scale * q k^T, masked) @ v, computed tile by tile.

    Args:
        q: (..., N, d) queries.
        k: (..., M, d) keys.
        v: (..., M, d_v) values.
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal: True or False (required): also apply the causal rule, ANDed with
            ``mask``.
        align: "top_left" (j <= i) or "bottom_right" (j <= i + M - N).
        block_q, block_k: tile size (any positive ints; they need not divide N, M).
        scale: score scale, default 1/sqrt(d).
        workers: threads over the (batch, head) slices, None for
            ``validate.default_workers()`` (``threads.run_slices``); the result is
            bit-identical whatever it is. The backward uses the same.

    Returns:
        out (..., N, d_v) and a FlashCache; ``cache.lse`` is the (..., N) log-sum-exp.
    """
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    bq, bk, workers = check_blocks(block_q, block_k, workers)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    plan = TilePlan(offset, scale, bq, bk, workers)
    out, lse = tiled_forward(q, k, v, mask, plan)
    return out, FlashCache(q, k, v, mask, out, lse, plan)


def flash_attention_backward(dout, cache):
    """Gradients of flash_attention_forward by recomputation from ``cache.lse``.

    Args:
        dout: (..., N, d_v) upstream gradient.
        cache: from ``flash_attention_forward``.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v), each in its input's shape.
    """
    q, k, v, mask, out, lse, plan = cache
    V.grad_shape("dout", dout, out.shape)
    return tiled_backward(dout, q, k, v, mask, plan, out, lse)

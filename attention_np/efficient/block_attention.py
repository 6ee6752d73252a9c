"""One query block against one key block, with the log-sum-exp: ring attention's unit.

Attention over keys split into disjoint blocks A and B is recovered exactly from the
blocks' partial results: with L = logaddexp(L_A, L_B),
out = e^(L_A - L) out_A + e^(L_B - L) out_B. So a rank that sees one key block at a
time only needs (out, lse) per block. The backward of one block needs the GLOBAL
lse and out: P = exp(S - L_global) and D = rowsum(dout * out_global);
``block_attention_cache`` builds that cache, and the sum over key blocks of
``block_attention_backward`` of these caches is the full gradient.

Causality by global positions: given ``q_positions`` (N,) and ``k_positions`` (M,),
key j is visible to query i when k_positions[j] <= q_positions[i]. When both are
arithmetic progressions with one step p > 0 (contiguous, striped or zigzag chunks)
that is j <= i + floor((q_0 - k_0) / p), a causal offset the tiles use to skip
future keys; otherwise the rule becomes a boolean (N, M) mask.

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), out (..., N, d_v),
lse (..., N); leading dimensions broadcast like ``@``.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .flash import (
    BLOCK_K,
    BLOCK_Q,
    TilePlan,
    check_blocks,
    tiled_backward,
    tiled_forward,
)


class BlockCache(NamedTuple):
    """What ``block_attention_backward`` needs: inputs, (global) out and lse."""

    q: np.ndarray  # (..., N, d)
    k: np.ndarray  # (..., M, d)
    v: np.ndarray  # (..., M, d_v)
    mask: np.ndarray | None  # the user mask ANDed with a positions rule, if any
    out: np.ndarray  # (..., N, d_v)
    lse: np.ndarray  # (..., N) log-sum-exp; -inf for rows that see no key
    plan: TilePlan


def _positions(name, positions, length, axis):
    """A validated (length,) array of non-negative integer positions."""
    if not isinstance(positions, (np.ndarray, list, tuple)):
        raise TypeError(
            f"{name} must be a 1-D integer array, got {type(positions).__name__}"
        )
    pos = np.asarray(positions)
    if pos.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {pos.dtype}")
    if pos.shape != (length,):
        raise ValueError(
            f"{name}{pos.shape} must have shape ({length},): one position per {axis}"
        )
    if pos.size and pos.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {int(pos.min())}")
    return pos.astype(np.int64)


def _step(pos):
    """The common difference of an arithmetic progression (length >= 2), else None."""
    gaps = np.diff(pos)
    return int(gaps[0]) if np.all(gaps == gaps[0]) else None


def _positions_rule(q_positions, k_positions):
    """(offset, None) when "key j visible to query i when k_positions[j] <=
    q_positions[i]" is a causal offset (j <= i + offset), else (None, (N, M) mask)."""
    steps = {_step(pos) for pos in (q_positions, k_positions) if pos.size > 1}
    if None not in steps and len(steps) <= 1 and all(s > 0 for s in steps):
        p = steps.pop() if steps else 1  # single positions fit any step
        if not (q_positions.size and k_positions.size):
            return 0, None  # no pairs at all
        return (int(q_positions[0]) - int(k_positions[0])) // p, None
    return None, k_positions[None, :] <= q_positions[:, None]  # (N, M)


def _rule(q, k, mask, causal, align, q_positions, k_positions):
    """(offset, mask) meaning ``causal``, ``align`` and the positions, for the tiles."""
    causal, align = V.causal_arg(causal), V.align_arg(align)
    N, M = q.shape[-2], k.shape[-2]
    if (q_positions is None) != (k_positions is None):
        raise ValueError(
            "q_positions and k_positions must be given together (or neither)"
        )
    if q_positions is None:
        return V.causal_offset(causal, align, N, M), mask
    q_pos = _positions("q_positions", q_positions, N, "query (q.shape[-2])")
    k_pos = _positions("k_positions", k_positions, M, "key (k.shape[-2])")
    if align != "top_left":
        raise ValueError(
            f"align={align!r} cannot be used with q_positions/k_positions: the "
            "positions already place queries and keys (leave align='top_left')"
        )
    if not causal:
        return None, mask
    offset, allow = _positions_rule(q_pos, k_pos)
    if allow is not None:
        mask = allow if mask is None else np.logical_and(mask, allow)
    return offset, mask


def _prepare(q, k, v, mask, causal, align, q_pos, k_pos, scale, blocks, workers):
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    bq, bk, workers = check_blocks(*blocks, V.workers_arg(workers))
    offset, mask = _rule(q, k, mask, causal, align, q_pos, k_pos)
    return q, k, v, mask, TilePlan(offset, scale, bq, bk, workers)


def block_attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    causal,
    align="top_left",
    q_positions=None,
    k_positions=None,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
    workers=None,
):
    """Attention of a block of queries against a block of keys, with its log-sum-exp.

    Args:
        q: (..., N, d), k: (..., M, d), v: (..., M, d_v).
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal: apply a causal rule (ANDed with ``mask``).
        align: "top_left" (j <= i) or "bottom_right" (j <= i + M - N).
        q_positions, k_positions: (N,), (M,) non-negative int global positions;
            then key j is visible to query i when k_positions[j] <= q_positions[i].
        scale: score scale, default 1/sqrt(d). block_q, block_k: tile size.
        workers: threads over the (batch, head) slices (None: the cores).

    Returns:
        out (..., N, d_v) normalised over this key block, and a BlockCache;
        ``cache.lse`` (..., N) is -inf for rows that see no key (their out is 0).
    """
    blocks = (block_q, block_k)
    q, k, v, mask, plan = _prepare(
        q, k, v, mask, causal, align, q_positions, k_positions, scale, blocks, workers
    )
    out, lse = tiled_forward(q, k, v, mask, plan)
    return out, BlockCache(q, k, v, mask, out, lse, plan)


def _global(name, a, shape, dtype):
    """A global out/lse array of exactly ``shape`` in q's dtype."""
    a = V.float_array(name, a)
    if a.shape != shape:
        raise ValueError(f"{name}{a.shape} must have shape {shape} (..., N[, d_v])")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}, q has {np.dtype(dtype)}")
    return a


def block_attention_cache(
    q,
    k,
    v,
    out,
    lse,
    mask=None,
    *,
    causal,
    align="top_left",
    q_positions=None,
    k_positions=None,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
    workers=None,
):
    """The cache ``block_attention_backward`` needs, from a GLOBAL out and lse.

    With out and lse of attention over ALL the keys (of which k, v are one block),
    the backward uses P = exp(S - lse) and D = rowsum(dout * out): the sum over key
    blocks of ``block_attention_backward`` of these caches is the full gradient
    (ring attention's backward). Arguments as in ``block_attention_forward``, plus
    out (..., N, d_v) and lse (..., N), the global results.
    """
    blocks = (block_q, block_k)
    q, k, v, mask, plan = _prepare(
        q, k, v, mask, causal, align, q_positions, k_positions, scale, blocks, workers
    )
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    N, d_v = q.shape[-2], v.shape[-1]
    out = _global("out", out, lead + (N, d_v), q.dtype)  # (..., N, d_v)
    lse = _global("lse", lse, lead + (N,), q.dtype)  # (..., N)
    return BlockCache(q, k, v, mask, out, lse, plan)


def block_attention_backward(dout, cache):
    """Gradients of one query block against one key block.

    Each tile uses P = exp(S - cache.lse) and D = rowsum(dout * cache.out), so with
    a cache of ``block_attention_cache`` (global out, lse) this is the key block's
    share of the full gradient; with the forward's own cache, the plain backward.

    Args:
        dout: (..., N, d_v) upstream gradient (of the global output).
        cache: from ``block_attention_forward`` or ``block_attention_cache``.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v), each in its input's shape.
    """
    q, k, v, mask, out, lse, plan = cache
    V.grad_shape("dout", dout, out.shape)
    dout = np.asarray(dout, dtype=q.dtype)
    return tiled_backward(dout, q, k, v, mask, plan, out, lse)

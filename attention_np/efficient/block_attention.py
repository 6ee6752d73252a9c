"""One query block against one key block, with the log-sum-exp: ring attention's unit.

Attention over keys split into disjoint blocks A and B is recovered exactly from the
blocks' partial results: with L = logaddexp(L_A, L_B),
out = e^(L_A - L) out_A + e^(L_B - L) out_B. So a rank that sees one key block at a
time only needs (out, lse) per block. The backward of one block needs the GLOBAL
lse and out: P = exp(S - L_global) and D = rowsum(dout * out_global); summing it
over all key blocks gives the full gradient.

Global positions: query q_start + i may see key k_start + j under a causal rule when
j <= i + causal_offset with causal_offset = q_start - k_start.

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), out (..., N, d_v),
lse (..., N); leading dimensions broadcast like ``@``.
"""

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


def _plan(q, k, v, mask, causal_offset, scale, block_q, block_k, workers):
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    bq, bk, workers = check_blocks(block_q, block_k, workers)
    if causal_offset is not None and (
        isinstance(causal_offset, (bool, np.bool_))
        or not isinstance(causal_offset, (int, np.integer))
    ):
        raise TypeError(f"causal_offset must be an int or None, got {causal_offset!r}")
    offset = None if causal_offset is None else int(causal_offset)
    return q, k, v, TilePlan(offset, scale, bq, bk, workers)


def _global(name, a, shape, dtype):
    """A global dout/out/lse array of exactly ``shape`` in q's dtype."""
    a = V.float_array(name, a)
    if a.shape != shape:
        raise ValueError(f"{name}{a.shape} must have shape {shape} (..., N[, d_v])")
    return a.astype(dtype, copy=False)


def block_attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    causal_offset=None,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
    workers=1,
):
    """Attention of a block of queries against a block of keys, with its log-sum-exp.

    The building block of ring attention: partial results over disjoint key blocks
    merge exactly through their log-sum-exps. With global positions, query
    ``q_start + i`` may see key ``k_start + j`` when ``causal_offset = q_start -
    k_start`` satisfies ``j <= i + causal_offset``.

    Args:
        q: (..., N, d), k: (..., M, d), v: (..., M, d_v).
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        causal_offset: int, or None for no causal rule.
        scale: score scale, default 1/sqrt(d).
        block_q, block_k: tile size.
        workers: threads over the (batch, head) slices (see flash_attention_forward).

    Returns:
        out (..., N, d_v) normalised over this key block, lse (..., N) (-inf for
        rows that see no key of the block; their out rows are 0).
    """
    q, k, v, plan = _plan(
        q, k, v, mask, causal_offset, scale, block_q, block_k, workers
    )
    return tiled_forward(q, k, v, mask, plan)


def block_attention_backward(
    dout,
    q,
    k,
    v,
    out,
    lse,
    mask=None,
    *,
    causal_offset=None,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
    workers=1,
):
    """Gradients of one query block against one key block, given the GLOBAL out, lse.

    Each tile uses P = exp(S - lse) with the log-sum-exp over *all* keys and
    D = rowsum(dout * out) with the *final* output, so the sum of this function over
    every key block equals the gradient of full attention (ring attention's
    backward). With out, lse from block_attention_forward on all keys it is the
    ordinary backward.

    Args:
        dout: (..., N, d_v) upstream gradient of the global output.
        q, k, v, mask, causal_offset, scale, block_q, block_k, workers: as in the
            forward.
        out: (..., N, d_v) global output; lse: (..., N) global log-sum-exp.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v): this key block's share.
    """
    q, k, v, plan = _plan(
        q, k, v, mask, causal_offset, scale, block_q, block_k, workers
    )
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    N, d_v = q.shape[-2], v.shape[-1]
    dout = _global("dout", dout, lead + (N, d_v), q.dtype)  # (..., N, d_v)
    out = _global("out", out, lead + (N, d_v), q.dtype)  # (..., N, d_v)
    lse = _global("lse", lse, lead + (N,), q.dtype)  # (..., N)
    return tiled_backward(dout, q, k, v, mask, plan, out, lse)

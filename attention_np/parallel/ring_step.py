"""What one rank computes at one ring step: shared by the simulated and the MPI ring.

Forward: for each tile of the step (``layouts.step_tiles``), the block attention of
the tile's queries against the held key/value block, merged into the running
(out, lse) of those rows. Backward: the same tiles, with the weights recomputed from
the GLOBAL lse, P = exp(S - lse); dq stays home, dk and dv go into buffers that
travel back to the block's owner.

The simulated ring and the MPI ring call these same functions in the same order, so
they produce bit-identical results.

Shape legend: q (..., c, d), k (..., c, d), v (..., c, d_v), out (..., c, d_v),
lse (..., c); c tokens per rank.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..efficient import block_attention_backward, block_attention_forward
from ..efficient.flash import BLOCK_K, BLOCK_Q
from .layouts import check_split, step_tiles, tile_pairs
from .merge import merge_partials


class RingPlan(NamedTuple):
    """Everything a rank needs to know about the ring besides its own arrays."""

    layout: str
    n_ranks: int
    c: int  # tokens per rank
    causal: bool
    scale: float | None
    block_q: int = BLOCK_Q
    block_k: int = BLOCK_K

    def tiles(self, rank, t):
        """(src, tiles): the block rank holds at step t and the tiles it computes."""
        src = (rank - t) % self.n_ranks
        return src, step_tiles(
            self.layout, rank, src, self.n_ranks, self.c, self.causal
        )


def make_plan(layout, seq_len, n_ranks, *, causal, scale, block_q, block_k):
    """A validated RingPlan for N = seq_len tokens over n_ranks ranks."""
    c = check_split(layout, seq_len, n_ranks)
    causal = V.bool_arg("causal", causal)
    return RingPlan(layout, n_ranks, c, causal, scale, block_q, block_k)


def _options(plan, tile):
    return {
        "causal_offset": tile.offset,
        "scale": plan.scale,
        "block_q": plan.block_q,
        "block_k": plan.block_k,
    }


def forward_step(q, k, v, out, lse, tiles, plan):
    """Merge this key/value block into (out, lse) in place; return the pairs done."""
    for tile in tiles:
        rows, cols = tile.rows, tile.cols
        # this tile's partial result: o_b (..., rows, d_v), lse_b (..., rows)
        o_b, lse_b = block_attention_forward(
            q[..., rows, :], k[..., cols, :], v[..., cols, :], **_options(plan, tile)
        )
        out[..., rows, :], lse[..., rows] = merge_partials(
            out[..., rows, :], lse[..., rows], o_b, lse_b
        )
    return sum(tile_pairs(tile) for tile in tiles)


def backward_step(dout, q, k, v, out, lse, tiles, plan, grads):
    """Add this block's gradients into grads = (dq, dk_part, dv_part) in place.

    out and lse are the rank's FINAL (global) forward results for its queries.
    """
    dq, dk, dv = grads
    for tile in tiles:
        rows, cols = tile.rows, tile.cols
        dq_t, dk_t, dv_t = block_attention_backward(
            dout[..., rows, :],
            q[..., rows, :],
            k[..., cols, :],
            v[..., cols, :],
            out[..., rows, :],
            lse[..., rows],
            **_options(plan, tile),
        )
        dq[..., rows, :] += dq_t
        dk[..., cols, :] += dk_t
        dv[..., cols, :] += dv_t
    return sum(tile_pairs(tile) for tile in tiles)


def add_into(acc, parts):
    """Add this step's (dk, dv) parts into the travelling accumulators, in place.

    At step 0 (``acc`` is None) the accumulators start as the parts, on the block's
    owner. Every rank adds in this same order, simulated or MPI.
    """
    if acc is None:
        return parts
    for a, part in zip(acc, parts, strict=True):
        a += part
    return acc


def empty_partial(q, v):
    """The merge's identity for q's rows: out = 0 (..., c, d_v), lse = -inf (..., c)."""
    lead = np.broadcast_shapes(q.shape[:-2], v.shape[:-2])
    out = np.zeros(lead + (q.shape[-2], v.shape[-1]), q.dtype)  # (..., c, d_v)
    lse = np.full(lead + (q.shape[-2],), -np.inf, q.dtype)  # (..., c)
    return out, lse

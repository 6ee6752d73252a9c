"""What one rank computes at one ring step: shared by the simulated and the MPI ring.

Queries are split over the ranks by the layout over N, keys and values by the same
layout over M. Forward: for each tile of the step, the block attention of the
tile's queries against the held key/value block, merged into the running
(out, lse) of those rows. Backward: the same tiles, with the weights recomputed from
the GLOBAL lse, P = exp(S - lse) (``block_attention_cache``); dq stays home, dk and
dv go into buffers that travel back to the block's owner.

Causality is by global positions: key position m is visible to query position n
when m <= n (+ M - N for "bottom_right"). In self-attention (N == M) the layouts'
tiles (``layouts.step_tiles``) skip the future; otherwise each step is one tile and
block attention turns the positions into a causal offset or a mask. A ``mask``
(..., N, M) is sliced: each rank keeps the rows of its queries, and each step takes
the columns of the held block's keys.

The simulated ring and the MPI ring call these same functions in the same order, so
they produce bit-identical results.

Shape legend: q (..., c, d), k (..., c_k, d), v (..., c_k, d_v), out (..., c, d_v),
lse (..., c); c = N / P queries and c_k = M / P keys per rank.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..efficient import (
    block_attention_backward,
    block_attention_cache,
    block_attention_forward,
)
from ..efficient.flash import BLOCK_K, BLOCK_Q
from .layouts import Tile, check_split, layout_positions, step_tiles, tile_pairs
from .merge import merge_partials


class StepWork(NamedTuple):
    """The work of one rank at one step: the block it holds and the tiles."""

    rank: int
    src: int  # owner of the key/value block held at this step
    tiles: tuple  # layouts.Tile rectangles of the local (c, c_k) score block


class RingPlan(NamedTuple):
    """Everything a rank needs to know about the ring besides its own arrays."""

    layout: str
    n_ranks: int
    q_positions: np.ndarray  # (P, c) global query positions of each rank
    k_positions: np.ndarray  # (P, c_k) global key positions of each rank
    causal: bool
    align: str
    scale: float | None
    block_q: int = BLOCK_Q
    block_k: int = BLOCK_K

    @property
    def c(self):
        """Queries per rank."""
        return self.q_positions.shape[1]

    @property
    def self_attention(self):
        """N == M: the layouts' tiles apply (both sides split the same way)."""
        return self.q_positions.shape == self.k_positions.shape

    def step(self, rank, t):
        """StepWork of ``rank`` at step t: it holds the block of (rank - t) mod P."""
        src = (rank - t) % self.n_ranks
        if self.self_attention:
            tiles = step_tiles(
                self.layout, rank, src, self.n_ranks, self.c, causal=self.causal
            )
        else:  # one tile; the global positions decide (block_attention)
            tiles = (Tile(slice(0, self.c), slice(0, self.k_positions.shape[1]), None),)
        return StepWork(rank, src, tiles)

    def tiles(self, rank, t):
        """(src, tiles) of ``rank`` at step t."""
        work = self.step(rank, t)
        return work.src, work.tiles


def make_plan(
    layout,
    seq_len,
    n_ranks,
    *,
    causal,
    align="top_left",
    kv_len=None,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
):
    """A validated RingPlan: N = seq_len queries, M = kv_len keys (default N)."""
    kv_len = seq_len if kv_len is None else kv_len
    check_split(layout, seq_len, n_ranks)
    check_split(layout, kv_len, n_ranks, "kv_len")
    V.causal_offset(causal, align, seq_len, kv_len)  # validates causal and align
    scale = None if scale is None else V.scale_arg(scale, 1)
    q_pos = layout_positions(layout, seq_len, n_ranks)  # (P, c)
    k_pos = layout_positions(layout, kv_len, n_ranks)  # (P, c_k)
    bq, bk = V.positive_int("block_q", block_q), V.positive_int("block_k", block_k)
    return RingPlan(layout, n_ranks, q_pos, k_pos, bool(causal), align, scale, bq, bk)


def _tile_positions(plan, work, tile):
    """(q_positions, k_positions) giving this tile's causal rule, or None if none."""
    if not plan.causal or (plan.self_attention and tile.offset is None):
        return None
    if plan.self_attention:  # the tile's local offset: j <= i + offset
        n_rows, n_cols = (
            tile.rows.stop - tile.rows.start,
            tile.cols.stop - tile.cols.start,
        )
        lift = max(tile.offset, 0), max(-tile.offset, 0)  # positions stay >= 0
        return np.arange(n_rows) + lift[0], np.arange(n_cols) + lift[1]
    N, M = plan.q_positions.size, plan.k_positions.size
    shift = 0 if plan.align == "top_left" else M - N  # key m <= query n + shift
    q_pos = plan.q_positions[work.rank][tile.rows] + max(shift, 0)
    k_pos = plan.k_positions[work.src][tile.cols] + max(-shift, 0)
    return q_pos, k_pos


def block_options(plan, work, tile, mask_rows):
    """Keyword arguments of block attention for one tile of one step."""
    positions = _tile_positions(plan, work, tile)
    mask = None
    if mask_rows is not None:  # rows of this rank's queries -> columns of the block
        keys = plan.k_positions[work.src][tile.cols]
        mask = np.take(mask_rows[..., tile.rows, :], keys, axis=-1)
    return {
        "mask": mask,
        "causal": positions is not None,
        "q_positions": None if positions is None else positions[0],
        "k_positions": None if positions is None else positions[1],
        "scale": plan.scale,
        "block_q": plan.block_q,
        "block_k": plan.block_k,
        "workers": 1,
    }


def step_pairs(plan, work):
    """(query, key) pairs the causal rule allows in this step's tiles (per head)."""
    if plan.self_attention or not plan.causal:
        return sum(tile_pairs(tile) for tile in work.tiles)
    tile = work.tiles[0]
    q_pos, k_pos = _tile_positions(plan, work, tile)
    return int(np.count_nonzero(k_pos[None, :] <= q_pos[:, None]))


def forward_step(q, k, v, mask_rows, partial, work, plan):
    """Merge the held key/value block into partial = (out, lse) in place; return the
    pairs computed."""
    out, lse = partial
    for tile in work.tiles:
        rows, cols = tile.rows, tile.cols
        # this tile's partial result: o_b (..., rows, d_v), cache.lse (..., rows)
        o_b, cache = block_attention_forward(
            q[..., rows, :],
            k[..., cols, :],
            v[..., cols, :],
            **block_options(plan, work, tile, mask_rows),
        )
        out[..., rows, :], lse[..., rows] = merge_partials(
            out[..., rows, :], lse[..., rows], o_b, cache.lse
        )
    return step_pairs(plan, work)


def backward_step(dout, q, k, v, mask_rows, final, work, plan, grads):
    """Add this block's gradients into grads = (dq, dk_part, dv_part) in place.

    final = (out, lse): the rank's FINAL (global) forward results for its queries.
    """
    out, lse = final
    dq, dk, dv = grads
    for tile in work.tiles:
        rows, cols = tile.rows, tile.cols
        cache = block_attention_cache(
            q[..., rows, :],
            k[..., cols, :],
            v[..., cols, :],
            out[..., rows, :],
            lse[..., rows],
            **block_options(plan, work, tile, mask_rows),
        )
        dq_t, dk_t, dv_t = block_attention_backward(dout[..., rows, :], cache)
        dq[..., rows, :] += dq_t
        dk[..., cols, :] += dk_t
        dv[..., cols, :] += dv_t
    return step_pairs(plan, work)


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


def empty_partial(q, k, v):
    """The merge's identity for q's rows: out = 0 (..., c, d_v), lse = -inf (..., c)."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    out = np.zeros(lead + (q.shape[-2], v.shape[-1]), q.dtype)  # (..., c, d_v)
    lse = np.full(lead + (q.shape[-2],), -np.inf, q.dtype)  # (..., c)
    return out, lse


def mask_rows(mask, plan, rank):
    """This rank's rows of a (..., N, M) mask, (..., c, M); None stays None."""
    if mask is None:
        return None
    N, M = plan.q_positions.size, plan.k_positions.size
    full = np.broadcast_to(mask, mask.shape[:-2] + (N, M))  # a view
    return np.take(full, plan.q_positions[rank], axis=-2)  # (..., c, M)

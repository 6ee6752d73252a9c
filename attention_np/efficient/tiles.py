"""Tiles of the (N, M) score matrix: which ones to compute, and where.

Tiled attention never builds the whole (N, M) score matrix. It walks over tiles
``rows x cols`` (a block of queries against a block of keys). ``tile_mask``
combines a causal rule ``j <= i + offset`` with a user mask and answers None (every
pair may attend), False (no pair: skip the tile) or a (rows, cols) boolean array.
With a causal rule, ``key_blocks`` / ``query_blocks`` cut the tiles at the diagonal
so that only diagonal tiles need a mask and future tiles are never visited.
The arithmetic on a tile lives in ``tile_softmax.py``.

Shape legend: N queries, M keys; a tile is (rows, cols) with rows <= block_q and
cols <= block_k.
"""

from functools import lru_cache

import numpy as np

from .. import validate as V


def blocks(n, size, start=0):
    """Slices [start, start + size), ... over range(start, n); the last may be short."""
    return [slice(a, min(a + size, n)) for a in range(start, n, size)]


def key_blocks(rows, M, block_k, offset):
    """Key slices for one block of queries. With a causal rule, keys that every row
    sees come first and the slices are cut at the diagonal, so only the last ones
    need a mask and keys in everyone's future are never visited."""
    if offset is None:
        return blocks(M, block_k)
    stop = min(max(rows.stop + offset, 0), M)  # key j visible to row i: j <= i + offset
    cut = min(max(rows.start + offset, 0), stop)  # keys [0, cut): seen by every row
    return blocks(cut, block_k) + blocks(stop, block_k, cut)


def query_blocks(cols, N, block_q, offset):
    """Query slices for one block of keys (the backward's inner loop), cut likewise:
    rows that see only part of the block first, then rows that see all of it."""
    if offset is None:
        return blocks(N, block_q)
    start = min(max(cols.start - offset, 0), N)  # first row that sees any key
    cut = min(max(cols.stop - offset, start), N)  # rows >= cut see every key
    return blocks(cut, block_q, start) + blocks(N, block_q, cut)


def tile_view(buffer, rows, cols):
    """A contiguous (rows, cols) array inside a flat buffer reused by every tile.

    Writing each tile's scores into the same memory (``np.matmul(..., out=)``)
    keeps exactly one tile alive; ``s = a @ b`` in a loop would hold two (the new
    one is built before the old one is freed).
    """
    n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
    return buffer[: n_rows * n_cols].reshape(n_rows, n_cols)


@lru_cache(maxsize=64)
def _causal_tile(n_rows, n_cols, shift):
    """(n_rows, n_cols) read-only: local key c allowed for local row r when c <= r +
    shift. Diagonal tiles repeat (every head, every block), so each is built once."""
    allow = np.arange(n_cols) <= np.arange(n_rows)[:, None] + shift  # (rows, cols)
    allow.flags.writeable = False
    return allow


def tile_mask(mask, offset, rows, cols):
    """Allowed pairs of one tile: None (all), False (none) or a (rows, cols) array.

    Args:
        mask: (N, M) boolean (a broadcast view is fine) or None.
        offset: causal offset (key j allowed for query i when j <= i + offset)
            or None for no causal rule.
        rows, cols: slices of query and key positions.
    """
    allow = None
    if offset is not None:
        if cols.start > rows.stop - 1 + offset:  # every key is in the future: skip
            return False
        if cols.stop - 1 > rows.start + offset:  # the tile straddles the diagonal
            shift = rows.start + offset - cols.start
            allow = _causal_tile(rows.stop - rows.start, cols.stop - cols.start, shift)
    if mask is not None:
        tile = mask[rows, cols]  # (rows, cols) view
        if allow is not None:
            tile = tile & allow
        if not tile.any():
            return False
        allow = None if tile.all() else tile
    return allow


def tile_schedule(N, M, block_q, block_k, *, causal, align="top_left", mask=None):
    """The tiles the forward computes, as (rows, cols, masked) triples.

    Args:
        N, M: numbers of queries and keys.
        block_q, block_k: tile size.
        causal: apply the causal rule (keyword-only, no default, as in every
            attention function); align: "top_left" or "bottom_right" when N != M.
        mask: optional (N, M) boolean mask; all-False tiles are skipped too.

    Returns:
        list of (rows slice, cols slice, masked), masked = the tile needs a mask.
    """
    for name, size in (("N", N), ("M", M), ("block_q", block_q), ("block_k", block_k)):
        V.positive_int(name, size)
    return offset_tile_schedule(
        N, M, block_q, block_k, V.causal_offset(causal, align, N, M), mask
    )


def offset_tile_schedule(N, M, block_q, block_k, offset, mask=None):
    """tile_schedule for a causal rule given as a raw offset (key j visible to query
    i when j <= i + offset, None for no rule): ring attention's per-step tiles, whose
    offsets come from global positions rather than an alignment."""
    tiles = []
    for rows in blocks(N, block_q):
        for cols in key_blocks(rows, M, block_k, offset):
            allow = tile_mask(mask, offset, rows, cols)
            if allow is not False:
                tiles.append((rows, cols, allow is not None))
    return tiles

"""How a sequence is split over P ranks, and which score tiles each ring step needs.

Three layouts (c = N / P tokens per rank):

- ``contiguous``: rank r holds tokens [r c, (r + 1) c).
- ``zigzag``: the sequence is cut into 2P chunks of h = c / 2 tokens; rank r holds
  chunks r and 2P - 1 - r (one early, one late chunk: balanced causal work).
- ``striped``: token i lives on rank i mod P (local index i // P).

At ring step t, rank r holds the key/value block of rank src = (r - t) mod P. Under a
causal mask, only some of its (query, key) pairs may attend. ``step_tiles`` lists the
rectangles of the local (c, c) score block that contain them, each with a causal
offset (key j of the tile allowed for query i when j <= i + offset; None = all):

| layout | src == r | src < r | src > r |
|---|---|---|---|
| contiguous | causal | everything | nothing |
| zigzag | causal | all queries x first key half | second query half x all keys |
| striped | causal (j <= i) | causal (j <= i) | strictly causal (j <= i - 1) |

Shape legend: P ranks, N tokens, c = N / P tokens per rank.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V

LAYOUTS = ("contiguous", "zigzag", "striped")


class Tile(NamedTuple):
    """A rectangle of one rank's local (c, c) score block at one ring step."""

    rows: slice  # local query rows
    cols: slice  # local key columns (of the block the rank holds)
    offset: int | None  # causal offset inside the tile, None = no causal rule


def check_split(layout, seq_len, n_ranks, name="seq_len"):
    """Validate a layout name, a length (called ``name``) and P; return c = N / P."""
    V.choice("layout", layout, LAYOUTS)
    N, P = V.positive_int(name, seq_len), V.positive_int("n_ranks", n_ranks)
    pieces = 2 * P if layout == "zigzag" else P
    if N % pieces:
        raise ValueError(
            f"the {layout} layout needs {name} divisible by "
            f"{'2 * n_ranks' if layout == 'zigzag' else 'n_ranks'} = {pieces}, "
            f"got {name}={N}, n_ranks={P}"
        )
    return N // P


def layout_positions(layout, seq_len, n_ranks):
    """(P, c) int array: row r = the global positions rank r holds, in local order.

    ``seq_len`` may be the number of queries N or of keys M: ring attention splits
    both with the same layout.
    """
    c = check_split(layout, seq_len, n_ranks)
    P = n_ranks
    if layout == "contiguous":
        return np.arange(seq_len).reshape(P, c)  # (P, c)
    if layout == "striped":
        return np.arange(seq_len).reshape(c, P).T.copy()  # (P, c) token i -> i mod P
    chunks = np.arange(seq_len).reshape(2 * P, c // 2)  # (2P, h)
    return np.concatenate([chunks[:P], chunks[::-1][:P]], axis=1)  # (P, c)


def token_owner(layout, seq_len, n_ranks):
    """The inverse map: (rank, local index) of every token, two (N,) int arrays."""
    positions = layout_positions(layout, seq_len, n_ranks)  # (P, c)
    rank = np.empty(seq_len, dtype=int)
    local = np.empty(seq_len, dtype=int)
    rank[positions] = np.arange(n_ranks)[:, None]
    local[positions] = np.arange(positions.shape[1])[None, :]
    return rank, local


def _check_positions(positions, n_parts=None):
    """A (P, c) integer array of positions, or a clear error."""
    if not isinstance(positions, np.ndarray) or positions.dtype.kind not in "iu":
        got = getattr(positions, "dtype", type(positions).__name__)
        raise TypeError(f"positions must be a (P, c) integer array, got {got}")
    if positions.ndim != 2:
        raise ValueError(f"positions must be (P, c), got shape {positions.shape}")
    if n_parts is not None and positions.shape[0] != n_parts:
        raise ValueError(
            f"positions{positions.shape} has {positions.shape[0]} rows for "
            f"{n_parts} parts: one row per rank"
        )


def shard(x, positions, axis=-2):
    """The P shards of x along the sequence ``axis``: a list of (..., c, ...) copies."""
    _check_positions(positions)
    x = np.asarray(x)
    length = x.shape[axis] if x.ndim else 0
    if positions.size and not 0 <= positions.min() <= positions.max() < length:
        raise ValueError(
            f"positions must lie in [0, {length}) (x{x.shape} along axis {axis})"
        )
    return [np.take(x, pos, axis=axis) for pos in positions]


def unshard(parts, positions, axis=-2):
    """Inverse of ``shard``: put every rank's part back at its global positions."""
    _check_positions(positions, len(parts))
    parts = [np.moveaxis(np.asarray(p), axis, 0) for p in parts]  # (c, ...) each
    for r, part in enumerate(parts):
        if part.shape[:1] != positions.shape[1:] or part.shape != parts[0].shape:
            raise ValueError(
                f"parts[{r}] has shape {part.shape} along axis {axis} first: every "
                f"part needs {positions.shape[1]} positions and the same shape"
            )
    full = np.empty((positions.size,) + parts[0].shape[1:], parts[0].dtype)  # (N, ...)
    for pos, part in zip(positions, parts, strict=True):
        full[pos] = part
    return np.moveaxis(full, 0, axis)


def _check_step(layout, rank, src, n_ranks, c):
    check_split(layout, V.positive_int("c", c) * n_ranks, n_ranks, "c * n_ranks")
    for name, r in (("rank", rank), ("src", src)):
        if V.positive_int(name, r, allow_zero=True) >= n_ranks:
            raise ValueError(f"{name} must be < n_ranks = {n_ranks}, got {r}")


def step_tiles(layout, rank, src, n_ranks, c, *, causal, align="top_left"):
    """Tiles of the (c, c) block (rank's queries x src's keys) that ring step needs.

    Self-attention (N = M = c P): ``align`` is checked but changes nothing.
    """
    _check_step(layout, rank, src, n_ranks, c)
    V.causal_offset(causal, align, c, c)  # (validates both)
    everything = slice(0, c)
    if not causal:
        return (Tile(everything, everything, None),)
    if src == rank:
        return (Tile(everything, everything, 0),)
    before = src < rank  # src's tokens come earlier (in the sense of each layout)
    if layout == "contiguous":
        return (Tile(everything, everything, None),) if before else ()
    if layout == "striped":
        return (Tile(everything, everything, 0 if before else -1),)
    h = c // 2  # zigzag: first chunk of rows/cols is early, the second is late
    if before:
        return (Tile(everything, slice(0, h), None),)
    return (Tile(slice(h, c), everything, None),)


def tile_pairs(tile):
    """How many (query, key) pairs of a tile may attend (the tile's useful work)."""
    if not isinstance(tile, Tile):
        raise TypeError(f"tile must be a layouts.Tile, got {type(tile).__name__}")
    n_rows = tile.rows.stop - tile.rows.start
    n_cols = tile.cols.stop - tile.cols.start
    if tile.offset is None:
        return n_rows * n_cols
    i = np.arange(n_rows)
    return int(np.clip(i + tile.offset + 1, 0, n_cols).sum())


def work_formula(layout, seq_len, n_ranks, *, causal, align="top_left"):
    """(P, P) int array [step t, rank r] of unmasked pairs, from the closed forms.

    Self-attention (N = M = seq_len): ``align`` is checked but changes nothing.

    contiguous: c(c+1)/2 at t = 0, then c^2 while t <= r, else 0;
    zigzag: c(c+1)/2 at t = 0, then c^2 / 2 (= 2 h h); striped: c(c+1)/2 while
    t <= r (src <= r), else c(c-1)/2; not causal: c^2 everywhere.
    """
    c = check_split(layout, seq_len, n_ranks)
    t, r = np.indices((n_ranks, n_ranks))  # (P, P) step and rank
    if V.causal_offset(causal, align, seq_len, seq_len) is None:
        return np.full((n_ranks, n_ranks), c * c)
    diagonal = c * (c + 1) // 2
    if layout == "contiguous":
        later = np.where(t <= r, c * c, 0)
    elif layout == "zigzag":
        later = np.full_like(t, c * c // 2)
    else:
        later = np.where(t <= r, diagonal, c * (c - 1) // 2)
    return np.where(t == 0, diagonal, later)

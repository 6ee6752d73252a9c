"""Tiles of the (N, M) score matrix: which to compute, and how to exponentiate one.

Tiled attention never builds the whole (N, M) score matrix. It walks over tiles
``rows x cols`` (a block of queries against a block of keys), and for each tile it
needs two answers:

- Which pairs inside it may attend? ``tile_mask`` combines a causal rule
  ``j <= i + offset`` with a user mask and answers None (every pair), False (no pair:
  skip the tile entirely) or a (rows, cols) boolean array.
- ``exp(S - ref)`` for a per-row reference ``ref``. Softmax does not care which
  reference a row uses, as long as ``exp`` neither overflows nor flushes the row's
  large entries to zero. The textbook choice is the row max. When a row's max lies
  in a safe window (``EXP_RANGE``) we use ``ref = 0`` instead, which skips a full
  pass over the tile (the subtraction); the online-softmax merge then puts every
  tile on a common reference.

Shape legend: N queries, M keys, d head width, d_v value width; a tile is
(rows, cols) with rows <= block_q and cols <= block_k.
"""

import numpy as np

# Row maxima inside [lo, hi] may be exponentiated without a shift: exp(hi) times
# any realistic row sum stays finite, and entries within ~40 of a row max >= lo are
# normal numbers, never denormals. float16 has no safe window (exp overflows at 11).
EXP_RANGE = {np.dtype(np.float32): (-30.0, 30.0), np.dtype(np.float64): (-300.0, 300.0)}


def blocks(n, size):
    """Slices [0, size), [size, 2 size), ... over range(n); the last may be short."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


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
            i = np.arange(rows.start, rows.stop)[:, None]  # (rows, 1)
            allow = np.arange(cols.start, cols.stop) <= i + offset  # (rows, cols)
    if mask is not None:
        tile = mask[rows, cols]  # (rows, cols) view
        if allow is not None:
            tile = tile & allow
        if not tile.any():
            return False
        allow = None if tile.all() else tile
    return allow


def in_exp_range(x):
    """True where exp(s) may be taken unshifted for a row whose max (or lse) is x."""
    lo, hi = EXP_RANGE.get(x.dtype, (1.0, 0.0))  # an empty window: always shift
    return (x >= lo) & (x <= hi)


def exp_tile(s, allow):
    """In place: s <- exp(s - ref), masked entries -> 0. Returns ref (rows, 1).

    ``ref`` is 0 for rows whose max is in the safe window, the row max for the
    others, and -inf for rows with no allowed key (their entries are all 0).
    """
    if allow is not None:
        np.copyto(s, -np.inf, where=~allow)  # masked scores -> -inf -> weight 0
    top = np.max(s, axis=-1, keepdims=True, initial=-np.inf)  # (rows, 1) row max
    ref = np.where(in_exp_range(top), 0.0, top)  # (rows, 1); -inf rows stay -inf
    shift = np.where(np.isneginf(ref), 0.0, ref)  # never subtract -inf (NaN)
    if shift.any():
        s -= shift  # only rows outside the safe window pay for this pass
    np.exp(s, out=s)
    return ref


def merge(m, acc, ref, part):
    """Online-softmax merge of two partial sums with references m and ref.

    acc and part hold sums of exp(S - m) [v, 1] and exp(S - ref) [v, 1] over
    disjoint key sets; the result uses the larger reference, so no factor exceeds 1.
    """
    m_new = np.maximum(m, ref)  # (rows, 1)
    base = np.where(np.isneginf(m_new), 0.0, m_new)  # -inf - (-inf) would be NaN
    acc *= np.exp(m - base)  # rescale the old sums to the new reference
    acc += np.exp(ref - base) * part
    return m_new, acc


def finish(m, acc):
    """Normalise: out = acc[:, :-1] / l and lse = m + log l (0 and -inf when l = 0)."""
    l = acc[:, -1:]  # (rows, 1) sum of exp(S - m)
    empty = l == 0  # fully masked rows
    safe_l = np.where(empty, 1.0, l)
    out = acc[:, :-1] / safe_l  # (rows, d_v)
    lse = np.where(empty, -np.inf, m + np.log(safe_l))  # (rows, 1)
    return out, lse[:, 0]


def backward_weights(lse):
    """Per-row (shift, w) with P = exp(S - shift) * w, given the stored log-sum-exp.

    In the safe window: shift 0 and w = exp(-lse), which folds the row factor into
    the small (rows, d) arrays instead of a pass over the tile. Outside it:
    shift = lse, w = 1. Fully masked rows (lse = -inf): shift 0, w = 0.
    """
    ok = in_exp_range(lse)
    empty = np.isneginf(lse)
    shift = np.where(ok | empty, 0.0, lse)  # (N, 1)
    w = np.where(ok, np.exp(-np.where(ok, lse, 0.0)), np.where(empty, 0.0, 1.0))
    return shift.astype(lse.dtype), w.astype(lse.dtype)


def tile_schedule(N, M, block_q, block_k, *, offset=None, mask=None):
    """Which tiles the tiled kernels compute: (n_q_blocks, n_k_blocks) boolean.

    Args:
        N, M: numbers of queries and keys.
        block_q, block_k: tile size.
        offset: causal offset (j <= i + offset allowed), None for no causal rule.
        mask: optional (N, M) boolean mask; all-False tiles are skipped too.
    """
    row_blocks, col_blocks = blocks(N, block_q), blocks(M, block_k)
    grid = np.zeros((len(row_blocks), len(col_blocks)), dtype=bool)
    for a, rows in enumerate(row_blocks):
        for b, cols in enumerate(col_blocks):
            grid[a, b] = tile_mask(mask, offset, rows, cols) is not False
    return grid

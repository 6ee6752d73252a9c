"""The online-softmax arithmetic on one tile of scores.

A tile contributes ``part = exp(S - ref) [v, 1]`` (weighted values and row sums)
with a per-row reference ``ref``; ``merge`` brings the running sums and the new
part to a common reference (the larger one), ``finish`` divides by the row sums.

Softmax does not care which reference a row uses, as long as ``exp`` neither
overflows nor flushes the row to zero. The textbook choice is the row max, which
costs two extra passes over the tile (max, subtract). ``tile_sums`` first tries
``ref = 0``: exp(S) directly. That is exact whenever a row's sum lands in the window
[e^lo, e^hi] of ``EXP_RANGE``; only the rows that do not (huge or tiny scores, or no
allowed key) are recomputed the textbook way. The backward uses the same window on
the stored log-sum-exp: P = exp(S) * exp(-lse) moves the row factor onto the
small (rows, d) arrays.

Shape legend: a tile s (rows, cols); v_ext = [v_cols, 1] (cols, d_v + 1);
part, acc (rows, d_v + 1); m, ref (rows, 1).
"""

import numpy as np

# Row sums (or log-sum-exps) inside [e^lo, e^hi] let exp(S) go unshifted: every
# entry is <= e^hi (no overflow even summed over a million keys times a large v),
# and a row with sum >= e^lo has max >= lo - log(cols), so its entries within ~40
# of that max are normal floats, never denormals. float16 has no such window.
EXP_RANGE = {np.dtype(np.float32): (-30.0, 30.0), np.dtype(np.float64): (-300.0, 300.0)}


def in_exp_range(x):
    """True where a log-sum-exp x allows exp(S) without a shift."""
    lo, hi = EXP_RANGE.get(x.dtype, (1.0, 0.0))  # an empty window: always shift
    return (x >= lo) & (x <= hi)


def _row_max_sums(s, v_ext):
    """The textbook path: ref = row max (-inf for rows with no allowed key)."""
    top = np.max(s, axis=-1, keepdims=True, initial=-np.inf)  # (rows, 1)
    with np.errstate(over="ignore"):  # float16: s - top may round to -inf (weight 0)
        s -= np.where(np.isneginf(top), 0.0, top)  # never -inf - (-inf) = NaN
    np.exp(s, out=s)
    return top, s @ v_ext


def tile_sums(qs, k_cols, v_ext, allow, s):
    """ref (rows, 1) and part = exp(S - ref) @ v_ext (rows, d_v + 1) for one tile.

    Args:
        qs: (rows, d) scaled queries; k_cols: (cols, d) keys; v_ext: (cols, d_v + 1).
        allow: None, or the (rows, cols) boolean tile (True = may attend).
        s: (rows, cols) buffer for the scores (overwritten).
    """
    np.matmul(qs, k_cols.T, out=s)  # S = scale q k^T for this tile only
    if allow is not None:
        np.copyto(s, -np.inf, where=~allow)  # masked scores -> -inf -> weight 0
    lo, hi = EXP_RANGE.get(s.dtype, (1.0, 0.0))
    if lo >= hi:
        return _row_max_sums(s, v_ext)
    with np.errstate(over="ignore", invalid="ignore"):  # such rows are redone below
        np.exp(s, out=s)  # ref = 0: no max pass, no subtraction pass
        part = s @ v_ext  # (rows, d_v + 1) = [sum p v, sum p]
    l = part[:, -1]
    redo = np.flatnonzero(~((l >= np.exp(lo)) & (l <= np.exp(hi))))  # NaN -> redo
    ref = np.zeros((s.shape[0], 1), s.dtype)
    if redo.size:
        s_redo = qs[redo] @ k_cols.T  # (redo, cols) fresh scores for those rows
        if allow is not None:
            np.copyto(s_redo, -np.inf, where=~allow[redo])
        ref[redo], part[redo] = _row_max_sums(s_redo, v_ext)
    return ref, part


def merge(m, acc, ref, part):
    """Online-softmax merge of two partial sums with references m and ref.

    acc and part hold sums of exp(S - m) [v, 1] and exp(S - ref) [v, 1] over
    disjoint key sets; the result uses the larger reference, so no factor exceeds 1.
    """
    if not (m.any() or ref.any()):  # both references 0: the sums simply add up
        acc += part
        return m, acc
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

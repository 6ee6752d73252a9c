"""Checkers for exercise 13: online softmax, one block of scores at a time.

Student signatures:
    online_softmax(x, block) -> (y, lse)
        x (..., M) scores (-inf = masked), read ``block`` entries at a time while
        keeping a running max m and a running sum l of exp(x - m) per row;
        lse (...,) = m + log l, y (..., M) = exp(x - lse); a row with no finite
        entry gives y = 0 and lse = -inf.
    online_attention(s, v, block) -> out
        s (..., N, M) scores, v (..., M, d_v) values; out (..., N, d_v) =
        softmax(s) @ v from one pass over the key blocks, with an accumulator of
        exp(s - m) @ v rescaled like l (the inner loop of FlashAttention); a fully
        masked row gives 0.

The planted mistakes run ``_stream``: the same recurrence with one thing changed.
"""

import numpy as np

from ..efficient.online_softmax import online_softmax
from ..softmax import softmax_forward
from .framework import Case, Checker
from .hints import in_rows, matches, matches_any, when

INF = np.inf


def _right(m_old, m_new):
    return np.exp(m_old - m_new)  # exp(-inf) = 0 when nothing was read yet


def _wrong(m_old, m_new):
    return np.exp(m_new - m_old)


def _stream(x, v, block, *, factor=_right, rescale=("l", "acc"), guard=True, m0=None):
    """A streaming pass with planted mistakes: {"m", "l", "lse", "acc", "out"}."""
    m = np.full(x.shape[:-1], -INF) if m0 is None else m0(x[..., :block])  # (...,)
    l = np.zeros(x.shape[:-1])  # (...,)
    acc = 0.0 if v is None else np.zeros(x.shape[:-1] + v.shape[-1:])  # (..., d_v)
    with np.errstate(all="ignore"):
        for start in range(0, x.shape[-1], block):
            xb = x[..., start : start + block]  # (..., b)
            m_new = np.maximum(m, xb.max(axis=-1))
            shift = np.where(np.isneginf(m_new), 0.0, m_new) if guard else m_new
            c = factor(m, shift)  # (...,) how much the old sums shrink
            e = np.exp(xb - shift[..., None])  # (..., b)
            l = (l * c if "l" in rescale else l) + e.sum(axis=-1)
            if v is not None:
                old = acc * c[..., None] if "acc" in rescale else acc
                acc = old + e @ v[..., start : start + block, :]  # (..., d_v)
            m = m_new
        out = None if v is None else acc / np.where(l == 0, 1.0, l)[..., None]
        return {"m": m, "l": l, "lse": m + np.log(l), "acc": acc, "out": out}


def _info(x, block):
    """Rows whose first block is fully masked (NaN-prone) and fully masked rows."""
    first_masked = np.all(np.isneginf(x[..., :block]), axis=-1)  # (...,)
    return {"block": block, "masked_start": first_masked,
            "empty_rows": np.all(np.isneginf(x), axis=-1)}  # fmt: skip


def _score_sets(rng):
    """(name, scores, block): random, increasing, masked, huge, batched."""
    g = rng.standard_normal
    masked = g((3, 6))
    masked[0, :2] = -INF  # row 0: the first block is masked
    masked[1, [1, 4]] = -INF
    masked[2] = -INF  # row 2: every key masked
    offsets = np.array([0.0, 2.0, -1.0, 5.0, 0.5])
    huge = np.stack([1e4 + offsets, -1e4 - offsets])  # (2, 5)
    return [
        ("random rows, M not a multiple of the block", 2.0 * g((3, 7)), 2),
        ("increasing scores (the max changes at every block)",
         np.sort(3.0 * g((2, 9)), axis=-1), 3),
        ("masked scores, a masked first block, a fully masked row", masked, 2),
        ("scores of 1e4 and -1e4", huge, 2),
        ("batch of score matrices, one block holds the whole row", g((2, 3, 4)), 5),
    ]  # fmt: skip


def _softmax_cases(rng):
    out = []
    for name, x, block in _score_sets(rng):
        y, lse = online_softmax(x, block=block)
        label = f"{name}: x {x.shape}, block {block}"
        out.append(Case(label, (x, block), (y, lse), _info(x, block)))
    return out


def _y_lse(c, **planted):
    """{"y", "lse"} of a planted streaming pass, y computed from that lse."""
    x, block = c.args
    lse = _stream(x, None, block, **planted)["lse"]
    shift = np.where(np.isneginf(lse), INF, lse)  # a fully masked row: y = 0
    with np.errstate(all="ignore"):
        return {"y": np.exp(x - shift[..., None]), "lse": lse}


def _planted(c, **planted):
    """The answer with one mistake planted, for either part of the exercise."""
    if len(c.args) == 2:  # online_softmax(x, block)
        return _y_lse(c, **planted)
    return {"out": _stream(*c.args, **planted)["out"]}


def _wrong_factor(c):
    first_max = lambda xb: xb.max(axis=-1)  # or a student who starts from block 1
    return [_planted(c, factor=_wrong), _planted(c, factor=_wrong, m0=first_max)]


def _lse_without_max(c):
    x, block = c.args
    run = _stream(x, None, block)
    with np.errstate(all="ignore"):
        return [{"lse": np.log(run["l"])}, {"lse": run["l"]}]


NAN_TEXT = (
    "NaN in a row whose first block is all -inf: while nothing finite has been "
    "read, the running max is -inf and -inf - (-inf) = NaN. Shift by 0 instead "
    "while the max is -inf: np.where(np.isneginf(m_new), 0.0, m_new)."
)


def _nan_from_masked_start(f):
    """Test: NaN/inf in a row whose first block is masked, and in no other row."""
    if not in_rows("masked_start")(f):
        return False
    got, rows = np.asarray(f.got, dtype=float), f.case.info["masked_start"]
    finite = np.isfinite(got) if got.shape == rows.shape else np.isfinite(got).all(-1)
    return bool(finite[~rows].all())


COMMON_HINTS = (
    when(_nan_from_masked_start, NAN_TEXT),
    matches_any(
        _wrong_factor,
        "the rescaling factor is upside down: when the max grows from m_old to "
        "m_new, every old term exp(x - m_old) becomes exp(x - m_new), so multiply "
        "the old sums by exp(m_old - m_new) <= 1 (not exp(m_new - m_old)).",
    ),
    matches(
        lambda c: _planted(c, rescale=()),
        "when a block raises the running max, the running sum still holds terms "
        "exp(x - m_old): multiply it by exp(m_old - m_new) before adding the new "
        "block's exp(x - m_new).",
    ),
    matches(
        lambda c: _planted(c, m0=lambda xb: np.zeros(xb.shape[:-1])),
        "start the running max at -inf (nothing read yet), not at 0: with scores "
        "of -1e4, exp(x - 0) underflows to 0 and the sum is lost.",
    ),
)

SOFTMAX_HINTS = (
    when(
        in_rows("empty_rows", ("nonfinite", "value")),
        "a row with no finite score ends with m = -inf and l = 0: its y must be 0 "
        "and its lse -inf. exp(x - lse) gives NaN there (-inf - (-inf)): shift by "
        "+inf instead of lse in such a row.",
    ),
    *COMMON_HINTS,
    matches_any(
        _lse_without_max,
        "lse = m + log(l): the running sum l is relative to the running max m.",
    ),
)

ONLINE_SOFTMAX = Checker(
    title="online_softmax(x, block) -> (y, lse)",
    make_cases=_softmax_cases,
    outputs=("y", "lse"),
    arg_names=("x",),
    hints=SOFTMAX_HINTS,
    fallback="for each block: m_new = max(m, block max); l = l * exp(m - m_new) + "
    "sum(exp(block - m_new)); m = m_new. Then lse = m + log(l), y = exp(x - lse).",
)


def _attention_cases(rng):
    out = []
    for name, s, block in _score_sets(rng):
        v = rng.standard_normal(s.shape[:-2] + (s.shape[-1], 3))  # (..., M, d_v)
        label = f"{name}: s {s.shape}, v {v.shape}, block {block}"
        expected = softmax_forward(s)[0] @ v  # (..., N, d_v)
        out.append(Case(label, (s, v, block), expected, _info(s, block)))
    return out


ATTENTION_HINTS = (
    when(
        in_rows("empty_rows", ("nonfinite", "value")),
        "a fully masked row ends with acc = 0 and l = 0, and 0 / 0 = NaN: return 0 "
        "for it (divide by 1 where l == 0).",
    ),
    matches(
        lambda c: {"out": _stream(*c.args, rescale=("l",))["out"]},
        "the accumulator was not rescaled: when the max grows, acc holds terms "
        "exp(s - m_old) v too, so multiply it by exp(m_old - m_new) like l.",
    ),
    matches(
        lambda c: {"out": _stream(*c.args)["acc"]},
        "divide the accumulator by the running sum at the end: out = acc / l "
        "(each row of weights sums to 1).",
    ),
    *COMMON_HINTS,
)

ONLINE_ATTENTION = Checker(
    title="online_attention(s, v, block) -> out",
    make_cases=_attention_cases,
    outputs=("out",),
    arg_names=("s", "v"),
    hints=ATTENTION_HINTS,
    fallback="for each key block: m_new = max(m, block max); c = exp(m - m_new); "
    "p = exp(s_block - m_new); l = l * c + p.sum(-1); acc = acc * c + p @ v_block. "
    "Then out = acc / l.",
)


def check_online_softmax(fn):
    """Check a student's ``online_softmax(x, block) -> (y, lse)``.

    x (..., M) scores (-inf = masked) read ``block`` entries at a time; y (..., M)
    the softmax over the last axis and lse (...,) its log-sum-exp; a fully masked
    row gives y = 0, lse = -inf. Returns True when every case passes.
    """
    with np.errstate(invalid="ignore"):  # comparing lse = -inf with -inf: no warning
        return ONLINE_SOFTMAX.run(fn)


def check_online_attention(fn):
    """Check a student's ``online_attention(s, v, block) -> out``.

    s (..., N, M) scores, v (..., M, d_v); out (..., N, d_v) = softmax(s) @ v
    computed in one pass over blocks of ``block`` keys; a fully masked row gives 0.
    Returns True when every case passes.
    """
    return ONLINE_ATTENTION.run(fn)

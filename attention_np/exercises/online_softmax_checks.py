"""Checkers for exercise 14a: online softmax, one block of scores at a time.

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

The cases include block maxima that fall by more than 709 from block to block
(where a block max used in place of the running max overflows), fully masked
blocks at the start and in the middle of a row, a block of 1 and one longer than
the row. The planted mistakes run ``_stream``: the recurrence with one thing changed.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, matches_any

INF = np.inf


def _right(m_old, shift):
    return np.exp(m_old - shift)  # exp(-inf) = 0 when nothing was read yet


def _upside_down(m_old, shift):
    return np.exp(shift - m_old)


def _stream(x, v, block, *, factor=_right, rescale=("l", "acc"), guard=True,
            m0=None, running=True):  # fmt: skip
    """A streaming pass with planted mistakes: {"m", "l", "lse", "acc"}."""
    m = np.full(x.shape[:-1], -INF) if m0 is None else m0(x)  # (...,)
    l = np.zeros(x.shape[:-1])  # (...,)
    acc = 0.0 if v is None else np.zeros(x.shape[:-1] + v.shape[-1:])  # (..., d_v)
    with np.errstate(all="ignore"):
        for start in range(0, x.shape[-1], block):
            xb = x[..., start : start + block]  # (..., b)
            m_new = np.maximum(m, xb.max(axis=-1)) if running else xb.max(axis=-1)
            shift = np.where(np.isneginf(m_new), 0.0, m_new) if guard else m_new
            c = factor(m, shift)  # (...,) how much the old sums shrink
            e = np.exp(xb - shift[..., None])  # (..., b)
            l = (l * c if "l" in rescale else l) + e.sum(axis=-1)
            if v is not None:
                old = acc * c[..., None] if "acc" in rescale else acc
                acc = old + e @ v[..., start : start + block, :]  # (..., d_v)
            m = m_new
        return {"m": m, "l": l, "lse": m + np.log(l), "acc": acc}


def _score_sets(rng):
    """(name, scores, block)."""
    g = rng.standard_normal
    falling = np.concatenate(  # block maxima fall by ~800 and ~1000
        [800 + g((2, 3)), g((2, 3)), -1000 + g((2, 3))], axis=-1
    )
    holes = g((3, 8))
    holes[0, :2] = -INF  # the first block is fully masked
    holes[1, 4:6] = -INF  # a fully masked block in the middle
    holes[2, [0, 1, 4, 5]] = -INF  # both
    empty = g((2, 5))
    empty[1] = -INF  # every key masked
    offsets = np.array([0.0, 2.0, -1.0, 5.0, 0.5])
    huge = np.stack([1e4 + offsets, -1e4 - offsets]) + 0.1 * g((2, 5))
    single = g((2, 5))
    single[:, 0] = -INF
    return [
        ("random rows, M not a multiple of the block", 2.0 * g((3, 7)), 2),
        ("increasing scores (the max grows at every block)",
         np.sort(3.0 * g((2, 9)), axis=-1), 3),
        ("block maxima falling by ~1000", falling, 3),
        ("fully masked blocks at the start and in the middle of rows", holes, 2),
        ("a fully masked row", empty, 2),
        ("scores of 1e4 and -1e4", huge, 2),
        ("a block of 1, first entry masked", single, 1),
        ("batch, one block longer than the row", g((2, 3, 4)), 7),
        ("batch and heads", g((2, 2, 3, 5)), 2),
    ]  # fmt: skip


def _softmax_cases(rng):
    out = []
    for name, x, block in _score_sets(rng):
        label = f"{name}: x {x.shape}, block {block}"
        expected = (_ref.softmax(x), _ref.logsumexp(x))
        out.append(Case(label, (x, block), expected))
    return out


def _y_lse(c, guard_y=True, **planted):
    """{"y", "lse"} of a planted streaming pass, y computed from that lse."""
    x, block = c.args
    lse = _stream(x, None, block, **planted)["lse"]
    shift = np.where(np.isneginf(lse), INF, lse) if guard_y else lse
    with np.errstate(all="ignore"):
        return {"y": np.exp(x - shift[..., None]), "lse": lse}


def _planted(c, **planted):
    """The answer with one mistake planted, for either part of the exercise."""
    if len(c.args) == 2:  # online_softmax(x, block)
        return _y_lse(c, **planted)
    run = _stream(*c.args, **planted)
    with np.errstate(all="ignore"):
        return {"out": run["acc"] / np.where(run["l"] == 0, 1.0, run["l"])[..., None]}


NAN_TEXT = (
    "NaN after a fully masked first block: while nothing finite has been read, "
    "the running max is -inf and -inf - (-inf) = NaN. Shift by 0 instead while "
    "the max is still -inf."
)

COMMON_HINTS = (
    matches(lambda c: _planted(c, guard=False), NAN_TEXT),
    matches(
        lambda c: _planted(c, running=False),
        "you used each block's own max where the running max belongs: when a "
        "block's max is lower than an earlier one, exp(m_old - m_block) overflows "
        "(see the case with falling maxima), and after a fully masked block the "
        "running max must not fall back to -inf. The running max only grows.",
    ),
    matches(
        lambda c: _planted(c, factor=_upside_down),
        "the rescaling factor is upside down: when the max grows from m_old to "
        "m_new, every old term exp(x - m_old) becomes exp(x - m_new), so the old "
        "sums shrink by exp(m_old - m_new) <= 1.",
    ),
    matches(
        lambda c: _planted(c, rescale=()),
        "when a block raises the running max, the running sum still holds terms "
        "exp(x - m_old): they must be rescaled to the new max before the new "
        "block's terms are added.",
    ),
    matches(
        lambda c: _planted(c, m0=lambda x: np.zeros(x.shape[:-1])),
        "start the running max at -inf (nothing read yet), not at 0: with scores "
        "of -1e4, exp(x - 0) underflows to 0 and the sum is lost.",
    ),
)

SOFTMAX_HINTS = (
    matches(
        lambda c: _y_lse(c, guard_y=False),
        "a row with no finite score ends with m = -inf and l = 0: its y must be 0 "
        "and its lse -inf, but exp(x - lse) is NaN there (-inf - (-inf)).",
    ),
    *COMMON_HINTS,
    matches_any(
        lambda c: [{"lse": np.log(_stream(c.args[0], None, c.args[1])["l"])}],
        "lse = m + log(l): the running sum l is relative to the running max m.",
    ),
)

ONLINE_SOFTMAX = Checker(
    title="online_softmax(x, block) -> (y, lse)",
    make_cases=_softmax_cases,
    outputs=("y", "lse"),
    arg_names=("x",),
    hints=SOFTMAX_HINTS,
    forbidden=answer_key.ONLINE_SOFTMAX + answer_key.REFERENCE,
    call="check_online_softmax(online_softmax)",
)


def _attention_cases(rng):
    out = []
    for name, s, block in _score_sets(rng):
        v = rng.standard_normal(s.shape[:-2] + (s.shape[-1], 3))  # (..., M, d_v)
        label = f"{name}: s {s.shape}, v {v.shape}, block {block}"
        out.append(Case(label, (s, v, block), _ref.softmax(s) @ v))
    return out


def _unguarded_division(c):
    run = _stream(*c.args)
    with np.errstate(all="ignore"):
        return {"out": run["acc"] / run["l"][..., None]}


ATTENTION_HINTS = (
    matches(
        _unguarded_division,
        "a fully masked row ends with acc = 0 and l = 0, and 0 / 0 = NaN: its "
        "output must be 0.",
    ),
    matches(
        lambda c: _planted(c, rescale=("l",)),
        "the accumulator was not rescaled: when the max grows, acc holds terms "
        "exp(s - m_old) v too, so it needs the same factor as l.",
    ),
    matches(
        lambda c: {"out": _stream(*c.args)["acc"]},
        "the accumulator still has to be divided by the running sum at the end "
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
    forbidden=answer_key.ONLINE_SOFTMAX + answer_key.ATTENTION + answer_key.REFERENCE,
    call="check_online_attention(online_attention)",
)


def check_online_softmax(fn, *, seed=None):
    """Check a student's ``online_softmax(x, block) -> (y, lse)``.

    x (..., M) scores (-inf = masked) read ``block`` entries at a time; y (..., M)
    the softmax over the last axis and lse (...,) its log-sum-exp; a fully masked
    row gives y = 0, lse = -inf. Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    with np.errstate(invalid="ignore"):  # comparing lse = -inf with -inf: no warning
        grade(ONLINE_SOFTMAX, fn, seed=seed)


def check_online_attention(fn, *, seed=None):
    """Check a student's ``online_attention(s, v, block) -> out``.

    s (..., N, M) scores, v (..., M, d_v); out (..., N, d_v) = softmax(s) @ v
    computed in one pass over blocks of ``block`` keys; a fully masked row gives 0.
    Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(ONLINE_ATTENTION, fn, seed=seed)

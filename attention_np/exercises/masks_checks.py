"""Checkers for exercise 03a: causal and key-padding masks (True = may attend).

Student signatures:
    causal_mask(N, M) -> (N, M) bool       query i may attend key j when j <= i
    padding_mask(lengths, M) -> (B, 1, 1, M) bool
                                           key j of sequence b is real when
                                           j < lengths[b]; lengths a (B,) integer
                                           array; broadcasts over heads and queries

Sizes and lengths are drawn at random on every run.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, matches, matches_any, when


def _causal_cases(rng):
    # Sizes come from ranges wide enough that answers copied from earlier runs
    # (a table of (N, M) -> mask) almost never cover a fresh run.
    def size(low, high):
        return int(rng.integers(low, high))

    n, small, one = size(3, 65), size(1, 48), size(2, 65)
    sizes = [("N = M", n, n), ("N < M", small, small + size(1, 48)),
             ("N > M", small + size(1, 48), small), ("one query", 1, one)]  # fmt: skip
    return [
        Case(f"{name}: N={N}, M={M}", (N, M), _ref.causal_allow(N, M), {"N": N, "M": M})
        for name, N, M in sizes
    ]


def _grid(c):
    n, m = c.args
    return np.arange(n)[:, None], np.arange(m)[None, :]  # (N, 1), (1, M)


def _bottom_right(c):
    i, j = _grid(c)
    return j <= i + (c.info["M"] - c.info["N"])


CAUSAL_HINTS = (
    matches(
        lambda c: _grid(c)[1] < _grid(c)[0],
        "the diagonal is missing: a token may attend to itself (key j = query i).",
    ),
    matches(
        lambda c: _grid(c)[1] >= _grid(c)[0],
        "this lets queries see the future: key j is visible to query i only when "
        "j <= i (the lower triangle).",
    ),
    matches(
        lambda c: ~c.expected,
        "inverted mask: True means 'may attend', so the past and the diagonal "
        "(j <= i) must be True and the future False.",
    ),
    matches(
        _bottom_right,
        "your diagonal is aligned bottom-right (j <= i + M - N, the KV-cache "
        "convention). This exercise asks for top-left alignment, j <= i.",
    ),
    matches(
        lambda c: (_grid(c)[1] <= _grid(c)[0]).T,
        "the mask is transposed: one row per query (N rows) and one column per key "
        "(M columns).",
    ),
    when(
        kind("shape"),
        "the mask has one row per query and one column per key: shape (N, M).",
    ),
)

CAUSAL = Checker(
    title="causal_mask(N, M) -> (N, M) bool",
    make_cases=_causal_cases,
    outputs=("mask",),
    hints=CAUSAL_HINTS,
    forbidden=answer_key.MASKS + answer_key.REFERENCE,
    call="check_causal_mask(causal_mask)",
)


def _padding_cases(rng):
    out = []
    B_many = int(rng.integers(3, 7))
    for name, B in [
        ("several sequences", B_many),
        ("two sequences", 2),
        ("one sequence", 1),
    ]:
        M = int(rng.integers(3, 40))
        lengths = rng.integers(0, M + 1, size=B)
        if B > 2:
            lengths[rng.permutation(B)[:2]] = [0, M]  # an empty and a full sequence
        label = f"{name}: lengths={lengths.tolist()}, M={M}"
        out.append(Case(label, (lengths, M), _ref.padding_allow(lengths, M), {"M": M}))
    return out


def _keys(c, op, shift=0):
    lengths, m = c.args
    keep = op(np.arange(m)[None, :], lengths[:, None] + shift)  # (B, M)
    return keep[:, None, None, :]  # (B, 1, 1, M)


PADDING_HINTS = (
    matches(
        lambda c: ~c.expected,
        "inverted mask: True means 'may attend', so the real keys (j < length) must "
        "be True and the padding False.",
    ),
    matches_any(
        lambda c: [{"mask": _keys(c, np.less_equal)}, {"mask": _keys(c, np.less, -1)}],
        "off by one: positions are counted from 0, so a sequence of length L has "
        "the real keys 0 .. L-1.",
    ),
    when(
        lambda f: f.kind == "shape" and np.size(f.got) == np.size(f.case.expected),
        "right number of entries, wrong shape: return (B, 1, 1, M) so the mask "
        "broadcasts over heads and queries.",
    ),
)

PADDING = Checker(
    title="padding_mask(lengths, M) -> (B, 1, 1, M) bool",
    make_cases=_padding_cases,
    outputs=("mask",),
    arg_names=("lengths",),
    hints=PADDING_HINTS,
    forbidden=answer_key.MASKS + answer_key.REFERENCE,
    call="check_padding_mask(padding_mask)",
)


def check_causal_mask(fn, *, seed=None):
    """Check a student's ``causal_mask(N, M)``: an (N, M) boolean array, True where
    j <= i (top-left aligned). Raises AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(CAUSAL, fn, seed=seed)


def check_padding_mask(fn, *, seed=None):
    """Check a student's ``padding_mask(lengths, M)``: a (B, 1, 1, M) boolean array,
    True where j < lengths[b]. Raises AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(PADDING, fn, seed=seed)

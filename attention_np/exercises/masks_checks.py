"""Checker for exercise 04: causal and key-padding masks (True = may attend).

Student signatures:
    causal_mask(N, M) -> (N, M) bool       query i may attend key j when j <= i
    padding_mask(lengths, M) -> (B, 1, 1, M) bool
                                           key j of sequence b is real when
                                           j < lengths[b]; broadcasts over heads
                                           and queries
"""

import numpy as np

from ..masks import causal_mask, padding_mask
from .framework import Case, Checker, run_checks
from .hints import kind, matches, when


def _causal_cases(rng):
    sizes = [(4, 4), (3, 5), (5, 3), (1, 1)]
    return [
        Case(f"N={n}, M={m}", (n, m), causal_mask(n, m), {"N": n, "M": m})
        for n, m in sizes
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
        "the diagonal is missing: a token may attend to itself, so allow j <= i "
        "(np.tril keeps the diagonal; k=-1 drops it).",
    ),
    matches(
        lambda c: _grid(c)[1] >= _grid(c)[0],
        "this lets queries see the future: allow key j only when j <= i (lower "
        "triangle, np.tril), not the upper triangle.",
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
    fallback="mask[i, j] = (j <= i): compare np.arange(M)[None, :] with "
    "np.arange(N)[:, None].",
)


def _padding_cases(rng):
    cases = [([3, 5], 5), ([0, 2, 4], 4), ([1], 3), ([2, 2], 2)]
    return [
        Case(
            f"lengths={lengths}, M={m}",
            (np.array(lengths), m),
            padding_mask(lengths, m),
            {"M": m},
        )
        for lengths, m in cases
    ]


def _keys(c, op):
    lengths, m = c.args
    keep = op(np.arange(m)[None, :], lengths[:, None])  # (B, M)
    return keep[:, None, None, :]  # (B, 1, 1, M)


PADDING_HINTS = (
    matches(
        lambda c: ~c.expected,
        "inverted mask: True means 'may attend', so the real keys (j < length) must "
        "be True and the padding False.",
    ),
    matches(
        lambda c: _keys(c, np.less_equal),
        "off by one: positions are 0-based, so a sequence of length L has real keys "
        "0 .. L-1: use j < length, not j <= length.",
    ),
    when(
        lambda f: f.kind == "shape" and np.size(f.got) == np.size(f.case.expected),
        "right values, wrong shape: return (B, 1, 1, M) so the mask broadcasts over "
        "heads and queries, e.g. keep[:, None, None, :].",
    ),
)

PADDING = Checker(
    title="padding_mask(lengths, M) -> (B, 1, 1, M) bool",
    make_cases=_padding_cases,
    outputs=("mask",),
    arg_names=("lengths",),
    hints=PADDING_HINTS,
    fallback="mask[b, 0, 0, j] = (j < lengths[b]).",
)


def check_masks(causal_fn, padding_fn):
    """Check a student's ``causal_mask(N, M)`` and ``padding_mask(lengths, M)``.

    causal_mask returns an (N, M) boolean array, True where j <= i (top-left
    aligned); padding_mask returns (B, 1, 1, M), True where j < lengths[b].
    Returns True when every case of both passes.
    """
    return run_checks([(CAUSAL, causal_fn), (PADDING, padding_fn)])

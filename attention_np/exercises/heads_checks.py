"""Checkers for exercise 05a: splitting the feature axis into heads and merging back.

Student signatures:
    split_heads(x, n_heads) -> (B, H, N, d)    x (B, N, D), D = H * d; head h takes
                                               the columns h*d : (h+1)*d
    merge_heads(x) -> (B, N, H * d)            x (B, H, N, d); the inverse of split
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, when


def _split_cases(rng):
    cases = [((2, 3, 8), 2), ((1, 5, 6), 3), ((2, 4, 4), 1), ((1, 2, 3), 3),
             ((2, 4, 12), 4)]  # fmt: skip
    out = []
    for shape, H in cases:
        x = rng.standard_normal(shape)
        name = f"x {shape}, n_heads={H}"
        out.append(Case(name, (x, H), _ref.split_heads(x, H), {"H": H}))
    return out


def _reshape_only(c):
    x, H = c.args
    B, N, D = x.shape
    return x.reshape(B, H, N, D // H)


def _interleaved(c):
    x, H = c.args
    B, N, D = x.shape
    return x.reshape(B, N, D // H, H).transpose(0, 3, 1, 2)


def _permuted_shape(f):
    """Test: the right axis sizes in another order."""
    got, exp = np.shape(f.got), np.shape(f.case.expected)
    return f.kind == "shape" and sorted(got) == sorted(exp)


SPLIT_HINTS = (
    matches(
        _reshape_only,
        "heads split without the transpose: x.reshape(B, H, N, d) mixes positions "
        "and features (see the example above the task).",
    ),
    matches(
        _interleaved,
        "head h must take the contiguous columns h*d : (h+1)*d; yours takes every "
        "H-th column.",
    ),
    matches(
        lambda c: _ref.split_heads(*c.args).transpose(0, 2, 1, 3),
        "the axes are in the wrong order: the result is (B, H, N, d), heads before "
        "positions.",
    ),
    when(
        _permuted_shape,
        "the axes are in the wrong order: the result is (B, H, N, d), heads before "
        "positions.",
    ),
)

SPLIT = Checker(
    title="split_heads(x, n_heads) -> (B, H, N, d)",
    make_cases=_split_cases,
    outputs=("heads",),
    arg_names=("x",),
    hints=SPLIT_HINTS,
    forbidden=answer_key.HEADS + answer_key.REFERENCE,
    call="check_split_heads(split_heads)",
)


def _merge_cases(rng):
    out = []
    for shape in [(2, 2, 3, 4), (1, 3, 5, 2), (2, 1, 4, 3), (1, 4, 2, 2)]:
        x = rng.standard_normal(shape)
        out.append(Case(f"x {shape}", (x,), _ref.merge_heads(x)))
    return out


MERGE_HINTS = (
    matches(
        lambda c: c.args[0].reshape(c.expected.shape),
        "heads merged without the transpose: positions must come back before heads "
        "before the reshape to (B, N, H * d).",
    ),
    matches(
        lambda c: c.args[0].transpose(0, 2, 3, 1).reshape(c.expected.shape),
        "the columns of head h must be contiguous (h*d : (h+1)*d); yours interleave "
        "the heads.",
    ),
)

MERGE = Checker(
    title="merge_heads(x) -> (B, N, H * d)",
    make_cases=_merge_cases,
    outputs=("merged",),
    arg_names=("x",),
    hints=MERGE_HINTS,
    forbidden=answer_key.HEADS + answer_key.REFERENCE,
    call="check_merge_heads(merge_heads)",
)


def check_split_heads(fn, *, seed=None):
    """Check a student's ``split_heads(x, n_heads)``: (B, N, D) -> (B, H, N, d),
    head h = columns h*d:(h+1)*d. Raises AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(SPLIT, fn, seed=seed)


def check_merge_heads(fn, *, seed=None):
    """Check a student's ``merge_heads(x)``: (B, H, N, d) -> (B, N, H * d), the
    inverse of split_heads. Raises AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(MERGE, fn, seed=seed)

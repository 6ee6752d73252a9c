"""Checker for exercise 06: splitting the feature axis into heads and merging back.

Student signatures:
    split_heads(x, n_heads) -> (B, H, N, d)    x (B, N, D), D = H * d; head h takes
                                               the columns h*d : (h+1)*d
    merge_heads(x) -> (B, N, H * d)            x (B, H, N, d); the inverse of split
"""

from ..multihead import merge_heads, split_heads
from .framework import Case, Checker, run_checks
from .hints import matches, shape_swaps_axes, when


def _split_cases(rng):
    cases = [((2, 3, 8), 2), ((1, 5, 6), 3), ((2, 4, 4), 1), ((1, 2, 3), 3)]
    out = []
    for shape, n_heads in cases:
        x = rng.standard_normal(shape)
        name = f"x {shape}, n_heads={n_heads}"
        out.append(Case(name, (x, n_heads), split_heads(x, n_heads), {"H": n_heads}))
    return out


def _reshape_only(c):
    x, H = c.args
    B, N, D = x.shape
    return x.reshape(B, H, N, D // H)


def _interleaved(c):
    x, H = c.args
    B, N, D = x.shape
    return x.reshape(B, N, D // H, H).transpose(0, 3, 1, 2)


SPLIT_HINTS = (
    matches(
        _reshape_only,
        "heads split without the transpose: x.reshape(B, H, N, d) mixes positions "
        "and features. Reshape to (B, N, H, d) first, then .transpose(0, 2, 1, 3).",
    ),
    matches(
        _interleaved,
        "head h must take the contiguous columns h*d : (h+1)*d: reshape to "
        "(B, N, H, d), not (B, N, d, H).",
    ),
    when(
        shape_swaps_axes,
        "the axes are in the wrong order: the result is (B, H, N, d), heads before "
        "positions: .transpose(0, 2, 1, 3).",
    ),
)

SPLIT = Checker(
    title="split_heads(x, n_heads) -> (B, H, N, d)",
    make_cases=_split_cases,
    outputs=("heads",),
    arg_names=("x",),
    hints=SPLIT_HINTS,
    fallback="x.reshape(B, N, H, d).transpose(0, 2, 1, 3).",
)


def _merge_cases(rng):
    out = []
    for shape in [(2, 2, 3, 4), (1, 3, 5, 2), (2, 1, 4, 3)]:
        x = rng.standard_normal(shape)
        out.append(Case(f"x {shape}", (x,), merge_heads(x)))
    return out


MERGE_HINTS = (
    matches(
        lambda c: c.args[0].reshape(c.expected.shape),
        "heads merged without the transpose: bring positions back before heads "
        "with .transpose(0, 2, 1, 3), then reshape to (B, N, H * d).",
    ),
    matches(
        lambda c: c.args[0].transpose(0, 2, 3, 1).reshape(c.expected.shape),
        "the columns of head h must be contiguous (h*d : (h+1)*d): transpose to "
        "(B, N, H, d) with .transpose(0, 2, 1, 3), not (B, N, d, H).",
    ),
)

MERGE = Checker(
    title="merge_heads(x) -> (B, N, H * d)",
    make_cases=_merge_cases,
    outputs=("merged",),
    arg_names=("x",),
    hints=MERGE_HINTS,
    fallback="x.transpose(0, 2, 1, 3).reshape(B, N, H * d).",
)


def check_split_merge(split_fn, merge_fn):
    """Check a student's ``split_heads(x, n_heads)`` and ``merge_heads(x)``.

    split: (B, N, D) -> (B, H, N, d), head h = columns h*d:(h+1)*d; merge: the
    inverse, (B, H, N, d) -> (B, N, H * d). Returns True when both pass every case.
    """
    return run_checks([(SPLIT, split_fn), (MERGE, merge_fn)])

"""Hint rules: recognise a mistake by its symptom, name it, and say how to fix it.

A rule is ``Hint(test, text)``; ``test(failure) -> bool`` looks at a ``Failure``
(the case, which output differs and how, the student's value, or the exception).
Three ways to write a test:

- ``matches(variant, text)``: the student's output equals ``variant(case)``, the
  reference answer recomputed with one mistake planted (e.g. scale 1). Cheap, exact,
  and it names the mistake with certainty.
- ``when(pred, text)``: any predicate on the failure (NaN in a fully masked row, ...).
- ``raised(pattern, text)``: the student's function raised an exception whose
  "Type: message" matches the regular expression.

``COMMON`` rules apply to every checker after its own rules.
"""

import re
from typing import Any, NamedTuple

import numpy as np

from .compare import close, flatten


class Hint(NamedTuple):
    """``test(failure) -> bool`` recognises a mistake; ``text`` explains it."""

    test: Any
    text: str


def matches(variant, text, *, atol=1e-7, rtol=1e-5):
    """Fires when the failing output equals ``variant(case)`` (one mistake planted).

    ``variant`` returns the same structure as the case's expected answer; it may
    also return a dict holding only some outputs (e.g. ``{"dv": ...}``).
    """

    def test(f):
        if f.kind not in ("value", "nonfinite", "shape"):
            return False
        alt = variant(f.case)
        if isinstance(alt, dict) and f.name in alt:
            alt = alt[f.name]
        else:
            alt = flatten(alt, f.outputs).get(f.name)
        return close(f.got, alt, atol=atol, rtol=rtol)

    return Hint(test, text)


def matches_any(variants, text, *, atol=1e-7, rtol=1e-5):
    """Fires when the failing output equals one of ``variants(case)`` (a list of
    {output name: value} dicts), e.g. every partial sum of three gradient paths."""

    def test(f):
        if f.kind not in ("value", "nonfinite"):
            return False
        alts = [alt.get(f.name) for alt in variants(f.case)]
        return any(close(f.got, alt, atol=atol, rtol=rtol) for alt in alts)

    return Hint(test, text)


def when(pred, text):
    """Fires when ``pred(failure)`` is true."""
    return Hint(pred, text)


def raised(pattern, text):
    """Fires when the student's function raised an exception matching ``pattern``."""

    def test(f):
        if f.exc is None:
            return False
        return re.search(pattern, f"{type(f.exc).__name__}: {f.exc}") is not None

    return Hint(test, text)


def in_rows(rows_key, kinds=("nonfinite",)):
    """Test: the first bad element (of one of ``kinds``) lies in a row flagged True
    in ``case.info[rows_key]``.

    ``info[rows_key]`` is a boolean array over the leading (row) indices of the
    output, e.g. the fully masked query rows, shape (..., N).
    """

    def test(f):
        rows = f.case.info.get(rows_key)
        if f.kind not in kinds or rows is None or f.diff.index is None:
            return False
        return bool(rows[f.diff.index[: rows.ndim]])

    return test


def nonfinite_in_rows(rows_key):
    """Test: a NaN/inf appeared in a row flagged True in ``case.info[rows_key]``."""
    return in_rows(rows_key)


def nonfinite_case(flag):
    """Test: a NaN/inf appeared in a case whose ``info[flag]`` is true."""
    return lambda f: f.kind == "nonfinite" and bool(f.case.info.get(flag))


def kind(*kinds):
    """Test: the failure is of one of these kinds (shape, dtype, count, ...)."""
    return lambda f: f.kind in kinds


def shape_swaps_axes(f):
    """Test: the output has the expected shape with its last two axes' sizes swapped,
    or with N rows where M were expected (or the reverse): a missing transpose."""
    if f.kind != "shape":
        return False
    got = np.shape(f.got)
    exp = np.shape(flatten(f.case.expected, f.outputs)[f.name])
    dims = {f.case.info.get("N"), f.case.info.get("M")}
    if len(got) != len(exp) or len(got) < 2:
        return False
    swapped = got[:-2] == exp[:-2] and got[-2:] == exp[-2:][::-1]
    rows = got[:-2] == exp[:-2] and got[-1] == exp[-1] and {got[-2], exp[-2]} == dims
    return swapped or rows


COMMON = (
    when(
        kind("mutated"),
        "work on a copy: `x = x - m` makes a new array, but `x -= m` or "
        "`x[...] = ...` changes the array the caller passed in.",
    ),
    when(
        lambda f: f.kind == "type" and f.got is None,
        "your function returned None: is the `return` line missing?",
    ),
    when(
        kind("dtype"),
        "return a boolean array (True = may attend): a comparison such as "
        "`j <= i` gives one directly; or use .astype(bool).",
    ),
    when(
        kind("count"),
        "return exactly the values listed in the task's signature, in that order.",
    ),
    raised(
        r"could not be broadcast",
        "two shapes do not broadcast. When you reduce a row (max, sum), keep the "
        "axis with keepdims=True so an (..., N, 1) result lines up with (..., N, M).",
    ),
    raised(
        r"matmul|shapes .* not aligned",
        "a matrix product got mismatched shapes: check which operand needs a "
        "transpose. On batched arrays use np.swapaxes(k, -1, -2); `k.T` reverses "
        "ALL axes of a (B, H, M, d) array.",
    ),
    raised(
        r"truth value of an array",
        "`if mask:` does not work on an array; test `if mask is not None:`.",
    ),
    raised(
        r"TypeError: .*(positional argument|keyword argument)",
        "your function's signature differs from the one in the task: keep the "
        "def line given in the exercise.",
    ),
    raised(
        r"",
        "read the error message above and test your function on the "
        "small example shown in the case name.",
    ),
)

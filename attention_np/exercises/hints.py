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

A ``matches`` rule fires only when the variant really differs from the right
answer on that case, so a hint is shown only for a mistake that produces exactly the
student's output. ``COMMON`` rules apply to every checker after its own rules; when
none fires, the framework prints ``neutral``: the case to compare, nothing more.
"""

import re
from typing import Any, NamedTuple

import numpy as np

from .compare import close, flatten


class Hint(NamedTuple):
    """``test(failure) -> bool`` recognises a mistake; ``text`` explains it."""

    test: Any
    text: str


def _explains(f, alt, atol, rtol):
    """True when ``alt`` (the answer with a mistake planted) is the student's output
    and really differs from the right answer (a variant that happens to equal the
    right answer on this case explains nothing)."""
    if alt is None:
        return False
    expected = flatten(f.case.expected, f.outputs)
    if close(alt, expected.get(f.name), atol=1e-10, rtol=1e-8):
        return False
    return close(f.got, alt, atol=atol, rtol=rtol)


def _pick(alt, f):
    if isinstance(alt, dict):
        return alt.get(f.name)
    return flatten(alt, f.outputs).get(f.name)


def matches(variant, text, *, atol=1e-7, rtol=1e-5):
    """Fires when the failing output equals ``variant(case)`` (one mistake planted).

    ``variant`` returns the same structure as the case's expected answer; it may
    also return a dict holding only some outputs (e.g. ``{"dv": ...}``).
    """

    def test(f):
        if f.kind not in ("value", "nonfinite", "shape"):
            return False
        return _explains(f, _pick(variant(f.case), f), atol, rtol)

    return Hint(test, text)


def matches_any(variants, text, *, atol=1e-7, rtol=1e-5):
    """Fires when the failing output equals one of ``variants(case)`` (a list of
    {output name: value} dicts), e.g. every partial sum of three gradient paths."""

    def test(f):
        if f.kind not in ("value", "nonfinite", "shape"):
            return False
        return any(
            _explains(f, alt.get(f.name), atol, rtol) for alt in variants(f.case)
        )

    return Hint(test, text)


def when(pred, text):
    """Fires when ``pred(failure)`` is true."""
    return Hint(pred, text)


def raised(pattern, text):
    """Fires when the student's function raised an exception matching ``pattern``."""

    def test(f):
        if f.exc is None:
            return False
        return re.search(pattern, f"{f.exc.name}: {f.exc.text}") is not None

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


def neutral(index, case):
    """The hint for a failure no rule recognises: name the case, give nothing away."""
    return (
        f"no common mistake gives exactly this result. Compare your output with the "
        f"expected one in case {index} ({case.name.split(':')[0]}) and work through "
        "that case step by step."
    )


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
        kind("type", "unreadable"),
        "return a NumPy array of numbers (np.asarray turns a list into one).",
    ),
    when(
        kind("dtype"),
        "return a boolean array (True = may attend): a comparison such as "
        "`a <= b` gives one directly.",
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
        "transpose. On batched arrays use np.swapaxes(a, -1, -2); `a.T` reverses "
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
        "read the error message above and call your function on a small example "
        "of the shapes in the case name.",
    ),
)

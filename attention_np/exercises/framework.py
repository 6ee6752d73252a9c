"""A small framework for exercise checkers: cases, comparisons, hint rules.

A ``Checker`` runs a student's function on a list of ``Case``s, compares each result
with the reference answer and prints one line per case::

    softmax(x)
      ✓ random rows, x (3, 5)
      ✗ scores of 1e4, x (2, 3): y[0, 0] is NaN, expected 0.7311
        Hint: exp(1e4) overflows to inf, and inf / inf = NaN. ...
    ✗ 5/6 cases pass.

When a case fails, the checker's ``Hint``s are tried in order and the first one
whose test recognises the symptom is printed. A hint's test usually recomputes the
answer with one known mistake planted (scale 1, softmax over the other axis, the mask
inverted, ...) and asks whether the student's result equals it: a mistake is
diagnosed by what it does, never by reading source code (see ``hints.py``).

Set the environment variable ``ATTENTION_NP_STRICT=1`` to make a failed check raise
AssertionError (for nbgrader's autograder or a grading script).
"""

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .compare import (
    CountError,
    Difference,
    changed_argument,
    compare_one,
    flatten,
    snapshot,
)
from .hints import COMMON

PASS, FAIL = "✓", "✗"


@dataclass
class Case:
    """One input for the student's function and the answer it must give.

    ``args`` go to the student's function; ``expected`` has the structure the function
    must return (one value, or a tuple matching the checker's ``outputs``); ``fd``
    optionally holds finite-difference gradients with the same structure; ``info``
    holds facts the hints may use (the mask, which rows are large, ...).
    """

    name: str
    args: tuple
    expected: Any
    info: dict = field(default_factory=dict)
    fd: Any = None


class Failure(NamedTuple):
    """What went wrong in one case: what a hint rule looks at."""

    case: Case
    diff: Difference | None  # None for an exception or an in-place change
    got: Any  # the student's value of the failing output (or None)
    outputs: tuple  # the checker's output names, to flatten variant answers
    exc: BaseException | None = None
    kind: str = ""  # "exception", "mutated" or diff.kind

    @property
    def name(self):
        return self.diff.name if self.diff else ""


@dataclass(frozen=True)
class Checker:
    """A checker for one student function; call ``run(fn)``.

    Args:
        title: the signature the student implements, e.g. "softmax(x) -> y".
        make_cases: rng -> list of Case.
        outputs: names of the returned values ("y",) or ("dq", "dk", "dv").
        arg_names: names of the positional arguments (to name an input edited in
            place).
        hints: Hint rules, most specific first.
        fallback: hint printed when no rule recognises the mistake.
    """

    title: str
    make_cases: Any
    outputs: tuple = ("out",)
    arg_names: tuple = ()
    hints: tuple = ()
    fallback: str = "compare your code line by line with the formula above."
    atol: float = 1e-8
    rtol: float = 1e-6
    seed: int = 0

    def run(self, fn, *, file=None):
        """Check ``fn`` on every case, print the verdict, return True if all pass."""
        return run_checks([(self, fn)], file=file)


def run_checks(pairs, *, file=None):
    """Run several (checker, fn) pairs; one printed block each; True if all pass."""
    results = [_run_one(checker, fn, file) for checker, fn in pairs]
    ok = all(results)
    if not ok and os.environ.get("ATTENTION_NP_STRICT") == "1":
        raise AssertionError("some checks failed: read the ✗ lines above")
    return ok


NOT_CALLABLE = (
    "expected a function, got {}: pass the function itself, e.g. "
    "check(my_function), not its result."
)
NOT_IMPLEMENTED = (
    "… not implemented yet: replace `raise NotImplementedError()` with your code, "
    "then run this cell again."
)


def _run_one(checker, fn, file):
    out = lambda s: print(s, file=file)
    if not callable(fn):
        out(f"{checker.title}\n  {FAIL} " + NOT_CALLABLE.format(type(fn).__name__))
        return False
    # build the cases (finite differences included) before printing anything, so a
    # notebook shows the report as one block
    cases = checker.make_cases(np.random.default_rng(checker.seed))
    out(checker.title)
    hints_shown, passed = set(), 0
    for case in cases:
        failure = _run_case(checker, fn, case)
        if failure == "not implemented":
            out("  " + NOT_IMPLEMENTED)
            return False
        if failure is None:
            passed += 1
            out(f"  {PASS} {case.name}")
            continue
        out(f"  {FAIL} {case.name}: {_describe(failure)}")
        hint = _pick_hint(checker, failure)
        if hint not in hints_shown:  # the same hint twice adds nothing
            out(f"    Hint: {hint}")
            hints_shown.add(hint)
    return _summary(checker, cases, passed, out)


def _summary(checker, cases, passed, out):
    fd = any(c.fd is not None for c in cases)
    if passed == len(cases):
        extra = (
            " (compared with the reference and with finite differences)" if fd else ""
        )
        out(f"{PASS} {passed}/{len(cases)} cases pass{extra}.")
        return True
    out(
        f"{FAIL} {passed}/{len(cases)} cases pass: fix the first ✗ above and run "
        "this cell again."
    )
    return False


def _call(fn, args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # overflow warnings: the hint explains them
        return fn(*args)


def _run_case(checker, fn, case):
    """None when the case passes, "not implemented", or a Failure."""
    args = snapshot(case.args)  # the student gets copies; case.args stay pristine
    try:
        result = _call(fn, args)
    except NotImplementedError:
        return "not implemented"
    except Exception as exc:  # any student bug: report it, never crash the cell
        return Failure(case, None, None, checker.outputs, exc, "exception")
    edited = changed_argument(case.args, args, checker.arg_names)
    if edited:
        return Failure(case, None, edited, checker.outputs, None, "mutated")
    try:
        got = flatten(result, checker.outputs)
    except CountError as exc:
        diff = Difference("count", "", str(exc))
        return Failure(case, diff, result, checker.outputs, kind="count")
    for reference in (case.expected, case.fd):
        if reference is not None:
            failure = _first_difference(
                checker, case, got, reference, reference is case.fd
            )
            if failure:
                return failure
    return None


def _first_difference(checker, case, got, reference, is_fd):
    expected = flatten(reference, checker.outputs)
    for name, exp in expected.items():
        if name not in got:
            msg = f"{name} is missing from what your function returned"
            diff = Difference("key", name, msg)
            return Failure(case, diff, None, checker.outputs, kind="key")
        atol, rtol = (1e-6, 1e-5) if is_fd else (checker.atol, checker.rtol)
        diff = compare_one(name, got[name], exp, atol=atol, rtol=rtol)
        if diff is not None:
            if is_fd:
                diff = diff._replace(message=diff.message + " (finite differences)")
            return Failure(case, diff, got[name], checker.outputs, kind=diff.kind)
    return None


def _describe(failure):
    if failure.kind == "exception":
        exc = failure.exc
        text = str(exc).strip()
        text = text if len(text) < 160 else text[:150] + " ..."
        return f"your function raised {type(exc).__name__}: {text}"
    if failure.kind == "mutated":
        return f"your function changed its input {failure.got} in place"
    return failure.diff.message


def _pick_hint(checker, failure):
    for hint in checker.hints + COMMON:
        try:
            if hint.test(failure):
                return hint.text
        except Exception:  # a rule that cannot judge this case just does not fire
            continue
    return checker.fallback

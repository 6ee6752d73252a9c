"""A small framework for exercise checkers: cases, comparisons, hint rules.

A ``Checker`` runs a student's function on a list of ``Case``s, compares each result
with the reference answer and prints one line per case::

    softmax(x) -> y
      ✓ random rows, x (3, 5)
      ✗ scores of 1e4, x (2, 3): y[0, 0] is NaN, expected 0.7311
        Hint: exp(1e4) overflows to inf, and inf / inf = NaN. ...
    ✗ 5/6 cases pass (cases drawn with seed 1234: ...).

``grade(checker, fn)`` is what a notebook's check cell calls (through a
``check_<name>`` function): it prints that report and, when any case fails,
raises AssertionError with its summary, so nbgrader scores the cell 0. There is
no switch to turn this off: a check cell passes only when every case passes.

Each call draws its cases from a fresh seed (printed when a case fails, so a run
can be repeated with ``seed=``): a function that only knows the answers of an
earlier run fails. The student's function runs under ``guard.call`` (a time limit
per case, SystemExit and odd return values reported as failed cases, calls of the
answer key detected). When a case fails, the checker's ``Hint``s are tried in order
and the first whose test recognises the symptom is printed; no rule fires, then a
neutral message names the case (see ``hints.py``).
"""

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import guard
from .cases import Case, Failure, Stop, describe, run_case
from .hints import COMMON, neutral

__all__ = ["Case", "Checker", "Failure", "Stop", "grade"]

PASS, FAIL = "✓", "✗"


@dataclass(frozen=True)
class Checker:
    """A checker for one student function.

    Args:
        title: the signature the student implements, e.g. "softmax(x) -> y".
        make_cases: rng -> list of Case.
        outputs: names of the returned values ("y",) or ("dq", "dk", "dv").
        arg_names: names of the positional arguments (to name an input edited in
            place).
        hints: Hint rules, most specific first.
        forbidden: the answer key: "module:qualname" names (the package's
            implementation of this function) and functions (the checker's
            reference). A student's function that calls one fails.
        call: how the check cell spells the call, e.g. "check_softmax(softmax)".
        adapt: optional fn -> the function each case calls (e.g. one question of
            a dict of answers per case).
    """

    title: str
    make_cases: Any
    outputs: tuple = ("out",)
    arg_names: tuple = ()
    hints: tuple = ()
    forbidden: tuple = ()
    call: str = ""
    adapt: Any = None
    atol: float = 1e-8
    rtol: float = 1e-6

    def run(self, fn, *, seed=None, file=None):
        """Check ``fn`` on every case and print the report; True if all pass.

        Never raises for anything ``fn`` does (tests and self-study use this; the
        graded entry point is ``grade``).
        """
        return _run(self, fn, seed, file)[0]


def grade(checker, fn, *, seed=None, file=None):
    """Print the report; raise AssertionError (its summary) unless every case passes."""
    __tracebackhide__ = True  # IPython and pytest show the report, not our frames
    ok, summary = _run(checker, fn, seed, file)
    if not ok:
        raise AssertionError(summary)


def fresh_seed():
    """A seed no notebook can fix in advance."""
    return int.from_bytes(os.urandom(4), "little")


NOT_CALLABLE = (
    "expected a function, got {}: pass the function itself, e.g. "
    "check(my_function), not its result."
)
NO_CASES = (
    "no case was checked (the checker has no cases: was something in this notebook "
    "redefined?); a check with nothing checked does not pass."
)
NOT_IMPLEMENTED = (
    "… not implemented yet: replace `raise NotImplementedError()` with your code, "
    "then run this cell again."
)


def _run(checker, fn, seed, file):
    """(ok, one-line summary) after printing the report."""
    out = lambda s: print(s, file=file)
    if not callable(fn):
        out(f"{checker.title}\n  {FAIL} " + NOT_CALLABLE.format(type(fn).__name__))
        return False, f"{checker.title}: expected a function"
    if checker.adapt is not None:
        fn = checker.adapt(fn)
    seed = fresh_seed() if seed is None else seed
    # build the cases (finite differences included) before printing anything, so a
    # notebook shows the report as one block
    cases = list(checker.make_cases(np.random.default_rng(seed)))
    watch = guard.resolve(checker.forbidden)
    out(checker.title)
    hints_shown, passed, first = set(), 0, None
    for index, case in enumerate(cases, start=1):
        failure = run_case(checker, fn, case, watch)
        if isinstance(failure, Stop):  # the check ends here
            if failure.kind == "not implemented":
                out("  " + NOT_IMPLEMENTED)
                return False, f"{checker.title}: not implemented yet"
            out(f"  {FAIL} {case.name}: {failure.line}")
            return False, f"{checker.title}: {case.name}: {failure.line}"
        if failure is None:
            passed += 1
            out(f"  {PASS} {case.name}")
            continue
        line = f"{case.name}: {describe(failure)}"
        first = first or line
        out(f"  {FAIL} {line}")
        hint = _pick_hint(checker, failure)
        if hint is None and not hints_shown:  # name the first failing case only
            hint = neutral(index, case)
        if hint is not None and hint not in hints_shown:  # twice adds nothing
            out(f"    Hint: {hint}")
            hints_shown.add(hint)
    return _summary(checker, fn, cases, passed, seed, first, out)


def _summary(checker, fn, cases, passed, seed, first, out):
    total = len(cases)
    if total == 0:  # e.g. an answer cell replaced the checker's table of cases
        out(f"  {FAIL} " + NO_CASES)
        return False, f"{checker.title}: {NO_CASES}"
    if passed == total:
        fd = any(c.fd is not None for c in cases)
        extra = " (compared with the reference and with finite differences)"
        out(f"{PASS} {passed}/{total} cases pass{extra if fd else ''}.")
        return True, f"{checker.title}: {passed}/{total} cases pass"
    again = ""
    if checker.call:
        again = f"; {checker.call[:-1]}, seed={seed}) repeats them"
    out(
        f"{FAIL} {passed}/{total} cases pass: fix the first {FAIL} above and run this "
        f"cell again (cases drawn with seed {seed}{again})."
    )
    return (
        False,
        f"{checker.title}: {passed}/{total} cases pass; first failure: {first}",
    )


def _pick_hint(checker, failure):
    """The text of the first rule that recognises the failure, or None."""
    if failure.kind == "exit":
        return "a function reports a problem by returning or raising, never by exiting."
    for hint in checker.hints + COMMON:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if hint.test(failure):
                    return hint.text
        except Exception:  # a rule that cannot judge this case just does not fire
            continue
    return None

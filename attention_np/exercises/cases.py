"""One case of a check: run the student's function on it and judge the result.

``run_case(checker, fn, case, watch)`` gives the student copies of the case's
arguments, runs the function under ``guard.call`` (a time limit of ``TIME_LIMIT``
seconds, calls of the answer key recorded), and returns None when the result
matches the expected answer (and the finite differences, for a backward), a
``Stop`` that ends the check (not implemented, too slow, answer key called) or a
``Failure`` that the hint rules look at. Nothing the student's function does or
returns makes it raise.
"""

import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import guard
from .compare import (
    CountError,
    Difference,
    changed_argument,
    compare_one,
    flatten,
    plain,
    short,
    snapshot,
)

TIME_LIMIT = 10.0  # seconds per case; a student's function rarely needs 0.1


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
    kind: str = ""  # exception, exit, mutated, or diff.kind
    is_fd: bool = False  # the difference is with the finite differences

    @property
    def name(self):
        return self.diff.name if self.diff else ""


class Stop(NamedTuple):
    """A verdict that ends the check: not implemented, too slow, or the answer key
    was called. ``line`` is printed after the case name."""

    kind: str
    line: str


def _call(fn, args, watch):
    limit = TIME_LIMIT
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # overflow warnings: the hint explains them
        return guard.call(fn, args, limit=limit, watch=watch)


def run_case(checker, fn, case, watch):
    """None when the case passes, a Stop, or a Failure."""
    args = snapshot(case.args)  # the student gets copies; case.args stay pristine

    def student(*args):  # reads the result while the time limit and watch still run
        value = fn(*args)
        return plain(value), tuple(_plain_arg(a) for a in args)

    outcome = _call(student, args, watch)
    if outcome.called:
        return Stop("answer key", _called_text(outcome.called[0]))
    if outcome.kind == "not implemented":
        return Stop("not implemented", "")
    if outcome.kind == "interrupted":
        return Stop("interrupted", INTERRUPTED)
    if outcome.kind == "timeout":
        return Stop(
            "timeout",
            f"your function did not return within {TIME_LIMIT:g} s (an endless "
            "loop?); the other cases were not run.",
        )
    if outcome.kind == "exit":
        diff = Difference("exit", "", "your function called sys.exit() "
                          "(SystemExit): return a value instead")  # fmt: skip
        return Failure(case, diff, None, checker.outputs, outcome.exc, "exit")
    if outcome.kind == "exception":
        return Failure(case, None, None, checker.outputs, outcome.exc, "exception")
    value, args = outcome.value
    try:
        return _judge(checker, case, args, value)
    except Exception as exc:  # whatever the student returned, never crash the cell
        msg = f"what your function returned could not be read ({type(exc).__name__}"
        diff = Difference("unreadable", "", msg + f": {short(exc, 80, as_text=str)})")
        return Failure(case, diff, None, checker.outputs, kind="unreadable")


INTERRUPTED = (
    "your function raised KeyboardInterrupt (or the kernel was interrupted while it "
    "ran); the other cases were not run. Run this cell again to check everything."
)


def _plain_arg(arg):
    """An argument as the student left it (a dict's entries may have been replaced)."""
    if isinstance(arg, dict):
        return {k: plain(v) for k, v in list(dict.items(arg))}
    return arg


def _called_text(name):
    return (
        f"your function calls {name}, the package's (or the checker's) own "
        "implementation of what this exercise asks you to write. Write it yourself: "
        "a call to it scores no points. The other cases were not run."
    )


def _judge(checker, case, args, result):
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
            return Failure(
                case, diff, got[name], checker.outputs, kind=diff.kind, is_fd=is_fd
            )
    return None


def describe(failure):
    if failure.kind == "exception":
        exc = failure.exc  # a guard.Raised: plain text, no student code
        return f"your function raised {exc.name}: {short(exc.text, 150, as_text=str)}"
    if failure.kind == "mutated":
        return f"your function changed its input {failure.got} in place"
    return failure.diff.message

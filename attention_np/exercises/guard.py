"""Run a student's function safely: a time limit, and no peeking at the answer key.

``call(fn, args, limit=..., watch=...)`` runs ``fn(*args)`` and always comes back
with an ``Outcome``, whatever the function does:

- returns: kind "ok" and the value;
- raises NotImplementedError (an untouched stub): kind "not implemented";
- raises anything else, including SystemExit from ``sys.exit()``: kind
  "exception" or "exit", with the exception;
- raises KeyboardInterrupt (by itself, or the kernel was interrupted while it
  ran): kind "interrupted" (the checker ends the check with a failed case);
- runs longer than ``limit`` seconds: kind "timeout". In the main thread (a
  notebook cell, a script) a SIGALRM timer interrupts it. A function that catches
  that interruption (``except BaseException: pass`` in a loop) is interrupted
  again every ``GRACE`` seconds, and from the second alarm on every line of its
  code raises (a trace function on its frames), so that the exception also
  escapes its ``except`` blocks and loops: the call ends within a few ``GRACE``.
  Even when the function catches the interruption and returns, the outcome is
  "timeout". Elsewhere (not the main thread) it runs in a daemon thread that is
  abandoned after the limit (documented, not hidden).

Whatever the function raises is kept as a ``Raised`` (its type name and text,
read while the time limit still runs), so that no code of the student runs
after the call (an exception whose ``__str__`` hangs or exits is a failed case).

While ``fn`` runs, a profile hook records every call of a watched function (the
package's implementation of what the student writes, or the checker's own
reference): ``Outcome.called`` names them. The hook records and never raises, so
a student's ``except:`` cannot hide the call. Watched functions are matched by
their code object, so an alias (``from attention_np import softmax_forward as f``)
is caught as well. The hook also follows threads the function starts (a call
moved into a ``ThreadPoolExecutor``) and ends a forked child process that calls
a watched function (its pool breaks or times out); threads started before the
check and processes started with ``spawn`` are not watched (see the guide).
"""

import _thread
import importlib
import inspect
import os
import signal
import sys
import threading
from typing import Any, NamedTuple


class CaseTimeout(BaseException):
    """Raised inside the student's function when its time is up (a BaseException,
    so that a student's `except Exception:` does not swallow it)."""


GRACE = 0.1  # seconds between further alarms once the time limit has passed


class Raised(Exception):
    """What the student's function raised, as plain text: ``name`` (its type's name)
    and ``text`` (its ``str``)."""

    def __init__(self, name, text):
        super().__init__(text)
        self.name, self.text = name, text

    def __str__(self):
        return self.text


class Outcome(NamedTuple):
    kind: str  # ok, not implemented, exception, exit, interrupted, timeout
    value: Any = None
    exc: BaseException | None = None
    called: tuple = ()  # names of watched functions the student's code called


def resolve(items):
    """{code object: dotted name} for "module:qualname" strings and functions.

    A name that does not resolve is skipped (tests check that every listed name
    resolves, so a renamed function cannot silently switch the check off).
    """
    codes = {}
    for item in items:
        obj, name = _lookup(item) if isinstance(item, str) else (item, None)
        if obj is None:
            continue
        obj = inspect.unwrap(obj)
        code = getattr(obj, "__code__", None)
        if code is not None:
            codes[code] = name or f"{obj.__module__}.{obj.__qualname__}"
    return codes


def _lookup(item):
    module, _, qualname = item.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None, None
    return obj, f"{module}.{qualname}"


def call(fn, args, *, limit, watch=None):
    """Run ``fn(*args)`` with a time limit, recording calls of watched code.

    sys.stdout and sys.stderr are put back afterwards (by the caller's thread, not
    by an abandoned one), so that the report is printed where the caller expects.
    """
    watch = watch or {}
    streams = sys.stdout, sys.stderr
    try:
        if threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        ):
            return _call_with_alarm(fn, args, limit, watch)
        return _call_in_thread(fn, args, limit, watch)
    finally:
        sys.stdout, sys.stderr = streams


def _as_raised(exc):
    """A Raised for ``exc``; its ``__str__`` (student code) runs here, under the
    time limit. Only CaseTimeout gets through."""
    name = "exception"
    try:
        name = str(type(exc).__name__)
        text = str(exc)
    except CaseTimeout:
        raise
    except BaseException:  # a __str__ that raises (or exits): no text
        text = "(its message could not be read)"
    return Raised(name, text)


def _run(fn, args, watch):
    """fn(*args) under the profile hook; returns an Outcome (never raises, except
    CaseTimeout, which the callers handle)."""
    called, pid = [], os.getpid()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in watch:
            if os.getpid() != pid:  # a forked child: the parent would never know
                os._exit(70)
            called.append(watch[frame.f_code])

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(profile)
    threading.setprofile(profile)  # threads the student's function starts
    try:
        value = fn(*args)
    except CaseTimeout:
        raise
    except BaseException as exc:  # any student bug: report it, never crash the cell
        kind = "exception"
        if isinstance(exc, NotImplementedError):
            kind = "not implemented"
        elif isinstance(exc, SystemExit):
            kind = "exit"
        elif isinstance(exc, KeyboardInterrupt):
            kind = "interrupted"
        return Outcome(kind, None, _as_raised(exc), tuple(called))
    finally:
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
    return Outcome("ok", value, None, tuple(called))


def _call_with_alarm(fn, args, limit, watch):
    state = {"armed": True, "fired": 0}
    previous_trace = sys.gettrace()

    def kill(frame, event, arg):
        """Trace function once the limit has passed: every new line of the student's
        code raises. CPython drops a trace function that raises, so it first asks
        for another alarm (handled at the next loop jump or call), which installs
        it again."""
        if not state["armed"] or frame.f_code.co_filename == __file__:
            return None
        if event != "line":  # raising at a call or exception is caught at once
            return kill
        _thread.interrupt_main(signal.SIGALRM)
        raise CaseTimeout()

    def alarm(signum, frame):
        if not state["armed"]:
            return
        state["fired"] += 1
        if state["fired"] > 1:  # the first CaseTimeout was caught: escalate
            sys.settrace(kill)
            while frame is not None and frame.f_code.co_filename != __file__:
                frame.f_trace, frame.f_trace_lines = kill, True
                frame = frame.f_back
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit, GRACE)
    try:
        outcome = _run(fn, args, watch)
    except CaseTimeout:
        outcome = Outcome("timeout")
    finally:
        state["armed"] = False  # first: an alarm still pending now does nothing
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.settrace(previous_trace)
        _pending()  # an alarm asked for by `kill` runs while `alarm` is installed
        signal.signal(signal.SIGALRM, previous)
    # a function that caught the alarm and then returned was still too slow
    return Outcome("timeout") if state["fired"] else outcome


def _pending():
    """A Python function call: CPython runs pending signal handlers here."""


def _call_in_thread(fn, args, limit, watch):
    box = []

    def target():
        try:
            box.append(_run(fn, args, watch))
        except BaseException as exc:  # a CaseTimeout the student raised themselves
            box.append(Outcome("exception", None, _as_raised(exc)))

    worker = threading.Thread(target=target, daemon=True, name="student-function")
    worker.start()
    worker.join(limit)
    return box[0] if box else Outcome("timeout")

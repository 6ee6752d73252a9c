"""Run a student's function safely: a time limit, and no peeking at the answer key.

``call(fn, args, limit=..., watch=...)`` runs ``fn(*args)`` and always comes back
with an ``Outcome``, whatever the function does:

- returns: kind "ok" and the value;
- raises NotImplementedError (an untouched stub): kind "not implemented";
- raises anything else, including SystemExit from ``sys.exit()``: kind
  "exception" or "exit", with the exception;
- runs longer than ``limit`` seconds: kind "timeout". In the main thread (a
  notebook cell, a script) a SIGALRM timer interrupts it; elsewhere it runs in a
  daemon thread that is abandoned after the limit (documented, not hidden).

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


class Outcome(NamedTuple):
    kind: str  # ok, not implemented, exception, exit, timeout
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
    """Run ``fn(*args)`` with a time limit, recording calls of watched code."""
    watch = watch or {}
    if threading.current_thread() is threading.main_thread() and hasattr(
        signal, "setitimer"
    ):
        return _call_with_alarm(fn, args, limit, watch)
    return _call_in_thread(fn, args, limit, watch)


def _run(fn, args, watch):
    """fn(*args) under the profile hook; returns an Outcome (never raises, except
    KeyboardInterrupt and CaseTimeout, which the callers handle)."""
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
    except NotImplementedError as exc:
        return Outcome("not implemented", None, exc, tuple(called))
    except SystemExit as exc:
        return Outcome("exit", None, exc, tuple(called))
    except (KeyboardInterrupt, CaseTimeout):
        raise
    except BaseException as exc:  # any student bug: report it, never crash the cell
        return Outcome("exception", None, exc, tuple(called))
    finally:
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
    return Outcome("ok", value, None, tuple(called))


def _call_with_alarm(fn, args, limit, watch):
    state = {"armed": True}

    def alarm(signum, frame):
        if state["armed"]:
            raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        outcome = _run(fn, args, watch)
        state["armed"] = False
        return outcome
    except CaseTimeout:
        return Outcome("timeout")
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(fn, args, limit, watch):
    box = []

    def target():
        try:
            box.append(_run(fn, args, watch))
        except BaseException as exc:  # KeyboardInterrupt cannot reach a thread
            box.append(Outcome("exception", None, exc))

    worker = threading.Thread(target=target, daemon=True, name="student-function")
    worker.start()
    worker.join(limit)
    return box[0] if box else Outcome("timeout")

"""Independent (batch, head) slices on a pool of threads: the package's one helper.

Heads and batch entries never mix in attention: slice h reads q[h], k[h], v[h] and
writes out[h] only. NumPy releases the GIL inside its ufuncs and BLAS calls, so
Python threads that each work on their own slices run at the same time.

    results = run_slices(lead, work, workers, size=N * M)

calls ``work(idx)`` once per task and returns the results in task order. A task is
an index tuple into the leading axes ``lead`` (the broadcast leading shape, e.g.
(B, H)): one (batch, head) slice, or, when slices are small (``size`` elements each,
fewer than MIN_TASK_SIZE), a run of neighbouring ones, so that the cost of a thread
is spread over enough work. ``x[idx]`` is then the task's part of any array of
shape ``lead + ...`` (``lead_views`` makes them); the work function writes its
results into slices of arrays allocated beforehand, or returns them.

- ``workers`` means the same in every function that takes it: the number of threads
  (CONTRIBUTING.md section 5); None is ``validate.default_workers()``, the cores this
  process may use.
- The tasks depend on the shapes only, never on ``workers``: every task runs the
  same code on the same data however many threads share them, so the results are
  identical bit for bit. (One exception: when there is a single task, BLAS gets up
  to ``workers`` threads instead, and BLAS may split a product differently for
  another thread count; the difference is in the last bits, below 1e-12 in float64.)
- The caller takes tasks too, with ``workers`` - 1 threads of a pool: it would only
  wait otherwise, and a thread that is already running costs no wake-up.
- While several tasks run on the pool, BLAS is held to one thread (threadpoolctl,
  when installed), so the machine runs ``workers`` threads, not ``workers`` x cores.
  BLAS never gets more threads than it had (a caller's threadpoolctl limit holds).
  The pools are started on first use and kept for the next calls.
- A task that calls another threaded function runs that call serially (no threads
  inside threads). Tasks run in a copy of the caller's context, so ``np.errstate``
  applies to them as it does to the caller.
"""

import contextlib
import contextvars
import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import validate as V

# A task of at least this many elements (e.g. scores) costs far more than starting a
# thread and handing it the task (tens of microseconds).
MIN_TASK_SIZE = 1 << 15

_state = threading.local()  # .busy: this thread is running a task
_controller = []  # the threadpoolctl controller, made on first use (it scans libraries)
_pools = {}  # threads -> ThreadPoolExecutor, kept: starting threads costs ~0.1 ms
_pools_lock = threading.Lock()
if hasattr(os, "register_at_fork"):  # a forked child has none of the pools' threads
    os.register_at_fork(after_in_child=_pools.clear)


def lead_views(lead, *arrays):
    """Each array viewed with shape ``lead`` + its own last two axes (None stays)."""
    return [
        None if a is None else np.broadcast_to(a, tuple(lead) + a.shape[-2:])
        for a in arrays
    ]


def tasks(lead, size=None):
    """The tasks for slices of shape ``lead``, each of ``size`` elements: index
    tuples, one per slice when slices have at least MIN_TASK_SIZE elements (or when
    ``size`` is None), else runs of neighbouring slices along one axis (the tuple
    ends with a slice) that are that large, or the whole batch, ``()``."""
    lead = tuple(lead)
    if size is None:
        return list(np.ndindex(*lead))
    if math.prod(lead) == 0:
        return []
    axis, per_task = len(lead), max(size, 1)  # elements of one index of lead[:axis]
    while axis > 0 and per_task < MIN_TASK_SIZE:
        axis -= 1
        step = -(-MIN_TASK_SIZE // per_task)  # indices of this axis per task
        if step < lead[axis]:
            outer = np.ndindex(*lead[:axis])
            chunks = range(0, lead[axis], step)
            return [i + (slice(c, c + step),) for i in outer for c in chunks]
        per_task *= lead[axis]
    return list(np.ndindex(*lead[:axis]))


def blas_threads(n):
    """Context: BLAS uses at most ``n`` threads, never more than it was set to (a
    caller's threadpoolctl limit holds); a no-op without threadpoolctl."""
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: BLAS keeps its own thread count
            return contextlib.nullcontext()
        _controller.append(ThreadpoolController().select(user_api="blas"))
    libs = _controller[0].lib_controllers
    if all(lib.num_threads <= n for lib in libs):
        return contextlib.nullcontext()
    return _controller[0].limit(limits=n)


def _pool(threads):
    """The pool of ``threads`` threads, started on first use and kept."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, "attention_np")
        return _pools[threads]


def _run(work, idx):
    """One task, marked so that threaded functions it calls run serially."""
    _state.busy = True
    try:
        return work(idx)
    finally:
        _state.busy = False


def run_slices(lead, work, workers=None, *, size=None):
    """[work(idx) for idx in tasks(lead, size)], on up to ``workers`` threads.

    Args:
        lead: the leading (batch, head) shape the slices are taken from.
        work: function of an index tuple; it may return a result.
        workers: number of threads, None for ``validate.default_workers()``.
        size: elements one slice works on (e.g. N * M); small slices are grouped.
    """
    workers = V.workers_arg(workers)
    todo = tasks(lead, size)
    if getattr(_state, "busy", False):  # called from inside a task: stay serial
        return [work(idx) for idx in todo]
    threads = min(workers, len(todo))
    with blas_threads(workers if len(todo) == 1 else 1):
        if threads <= 1:
            return [_run(work, idx) for idx in todo]
        return _run_shared(work, todo, threads)


def _run_shared(work, todo, threads):
    """The tasks on ``threads`` threads: the caller and threads - 1 from the pool
    each take the next task not yet taken until none is left. The caller works
    rather than waits, so one thread fewer has to be woken up (a wake-up costs
    tens to hundreds of microseconds). Every task runs even when one fails; the
    first failure in task order is raised."""
    results, errors = [None] * len(todo), [None] * len(todo)
    taken = itertools.count()  # next() on it is atomic: each task is taken once

    def drain():
        for i in iter(taken.__next__, None):
            if i >= len(todo):
                return
            try:
                results[i] = _run(work, todo[i])
            except BaseException as error:  # kept, raised once all tasks are done
                errors[i] = error

    context = contextvars.copy_context()  # np.errstate lives in the context
    helpers = [
        _pool(threads - 1).submit(context.copy().run, drain) for _ in range(threads - 1)
    ]
    drain()
    wait(helpers)
    for error in errors:
        if error is not None:
            raise error
    return results

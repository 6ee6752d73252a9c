"""attention_np.threads: the one helper that runs (batch, head) slices on threads."""

import threading

import numpy as np
import pytest

from attention_np import threads
from attention_np.validate import default_workers


def test_one_task_per_slice_without_a_size():
    assert threads.tasks((2, 3)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_small_slices_are_grouped_into_runs(monkeypatch):
    monkeypatch.setattr(threads, "MIN_TASK_SIZE", 100)
    assert threads.tasks((2, 3), size=100) == threads.tasks((2, 3))  # big enough
    assert threads.tasks((2, 3), size=50) == [
        (0, slice(0, 2)), (0, slice(2, 4)), (1, slice(0, 2)), (1, slice(2, 4)),
    ]  # fmt: skip
    assert threads.tasks((4, 3), size=20) == [(slice(0, 2),), (slice(2, 4),)]
    assert threads.tasks((2, 3), size=10) == [()]  # the whole batch in one task
    assert threads.tasks((), size=10**9) == [()]  # two-dimensional inputs


def test_runs_of_slices_cover_every_slice_once(monkeypatch):
    monkeypatch.setattr(threads, "MIN_TASK_SIZE", 100)
    for lead, size in [((5, 7), 30), ((3, 2, 5), 7), ((9,), 40), ((2, 3), 1000)]:
        count = np.zeros(lead, int)
        for idx in threads.tasks(lead, size):
            count[idx] += 1
        assert (count == 1).all(), (lead, size)


def test_no_slices_no_tasks():
    assert threads.tasks((0, 3)) == [] == threads.tasks((0, 3), size=1)
    assert threads.run_slices((0, 3), lambda idx: 1 / 0, 2) == []


def test_the_tasks_do_not_depend_on_workers():
    # the grouping is a function of the shapes only: this is what makes the
    # results bit-for-bit independent of the number of threads
    assert "workers" not in threads.tasks.__code__.co_varnames


@pytest.mark.parametrize("workers", [1, 2, 3, None])
def test_results_come_back_in_task_order(workers):
    lead = (3, 4)
    got = threads.run_slices(lead, lambda idx: idx, workers)
    assert got == list(np.ndindex(lead))


def test_every_task_writes_its_own_slice():
    out = np.zeros((4, 5, 6))

    def work(idx):
        out[idx] = np.ravel_multi_index(idx, (4, 5))

    threads.run_slices((4, 5), work, 3)
    np.testing.assert_array_equal(out[..., 0], np.arange(20).reshape(4, 5))


def test_several_threads_are_used_and_capped_by_the_tasks():
    names = threads.run_slices((5,), lambda idx: threading.current_thread().name, 8)
    assert len(set(names)) <= 5
    main = threads.run_slices((5,), lambda idx: threading.current_thread().name, 1)
    assert set(main) == {threading.current_thread().name}


def test_the_caller_takes_tasks_too_and_the_pool_gives_the_rest_of_the_threads():
    gate = threading.Barrier(2, timeout=10)  # both threads must hold a task at once

    def work(idx):
        gate.wait()
        return threading.current_thread().name

    names = threads.run_slices((2,), work, 2)
    assert threading.current_thread().name in names and len(set(names)) == 2


def test_an_exception_in_a_task_reaches_the_caller_after_every_task_ended():
    done = []

    def work(idx):
        if idx == (0,):
            raise KeyError("task 0")
        done.append(idx)

    with pytest.raises(KeyError, match="task 0"):
        threads.run_slices((6,), work, 2)
    assert sorted(done) == [(i,) for i in range(1, 6)]  # nothing runs on afterwards


def test_a_task_that_calls_run_slices_stays_serial():
    def inner(idx):
        return threading.current_thread().name

    def outer(idx):
        return set(threads.run_slices((3,), inner, 3)), threading.current_thread().name

    for names, outer_name in threads.run_slices((2,), outer, 2):
        assert names == {outer_name}


def test_errstate_of_the_caller_applies_inside_the_threads():
    def work(idx):
        return np.exp(np.float32(100.0))  # overflows

    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            threads.run_slices((4,), work, 2)


def test_blas_runs_one_thread_per_task_while_the_pool_runs():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads(idx):
        info = threadpoolctl.threadpool_info()
        return {lib["num_threads"] for lib in info if lib["user_api"] == "blas"}

    before = blas_threads(None)
    for seen in threads.run_slices((4,), blas_threads, 2):
        assert seen <= {1}
    assert blas_threads(None) == before  # restored afterwards


def test_a_callers_blas_limit_is_never_raised():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads(idx):
        info = threadpoolctl.threadpool_info()
        return {lib["num_threads"] for lib in info if lib["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(1, "blas"):
        assert threads.run_slices((), blas_threads, 4)[0] <= {1}  # one task


def test_none_means_the_default_workers():
    names = threads.run_slices((64,), lambda i: threading.current_thread().name, None)
    assert len(set(names)) <= default_workers()


@pytest.mark.parametrize(
    "workers, error, text",
    [(0, ValueError, "workers must be >= 1"), (True, TypeError, "workers must be")],
)
def test_bad_workers_are_refused(workers, error, text):
    with pytest.raises(error, match=text):
        threads.run_slices((2,), lambda idx: idx, workers)


def test_lead_views_broadcast_without_copies():
    k = np.arange(6.0).reshape(1, 2, 3)
    (view, none) = threads.lead_views((4, 1), k, None)
    assert view.shape == (4, 1, 2, 3) and none is None
    assert np.shares_memory(view, k)

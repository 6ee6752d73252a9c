"""Where attention's time goes: attention_forward / attention_backward replayed step
by step, with a clock around each kind of work.

The replay runs the steps of ``attention_np.attention`` (its private step functions,
in the same order, on the same tasks and threads of ``threads.run_slices``), so its
results equal the library's bit for bit (tests/test_attention_bench.py checks it: the
replay cannot drift from the code it times). Each thread adds its CPU time
(time.thread_time) to the step's category; a category's share of the wall time is
its time outside the tasks plus its time inside them divided by the number of
threads that ran them. "other" is the measured wall time of the real call minus all
the shares: Python, starting and joining threads, and threads waiting for each other.
"""

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from attention_np import attention as A
from attention_np import threads
from attention_np import validate as V

CATEGORIES = ("matmuls", "exp", "reductions", "masking", "element-wise", "copies")


class Clock:
    """CPU seconds per category, inside the tasks (shared by threads) and outside."""

    def __init__(self):
        self.cpu = defaultdict(float)
        self.lock = threading.Lock()

    @contextmanager
    def __call__(self, name, task=False):
        t0 = time.thread_time()
        yield
        with self.lock:
            self.cpu[name, task] += time.thread_time() - t0

    def shares(self, threads_used):
        """{category: seconds of wall time}, tasks' time spread over their threads."""
        share = dict.fromkeys(CATEGORIES, 0.0)
        for (name, task), seconds in self.cpu.items():
            share[name] += seconds / threads_used if task else seconds
        return share


def threads_used(lead, N, M, workers):
    """How many threads run_slices starts for attention on these shapes."""
    return max(1, min(V.workers_arg(workers), len(threads.tasks(lead, N * M))))


def replay_forward(q, k, v, causal, workers, clock):
    """attention_forward(q, k, v, causal=causal, workers=workers), timed by step."""
    offset = V.causal_offset(causal, "top_left", q.shape[-2], k.shape[-2])
    scale = V.scale_arg(None, q.shape[-1])
    with clock("copies"):
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        N, M = q.shape[-2], k.shape[-2]
        qs = q * scale  # (..., N, d)
        p = np.empty(lead + (N, M), q.dtype)  # (..., N, M)
        pv = np.empty(lead + (N, v.shape[-1] + 1), q.dtype)  # (..., N, d_v + 1)
        qh, kh, vh = threads.lead_views(lead, qs, k, A.with_ones(v))

    def work(h):
        with clock("reductions", task=True):
            bound = A._score_bound(qh[h], kh[h])  # (..., N, 1)
        k_t = np.swapaxes(kh[h], -1, -2)
        for rows in A._row_blocks(p[h]):
            s = p[h][..., rows, :]
            with clock("matmuls", task=True):
                np.matmul(qh[h][..., rows, :], k_t, out=s)
            with clock("masking", task=True):
                seen = A._hide(s, None, offset, rows)
            with clock("exp", task=True):
                A._exp(s[..., :seen], bound[..., rows, :])
            with clock("matmuls", task=True):
                np.matmul(s, vh[h], out=pv[h][..., rows, :])

    threads.run_slices(lead, work, workers, size=N * M)
    with clock("copies"):
        l = pv[..., -1:].copy()
        l[l == 0] = 1.0
        out = pv[..., :-1] / l
    return out, A.AttentionCache(qs, k, v, p, l, out, None, 0.0, scale, workers)


def replay_backward(dout, cache, clock):
    """attention_backward(dout, cache) of a cache without dropout, timed by step."""
    qs, k, v, p, l, out, _, dropout_p, scale, workers = cache
    with clock("reductions"):
        D = np.sum(dout * out, axis=-1, keepdims=True)
    with clock("copies"):
        g = np.concatenate([dout / (1 - dropout_p), -D], axis=-1) / l
        grads = [np.zeros(p.shape[:-2] + a.shape[-2:], qs.dtype) for a in (qs, k, v)]
        qh, kh, vh, gh = threads.lead_views(p.shape[:-2], qs, k, A.with_ones(v), g)

    def slices(h):
        dq, dk, dv = (x[h] for x in grads)
        v_ext_t = np.swapaxes(vh[h], -1, -2)
        for rows in A._row_blocks(p[h]):
            p_r, g_r = p[h][..., rows, :], gh[h][..., rows, :]
            with clock("matmuls", task=True):
                dv += np.swapaxes(p_r, -1, -2) @ g_r[..., :-1]
                ds = g_r @ v_ext_t
            with clock("element-wise", task=True):
                ds *= p_r
            with clock("matmuls", task=True):
                dq[..., rows, :] = ds @ kh[h]
                dk += np.swapaxes(ds, -1, -2) @ qh[h][..., rows, :]

    threads.run_slices(p.shape[:-2], slices, workers, size=p.shape[-2] * p.shape[-1])
    with clock("copies"):
        grads[0] *= scale
        result = tuple(map(A.unbroadcast, grads, (qs.shape, k.shape, v.shape)))
    return result


def breakdown(q, k, v, dout, causal, workers, repeats):
    """({category: s} of the forward, {category: s} of forward + backward): the
    median over ``repeats`` replays of each category's share of the wall time."""
    used = threads_used(q.shape[:-2], q.shape[-2], k.shape[-2], workers)
    forward, both = defaultdict(list), defaultdict(list)
    for _ in range(max(1, repeats)):
        f_clock, b_clock = Clock(), Clock()
        _, cache = replay_forward(q, k, v, causal, workers, f_clock)
        replay_backward(dout, cache, b_clock)
        f_share, b_share = f_clock.shares(used), b_clock.shares(used)
        for name in CATEGORIES:
            forward[name].append(f_share[name])
            both[name].append(f_share[name] + b_share[name])
    median = lambda d: {name: float(np.median(d[name])) for name in CATEGORIES}  # noqa: E731
    return median(forward), median(both)

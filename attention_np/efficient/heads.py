"""The loop over leading (batch, head) indices of the tiled kernels, serial or threaded.

Every (batch, head) slice of tiled attention is independent, so the heads can run on
several threads at once (FlashAttention runs its grid of (batch, head, query block)
programs in parallel on a GPU). NumPy releases the GIL inside its array operations,
so ``workers`` threads do overlap. While they run, BLAS is held to one thread each
(with threadpoolctl, when it is installed) so the machine is not oversubscribed:
``workers`` threads in total. The results are identical to the serial loop, bit for
bit: each head is computed by the same code on its own slices.

Shape legend: lead = the broadcast leading shape (e.g. (B, H)).
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def head_views(lead, q, k, v, mask):
    """Per-head views: each array broadcast to ``lead`` (mask to lead + (N, M))."""
    views = [np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v)]
    if mask is not None:
        mask = np.broadcast_to(mask, lead + (q.shape[-2], k.shape[-2]))  # a view
    return views + [mask]


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread count
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


def run_heads(lead, work, workers=1):
    """Call ``work(h)`` for every index h of ``lead``, on up to ``workers`` threads."""
    heads = list(np.ndindex(lead))
    if workers <= 1 or len(heads) <= 1:
        for h in heads:
            work(h)
        return
    with _one_blas_thread(), ThreadPoolExecutor(min(workers, len(heads))) as pool:
        list(pool.map(work, heads))  # list() re-raises an exception from any head

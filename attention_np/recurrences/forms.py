"""The three forms behind one call: validation, dispatch and the public cache.

Every layer of this subpackage is the generic recurrence of ``recurrent`` with a
choice of gate (none, fixed, scalar or per channel: a log-decay array g of shape
(..., N, G)) and of write (sum rule, or delta rule with beta). This module runs the
chosen form and hands its gradients back; ``linear_family`` and ``delta_family``
name the models.

Heads and batch entries never mix, so the form runs on (batch, head) slices on
``workers`` threads (``threads.run_slices``), here and only here: the forms see
every slice with its leading axes kept, (1, .., 1, N, d) or a run of neighbouring
slices, and know nothing of threads. The slices depend on the shapes only, so the
results are the same bit for bit whatever ``workers`` is.
"""

from typing import NamedTuple

import numpy as np

from .. import threads
from .. import validate as V
from .checks import check_initial_state, check_options, check_qkv
from .chunkwise import chunkwise_backward, chunkwise_forward
from .parallel import parallel_backward, parallel_forward
from .recurrent import recurrent_backward, recurrent_forward


class RecurrenceCache(NamedTuple):
    """What a recurrence's backward needs; ``final_state`` continues the sequence."""

    form: str
    parts: list  # per task of threads.run_slices: (index, the form's own cache)
    final_state: np.ndarray  # (..., d_k, d_v) S_N
    out_shape: tuple
    grad_shapes: tuple  # of q, k, v, g, beta (None: sum rule), S0
    workers: int  # threads over the (batch, head) slices, for the backward too
    dfinal_state: np.ndarray | None = None  # set by with_final_state_grad


def _keep_axes(idx):
    """A task's index (threads.tasks) with every axis kept: i becomes i:i+1."""
    return tuple(slice(i, i + 1) if isinstance(i, int) else i for i in idx)


def _slice_size(form, q, v, chunk_size):
    """Elements one slice works on, for threads.tasks to group small slices: the
    scores (N x N, or N x C in chunks), and for the recurrent form the state alone,
    as it makes a dozen NumPy calls per token whose cost must be spread too."""
    N, d_k, d_v = q.shape[-2], q.shape[-1], v.shape[-1]
    if form == "recurrent":
        return d_k * d_v
    return N * (N if form == "parallel" else min(chunk_size, N))


def _form_forward(form, arrays, scale, chunk_size):
    if form == "recurrent":
        return recurrent_forward(*arrays, scale=scale)
    if form == "parallel":
        return parallel_forward(*arrays, scale=scale)
    return chunkwise_forward(*arrays, scale=scale, chunk_size=chunk_size)


def run_form(q, k, v, g, beta, S0, form, chunk_size, scale, workers):
    """out, RecurrenceCache of the generic recurrence in the chosen form, on
    ``workers`` threads (None: ``validate.default_workers()``)."""
    workers = V.workers_arg(workers)
    out = np.empty(v.shape, v.dtype)  # (..., N, d_v)
    S_N = np.empty(S0.shape, S0.dtype)  # (..., d_k, d_v)

    def work(idx):
        i = _keep_axes(idx)
        arrays = [None if x is None else x[i] for x in (q, k, v, g, beta, S0)]
        out[i], form_cache, S_N[i] = _form_forward(form, arrays, scale, chunk_size)
        return i, form_cache

    size = _slice_size(form, q, v, chunk_size)
    parts = threads.run_slices(q.shape[:-2], work, workers, size=size)
    shapes = tuple(None if x is None else x.shape for x in (q, k, v, g, beta, S0))
    return out, RecurrenceCache(form, parts, S_N, out.shape, shapes, workers)


BACKWARD = {
    "recurrent": recurrent_backward,
    "parallel": parallel_backward,
    "chunkwise": chunkwise_backward,
}


def backward_form(dout, cache):
    """(dq, dk, dv, dg, dbeta, dS0) of whichever form made ``cache``."""
    V.grad_shape("dout", dout, cache.out_shape)
    dtype = cache.final_state.dtype
    grads = [None if s is None else np.empty(s, dtype) for s in cache.grad_shapes]
    dS_N = cache.dfinal_state

    def work(task):  # the forward's tasks, one by one
        i, form_cache = cache.parts[task[0]]
        dS = None if dS_N is None else dS_N[i]
        parts = BACKWARD[cache.form](dout[i], form_cache, dfinal_state=dS)
        for grad, part in zip(grads, parts, strict=True):
            if grad is not None:
                grad[i] = part

    threads.run_slices((len(cache.parts),), work, cache.workers)
    return tuple(grads)


def with_final_state_grad(cache, dfinal_state):
    """The cache with the gradient of its final state attached, for the backward.

    To carry state across segments with gradients: the next segment's backward
    returns dinitial_state; attach it here before this segment's backward.
    """
    V.instance("cache", cache, RecurrenceCache)
    V.grad_shape("dfinal_state", dfinal_state, cache.final_state.shape)
    return cache._replace(dfinal_state=np.asarray(dfinal_state))


def prologue(q, k, v, initial_state, form, chunk_size, scale):
    """Validated q, k, v, S0 (zeros for None), chunk_size and scale."""
    q, k, v = check_qkv(q, k, v)
    S0 = check_initial_state(initial_state, k, v)
    chunk_size, scale = check_options(form, chunk_size, scale, q.shape[-1])
    return q, k, v, S0, chunk_size, scale

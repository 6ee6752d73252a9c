"""The three forms behind one call: validation, dispatch and the public cache.

Every layer of this subpackage is the generic recurrence of ``recurrent`` with a
choice of gate (none, fixed, scalar or per channel: a log-decay array g of shape
(..., N, G)) and of write (sum rule, or delta rule with beta). This module runs the
chosen form and hands its gradients back; ``linear_family`` and ``delta_family``
name the models.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .checks import check_initial_state, check_options, check_qkv
from .chunkwise import chunkwise_backward, chunkwise_forward
from .parallel import parallel_backward, parallel_forward
from .recurrent import recurrent_backward, recurrent_forward


class RecurrenceCache(NamedTuple):
    """What a recurrence's backward needs; ``final_state`` continues the sequence."""

    form: str
    form_cache: tuple  # the form's own cache (recurrent / parallel / chunkwise)
    final_state: np.ndarray  # (..., d_k, d_v) S_N
    out_shape: tuple
    dfinal_state: np.ndarray | None = None  # set by with_final_state_grad


def run_form(q, k, v, g, beta, S0, form, chunk_size, scale):
    """out, RecurrenceCache of the generic recurrence in the chosen form."""
    if form == "recurrent":
        out, c, S_N = recurrent_forward(q, k, v, g, beta, S0, scale=scale)
    elif form == "parallel":
        out, c, S_N = parallel_forward(q, k, v, g, beta, S0, scale=scale)
    else:
        out, c, S_N = chunkwise_forward(
            q, k, v, g, beta, S0, scale=scale, chunk_size=chunk_size
        )
    return out, RecurrenceCache(form, c, S_N, out.shape)


BACKWARD = {
    "recurrent": recurrent_backward,
    "parallel": parallel_backward,
    "chunkwise": chunkwise_backward,
}


def backward_form(dout, cache):
    """(dq, dk, dv, dg, dbeta, dS0) of whichever form made ``cache``."""
    V.grad_shape("dout", dout, cache.out_shape)
    return BACKWARD[cache.form](dout, cache.form_cache, cache.dfinal_state)


def with_final_state_grad(cache, dfinal_state):
    """The cache with the gradient of its final state attached, for the backward.

    To carry state across segments with gradients: the next segment's backward
    returns dinitial_state; attach it here before this segment's backward.
    """
    V.grad_shape("dfinal_state", dfinal_state, cache.final_state.shape)
    return cache._replace(dfinal_state=np.asarray(dfinal_state))


def prologue(q, k, v, initial_state, form, chunk_size, scale):
    """Validated q, k, v, S0 (zeros for None), chunk_size and scale."""
    q, k, v = check_qkv(q, k, v)
    S0 = check_initial_state(initial_state, k, v)
    chunk_size, scale = check_options(form, chunk_size, scale, q.shape[-1])
    return q, k, v, S0, chunk_size, scale

"""The delta rule family: DeltaNet and Gated DeltaNet (see ``linear_family``).

    DeltaNet        S_t = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t
    Gated DeltaNet  S_t = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t

Equivalently u_t = beta_t (v_t - k_t S'_t), S_t = S'_t + k_t^T u_t with S'_t =
alpha_t S_{t-1}: read what the (decayed) memory returns for k_t, write the
correction. Keys should be L2-normalised (|k| = 1 and beta in [0, 2] keep the
transition's eigenvalues in [-1, 1]); the layer does that, not these functions.
Argument order follows fla's chunk_gated_delta_rule(q, k, v, g, beta).
"""

import numpy as np

from .checks import check_gate, check_log_decay
from .forms import backward_form, prologue, run_form


def deltanet_forward(
    q,
    k,
    v,
    beta,
    initial_state=None,
    *,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """DeltaNet: S_t = S_{t-1} + beta_t k_t^T (v_t - k_t S_{t-1}), o_t = scale q S_t.

    Args:
        q, k: (..., N, d_k) queries and (unit) keys.  v: (..., N, d_v) values.
        beta: (..., N) write strengths (sigmoid outputs in DeltaNet).
        initial_state: (..., d_k, d_v) S_0, default zeros.
        form: "recurrent", "parallel" or "chunkwise".
        chunk_size: tokens per chunk of the chunkwise form.
        scale: multiplies q; None means 1/sqrt(d_k).
        workers: threads over the (batch, head) slices, None for
            ``validate.default_workers()``; the backward uses the same, and the
            result does not depend on it.

    Returns:
        out (..., N, d_v) and a RecurrenceCache (``cache.final_state`` is S_N).
    """
    q, k, v, S0, C, scale = prologue(q, k, v, initial_state, form, chunk_size, scale)
    beta = check_gate("beta", beta, q.shape[:-1], q.dtype)
    g = np.zeros(q.shape[:-1] + (1,), dtype=q.dtype)  # no decay
    return run_form(q, k, v, g, beta, S0, form, C, scale, workers)


def deltanet_backward(dout, cache):
    """dq, dk, dv, dbeta, dinitial_state of deltanet_forward."""
    dq, dk, dv, _, dbeta, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dbeta, dS0


def gated_deltanet_forward(
    q,
    k,
    v,
    log_alpha,
    beta,
    initial_state=None,
    *,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """Gated DeltaNet: S_t = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t.

    Args:
        q, k, v, beta, initial_state: as deltanet_forward.
        form, chunk_size, scale, workers: as deltanet_forward.
        log_alpha: (..., N) log-decays <= 0, one per head (-dt exp(A_log) in GDN).

    Returns:
        out (..., N, d_v) and a RecurrenceCache.
    """
    q, k, v, S0, C, scale = prologue(q, k, v, initial_state, form, chunk_size, scale)
    g = check_log_decay("log_alpha", log_alpha, q.shape[:-1], q.dtype)
    beta = check_gate("beta", beta, q.shape[:-1], q.dtype)
    return run_form(q, k, v, g[..., None], beta, S0, form, C, scale, workers)


def gated_deltanet_backward(dout, cache):
    """dq, dk, dv, dlog_alpha, dbeta, dinitial_state of gated_deltanet_forward."""
    dq, dk, dv, dg, dbeta, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dg[..., 0], dbeta, dS0

"""Six models, one recurrence: S_t = A_t-transition of S_{t-1} plus a write.

    model           transition of S_{t-1}          write           extra arrays
    linear_attn     S                              + k^T v
    retention       gamma S          (fixed/head)  + k^T v         (gamma= option)
    gla             diag(alpha_t) S  (per channel) + k^T v         log_alpha
    mamba2          alpha_t S        (scalar/head) + k^T v         log_alpha
    deltanet        (I - beta_t k^T k) S           + beta_t k^T v  beta
    gated_deltanet  alpha_t (I - beta_t k^T k) S   + beta_t k^T v  log_alpha, beta

read by o_t = scale q_t S_t (S is (d_k, d_v), rows are keys: fla's layout). Each
``*_forward(q, k, v, [gates], initial_state=None, *, form, chunk_size, scale,
workers)`` returns ``(out, cache)`` with ``cache.final_state``;
``*_backward(dout, cache)`` returns the gradients of q, k, v, the gates, then of the
initial state (of the zero state when it was None). ``form`` is "recurrent"
(``recurrent``), "parallel" (``parallel``) or "chunkwise" (``chunkwise``); they
agree to rounding. ``workers`` threads share the (batch, head) slices (``forms``).

Conventions (see the notebook for fla's): layout (..., N, d) with heads before the
length (fla uses (B, T, H, d)); gates are passed as log-decays log(alpha) <= 0;
``scale`` multiplies q and defaults to 1/sqrt(d_k) as in fla; no feature map, no
normalisation of q, k or of the output (the layer around the recurrence does that:
DeltaNet's keys must be L2-normalised for a stable transition). Mamba-2's SSD is the
scalar-gated case with q = C, k = B, v = dt x and log_alpha = dt A.
"""

import numpy as np

from .checks import check_gamma, check_log_decay
from .forms import backward_form, prologue, run_form


def _zero_gate(q):
    return np.zeros(q.shape[:-1] + (1,), dtype=q.dtype)  # (..., N, 1): alpha = 1


def linear_attn_forward(
    q,
    k,
    v,
    initial_state=None,
    *,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """Unnormalised causal linear attention: S_t = S_{t-1} + k_t^T v_t (A_t = I).

    Args:
        q, k: (..., N, d_k) queries and keys (any feature map already applied).
        v: (..., N, d_v) values.
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
    return run_form(q, k, v, _zero_gate(q), None, S0, form, C, scale, workers)


def linear_attn_backward(dout, cache):
    """dq, dk, dv, dinitial_state of linear_attn_forward."""
    dq, dk, dv, _, _, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dS0


def retention_forward(
    q,
    k,
    v,
    initial_state=None,
    *,
    gamma=None,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """RetNet's retention: S_t = gamma S_{t-1} + k_t^T v_t, gamma fixed per head.

    Args:
        q, k, v, initial_state: as linear_attn_forward.
        form, chunk_size, scale, workers: as linear_attn_forward.
        gamma: decay in (0, 1], a number or an array broadcastable to the leading
            dimensions; None: RetNet's 1 - 2^(-5 - h) for head h (axis -3).

    Returns:
        out (..., N, d_v) and a RecurrenceCache.
    """
    q, k, v, S0, C, scale = prologue(q, k, v, initial_state, form, chunk_size, scale)
    gamma = check_gamma(gamma, q.shape[:-2])
    g = np.broadcast_to(np.log(gamma)[..., None, None], q.shape[:-1] + (1,))
    return run_form(q, k, v, g.astype(q.dtype), None, S0, form, C, scale, workers)


def retention_backward(dout, cache):
    """dq, dk, dv, dinitial_state of retention_forward (gamma is not learned)."""
    dq, dk, dv, _, _, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dS0


def gla_forward(
    q,
    k,
    v,
    log_alpha,
    initial_state=None,
    *,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """GLA: S_t = diag(alpha_t) S_{t-1} + k_t^T v_t, one decay per key channel.

    Args:
        q, k, v, initial_state: as linear_attn_forward.
        form, chunk_size, scale, workers: as linear_attn_forward.
        log_alpha: (..., N, d_k) log-decays <= 0 (GLA: logsigmoid(x W) / 16).

    Returns:
        out (..., N, d_v) and a RecurrenceCache.
    """
    q, k, v, S0, C, scale = prologue(q, k, v, initial_state, form, chunk_size, scale)
    g = check_log_decay("log_alpha", log_alpha, q.shape, q.dtype)
    return run_form(q, k, v, g, None, S0, form, C, scale, workers)


def gla_backward(dout, cache):
    """dq, dk, dv, dlog_alpha, dinitial_state of gla_forward."""
    dq, dk, dv, dg, _, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dg, dS0


def mamba2_forward(
    q,
    k,
    v,
    log_alpha,
    initial_state=None,
    *,
    form="chunkwise",
    chunk_size=64,
    scale=None,
    workers=None,
):
    """Mamba-2's SSD: S_t = alpha_t S_{t-1} + k_t^T v_t, one decay per head.

    In Mamba-2's names: q = C_t, k = B_t, v = dt_t x_t, log_alpha = dt_t A (A < 0);
    the layer around it makes these (and adds D x_t); Mamba-2 uses scale=1.

    Args:
        q, k, v, initial_state: as linear_attn_forward.
        form, chunk_size, scale, workers: as linear_attn_forward.
        log_alpha: (..., N) log-decays <= 0.

    Returns:
        out (..., N, d_v) and a RecurrenceCache.
    """
    q, k, v, S0, C, scale = prologue(q, k, v, initial_state, form, chunk_size, scale)
    g = check_log_decay("log_alpha", log_alpha, q.shape[:-1], q.dtype)
    return run_form(q, k, v, g[..., None], None, S0, form, C, scale, workers)


def mamba2_backward(dout, cache):
    """dq, dk, dv, dlog_alpha, dinitial_state of mamba2_forward."""
    dq, dk, dv, dg, _, dS0 = backward_form(dout, cache)
    return dq, dk, dv, dg[..., 0], dS0

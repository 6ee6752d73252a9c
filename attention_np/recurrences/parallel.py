"""Parallel (decay-masked) form of the gated recurrence: attention without softmax.

Unrolling S_t = diag(alpha_t) S_{t-1} + k_t^T u_t from S0, with cumulative
log-decays b_t = g_1 + ... + g_t:

    O   = scale (Q o e^b) S0 + P U,    P_ij = scale sum_c q_ic k_jc e^{b_ic - b_jc}
                                              (j <= i, else 0; computed stably)
    S_N = e^{b_N} o S0 + (K o e^{b_N - b})^T U

For the sum rule U = V: O = (Q K^T o D) V, attention with a decay mask D instead of
softmax. For the delta rule (scalar gates) the written values solve one N x N unit
lower-triangular system, A U = diag(beta) (V - (K o e^b) S0) with
A = I + diag(beta) (K K^T o D_strict), solved by forward substitution over strips.

Everything is computed in strips of query rows, so no N x N matrix is ever stored:
O(N^2) time, O(N x strip) memory. The backward recomputes the strips.

Shape legend: (...) leading dimensions, N positions, d_k, d_v widths, G the gate
width (1 or d_k), R rows per strip.
"""

from typing import NamedTuple

import numpy as np

from .decay import (
    BUDGET,
    causal_scores,
    causal_scores_backward,
    prefix_scores,
    prefix_scores_backward,
    reduce_gate,
)
from .decay import reverse_cumsum as _rcumsum
from .triangular import unit_lower_inverse

MAX_ROWS = 256  # query rows per strip (fewer when a strip would exceed BUDGET)


class ParallelCache(NamedTuple):
    q: np.ndarray  # (..., N, d_k)
    k: np.ndarray  # (..., N, d_k)
    v: np.ndarray  # (..., N, d_v)
    b: np.ndarray  # (..., N, G) cumulative log-decays
    beta: np.ndarray | None  # (..., N) delta rule, or None
    U: np.ndarray  # (..., N, d_v) the values written (V for the sum rule)
    S0: np.ndarray  # (..., d_k, d_v)
    scale: float


def _strips(q):
    """[(r0, r1)]: strips of query rows of at most BUDGET scores each."""
    lead = int(np.prod(q.shape[:-2], dtype=np.int64))
    N = q.shape[-2]
    R = int(max(1, min(MAX_ROWS, BUDGET // max(1, lead * N))))
    return [(r0, min(N, r0 + R)) for r0 in range(0, N, R)]


def _rows(x, r0, r1):
    return x[..., r0:r1, :]


def strip_scores(q, k, b, r0, r1, *, strict=False):
    """(..., R, r1) rows r0..r1 of the decay-masked score matrix (j <= i, or j < i).

    Keys before the strip are one factorised product (``prefix_scores``, through the
    cumulative decay at r0 - 1); the strip's own square block is ``causal_scores``.
    """
    qs, ks, bs = (_rows(x, r0, r1) for x in (q, k, b))
    P = np.empty(q.shape[:-2] + (r1 - r0, r1), dtype=q.dtype)
    P[..., r0:] = causal_scores(qs, ks, bs, strict=strict)
    if r0 > 0:
        ref = b[..., r0 - 1 : r0, :]
        P[..., :r0] = prefix_scores(qs, k[..., :r0, :], bs, b[..., :r0, :], ref)[0]
    return P


def _strip_backward(dP, c_q, c_k, b, r0, r1, grads, *, strict=False):
    """Add the gradients of strip_scores(q, k, b, r0, r1) to grads = (dq, dk, db)."""
    dq, dk, db = grads
    qs, ks, bs = (_rows(x, r0, r1) for x in (c_q, c_k, b))
    g = causal_scores_backward(dP[..., r0:], qs, ks, bs, strict=strict)
    dq[..., r0:r1, :] += g[0]
    dk[..., r0:r1, :] += g[1]
    db[..., r0:r1, :] += g[2]
    if r0 > 0:
        ref = b[..., r0 - 1 : r0, :]
        g = prefix_scores_backward(
            dP[..., :r0], qs, c_k[..., :r0, :], bs, b[..., :r0, :], ref
        )
        dq[..., r0:r1, :] += g[0]
        dk[..., :r0, :] += g[1]
        db[..., r0:r1, :] += g[2]
        db[..., :r0, :] += g[3]
        db[..., r0 - 1 : r0, :] += g[4]


def _solve_strips(k, v, b, beta, S0, strips):
    """U of the delta rule by forward substitution over the row strips."""
    rhs = beta[..., None] * (v - (k * np.exp(b)) @ S0)  # (..., N, d_v)
    U = np.empty_like(v)
    for r0, r1 in strips:
        A = beta[..., r0:r1, None] * strip_scores(k, k, b, r0, r1, strict=True)
        known = rhs[..., r0:r1, :] - A[..., :, :r0] @ U[..., :r0, :]
        U[..., r0:r1, :] = unit_lower_inverse(A[..., :, r0:]) @ known
    return U


def parallel_forward(q, k, v, g, beta, S0, *, scale):
    """out (..., N, d_v), ParallelCache, final state; g (..., N, G)."""
    b = np.cumsum(g, axis=-2)  # (..., N, G)
    strips = _strips(q)
    U = v if beta is None else _solve_strips(k, v, b, beta, S0, strips)
    out = (scale * q * np.exp(b)) @ S0  # (..., N, d_v) what S0 contributes
    for r0, r1 in strips:
        P = strip_scores(q, k, b, r0, r1)  # (..., R, r1)
        out[..., r0:r1, :] += scale * (P @ U[..., :r1, :])
    bN = b[..., -1:, :]  # (..., 1, G)
    Kh = k * np.exp(bN - b)  # (..., N, d_k) keys decayed to the end
    S_N = np.exp(np.swapaxes(bN, -1, -2)) * S0 + np.swapaxes(Kh, -1, -2) @ U
    return out, ParallelCache(q, k, v, b, beta, U, S0, scale), S_N


def _score_grads(dout, c, strips, grads):
    """dU from O; dq, dk, db from the scores and O's S0 term; dS0 (in place)."""
    dq, dk, db, dS0 = grads
    G, eb = c.b.shape[-1], np.exp(c.b)
    dU = np.zeros_like(c.U)
    for r0, r1 in strips:
        P = strip_scores(c.q, c.k, c.b, r0, r1)
        dO = _rows(dout, r0, r1)
        dU[..., :r1, :] += c.scale * np.swapaxes(P, -1, -2) @ dO  # forward: O += P U
        dP = c.scale * dO @ np.swapaxes(c.U[..., :r1, :], -1, -2)
        _strip_backward(dP, c.q, c.k, c.b, r0, r1, (dq, dk, db))
    dQe = dout @ np.swapaxes(c.S0, -1, -2)  # forward: O += (scale Q e^b) S0
    dq += c.scale * dQe * eb
    db += reduce_gate(c.scale * dQe * c.q * eb, G)
    dS0 += np.swapaxes(c.scale * c.q * eb, -1, -2) @ dout
    return dU


def _final_state_grads(dSN, c, dU, grads):
    """Add the gradients of S_N = e^{b_N} S0 + (K e^{b_N - b})^T U (in place)."""
    _, dk, db, dS0 = grads
    G, bN = c.b.shape[-1], c.b[..., -1:, :]
    e = np.exp(bN - c.b)  # (..., N, G)
    dU += (c.k * e) @ dSN
    dKh = c.U @ np.swapaxes(dSN, -1, -2)  # (..., N, d_k)
    dk += dKh * e
    X = reduce_gate(dKh * c.k * e, G)
    decay = np.exp(np.swapaxes(bN, -1, -2))  # (..., G, 1)
    dS0 += decay * dSN
    db -= X
    db[..., -1, :] += X.sum(axis=-2) + reduce_gate(np.sum(dSN * decay * c.S0, -1), G)


def _solve_grads(dU, c, strips, grads):
    """Back substitution through A U = rhs (delta rule); returns dv, dbeta."""
    _, dk, db, dS0 = grads
    k, b, beta = c.k, c.b, c.beta
    dR, dbeta = np.empty_like(dU), np.zeros_like(beta)
    for r0, r1 in reversed(strips):
        L = strip_scores(k, k, b, r0, r1, strict=True)  # (..., R, r1)
        A = beta[..., r0:r1, None] * L  # the strip of A - I
        Tt = np.swapaxes(unit_lower_inverse(A[..., :, r0:]), -1, -2)
        dR[..., r0:r1, :] = Tt @ dU[..., r0:r1, :]  # A^T dR = dU
        dU[..., :r0, :] -= np.swapaxes(A[..., :, :r0], -1, -2) @ _rows(dR, r0, r1)
        dA = -_rows(dR, r0, r1) @ np.swapaxes(c.U[..., :r1, :], -1, -2)
        dbeta[..., r0:r1] += np.sum(dA * L, axis=-1)  # L is 0 where A is fixed
        dL = beta[..., r0:r1, None] * dA
        _strip_backward(dL, k, k, b, r0, r1, (dk, dk, db), strict=True)
    Ke = k * np.exp(b)  # forward: rhs = diag(beta) (V - Ke S0)
    dbeta += np.sum(dR * (c.v - Ke @ c.S0), axis=-1)
    dRb = beta[..., None] * dR
    dKe = -dRb @ np.swapaxes(c.S0, -1, -2)
    dk += dKe * np.exp(b)
    db += reduce_gate(dKe * Ke, b.shape[-1])
    dS0 -= np.swapaxes(Ke, -1, -2) @ dRb
    return dRb, dbeta


def parallel_backward(dout, cache, *, dfinal_state=None):
    """dq, dk, dv, dg, dbeta (None for the sum rule), dS0 of parallel_forward."""
    c = cache
    strips = _strips(c.q)
    grads = tuple(np.zeros_like(x) for x in (c.q, c.k, c.b, c.S0))
    dU = _score_grads(dout, c, strips, grads)
    if dfinal_state is not None:
        _final_state_grads(dfinal_state, c, dU, grads)
    dv, dbeta = dU, None
    if c.beta is not None:
        dv, dbeta = _solve_grads(dU, c, strips, grads)
    dq, dk, db, dS0 = grads
    return dq, dk, dv, _rcumsum(db, axis=-2), dbeta, dS0

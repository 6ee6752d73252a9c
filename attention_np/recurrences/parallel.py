"""Parallel (decay-masked) form of the gated recurrence: attention without softmax.

Unrolling S_t = diag(alpha_t) S_{t-1} + k_t^T u_t from S0, with cumulative
log-decays b_t = g_1 + ... + g_t:

    O   = scale (Q o e^b) S0 + P U,    P_ij = scale sum_c q_ic k_jc e^{b_ic - b_jc}
                                              (j <= i, else 0: ``gated_scores``)
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

from .decay import BUDGET, gated_scores, gated_scores_backward, reduce_gate
from .decay import reverse_cumsum as _rcumsum

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


def _strips(q, G):
    """[(r0, r1, mask (R, r1))]: row strips and their causal masks (j <= i)."""
    lead = int(np.prod(q.shape[:-2], dtype=np.int64))
    N, width = q.shape[-2], q.shape[-1] if G > 1 else 1
    R = int(max(1, min(MAX_ROWS, BUDGET // max(1, lead * N * width))))
    out = []
    for r0 in range(0, N, R):
        r1 = min(N, r0 + R)
        rows, cols = np.arange(r0, r1)[:, None], np.arange(r1)[None, :]
        out.append((r0, r1, rows >= cols, rows > cols))
    return out


def _rows(x, r0, r1):
    return x[..., r0:r1, :]


def _solve_strips(k, v, b, beta, S0, strips):
    """U of the delta rule by forward substitution over the row strips."""
    rhs = beta[..., None] * (v - (k * np.exp(b)) @ S0)  # (..., N, d_v)
    U = np.empty_like(v)
    for r0, r1, _, strict in strips:
        L = gated_scores(
            _rows(k, r0, r1), k[..., :r1, :], _rows(b, r0, r1), b[..., :r1, :], strict
        )  # (..., R, r1)
        A = beta[..., r0:r1, None] * L  # the strip of A - I
        known = rhs[..., r0:r1, :] - A[..., :, :r0] @ U[..., :r0, :]
        diag = np.eye(r1 - r0, dtype=k.dtype) + A[..., :, r0:]
        U[..., r0:r1, :] = np.linalg.solve(diag, known)
    return U


def parallel_forward(q, k, v, g, beta, S0, *, scale):
    """out (..., N, d_v), ParallelCache, final state; g (..., N, G)."""
    b = np.cumsum(g, axis=-2)  # (..., N, G)
    strips = _strips(q, g.shape[-1])
    U = v if beta is None else _solve_strips(k, v, b, beta, S0, strips)
    out = (scale * q * np.exp(b)) @ S0  # (..., N, d_v) what S0 contributes
    for r0, r1, incl, _ in strips:
        P = gated_scores(
            _rows(q, r0, r1), k[..., :r1, :], _rows(b, r0, r1), b[..., :r1, :], incl
        )  # (..., R, r1)
        out[..., r0:r1, :] += scale * (P @ U[..., :r1, :])
    bN = b[..., -1:, :]  # (..., 1, G)
    S_N = (
        np.exp(np.swapaxes(bN, -1, -2)) * S0
        + np.swapaxes(k * np.exp(bN - b), -1, -2) @ U
    )
    return out, ParallelCache(q, k, v, b, beta, U, S0, scale), S_N


def _score_grads(dout, dSN, c, strips, grads):
    """dU from O and S_N; dq, dk, db from P, O's S0 term and S_N."""
    dq, dk, db, dS0 = grads
    G, eb = c.b.shape[-1], np.exp(c.b)
    dU = np.zeros_like(c.U)
    for r0, r1, incl, _ in strips:
        qs, bs = _rows(c.q, r0, r1), _rows(c.b, r0, r1)
        P = gated_scores(qs, c.k[..., :r1, :], bs, c.b[..., :r1, :], incl)
        dU[..., :r1, :] += c.scale * np.swapaxes(P, -1, -2) @ _rows(dout, r0, r1)
        dP = c.scale * _rows(dout, r0, r1) @ np.swapaxes(c.U[..., :r1, :], -1, -2)
        g = gated_scores_backward(dP, qs, c.k[..., :r1, :], bs, c.b[..., :r1, :], incl)
        dq[..., r0:r1, :] += g[0]
        dk[..., :r1, :] += g[1]
        db[..., r0:r1, :] += g[2]
        db[..., :r1, :] += g[3]
    dQe = dout @ np.swapaxes(c.S0, -1, -2)  # forward: O += (scale Q e^b) S0
    dq += c.scale * dQe * eb
    db += reduce_gate(c.scale * dQe * c.q * eb, G)
    dS0 += np.swapaxes(c.scale * c.q * eb, -1, -2) @ dout
    _final_state_grads(dSN, c, dU, grads)
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
    dR = np.empty_like(dU)
    dbeta = np.zeros_like(beta)
    for r0, r1, _, strict in reversed(strips):
        ks, bs = _rows(k, r0, r1), _rows(b, r0, r1)
        L = gated_scores(ks, k[..., :r1, :], bs, b[..., :r1, :], strict)
        A = beta[..., r0:r1, None] * L  # (..., R, r1) the strip of A - I
        diag = np.eye(r1 - r0, dtype=k.dtype) + A[..., :, r0:]
        dR[..., r0:r1, :] = np.linalg.solve(
            np.swapaxes(diag, -1, -2), dU[..., r0:r1, :]
        )
        dU[..., :r0, :] -= np.swapaxes(A[..., :, :r0], -1, -2) @ dR[..., r0:r1, :]
        dA = np.where(
            strict, -dR[..., r0:r1, :] @ np.swapaxes(c.U[..., :r1, :], -1, -2), 0
        )
        dbeta[..., r0:r1] += np.sum(dA * L, axis=-1)
        g = gated_scores_backward(
            beta[..., r0:r1, None] * dA, ks, k[..., :r1, :], bs, b[..., :r1, :], strict
        )
        dk[..., r0:r1, :] += g[0]
        dk[..., :r1, :] += g[1]
        db[..., r0:r1, :] += g[2]
        db[..., :r1, :] += g[3]
    Ke = k * np.exp(b)  # forward: rhs = diag(beta) (V - Ke S0)
    dbeta += np.sum(dR * (c.v - Ke @ c.S0), axis=-1)
    dRb = beta[..., None] * dR
    dKe = -dRb @ np.swapaxes(c.S0, -1, -2)
    dk += dKe * np.exp(b)
    db += reduce_gate(dKe * Ke, b.shape[-1])
    dS0 -= np.swapaxes(Ke, -1, -2) @ dRb
    return dRb, dbeta


def parallel_backward(dout, cache, dfinal_state=None):
    """dq, dk, dv, dg, dbeta (None for the sum rule), dS0 of parallel_forward."""
    c = cache
    strips = _strips(c.q, c.b.shape[-1])
    grads = (
        np.zeros_like(c.q),
        np.zeros_like(c.k),
        np.zeros_like(c.b),
        np.zeros_like(c.S0),
    )
    dSN = np.zeros_like(c.S0) if dfinal_state is None else dfinal_state
    dU = _score_grads(dout, dSN, c, strips, grads)
    dv, dbeta = dU, None
    if c.beta is not None:
        dv, dbeta = _solve_grads(dU, c, strips, grads)
    dq, dk, db, dS0 = grads
    return dq, dk, dv, _rcumsum(db, axis=-2), dbeta, dS0

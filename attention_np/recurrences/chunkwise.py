"""Chunkwise form of the gated recurrence: parallel inside chunks, recurrent across.

The recurrence (``recurrent``) is S_t = diag(alpha_t) S_{t-1} + k_t^T u_t, read as
o_t = scale q_t S_t, where u_t = v_t (sum rule) or, for the delta rule,
u_t = beta_t (v_t - k_t alpha_t S_{t-1}). Cut the sequence into chunks of C tokens;
inside a chunk that starts from the state S0, with local cumulative log-decays
B_t = g_1 + ... + g_t (t = 1 .. C) and the chunk's total Lam = B_C:

    O      = scale (Q o e^B) S0 + P U,       P = scale (Q K^T o Gamma), Gamma_ij =
                                                 e^{B_i - B_j} for j <= i, else 0
    S_next = e^Lam o S0 + (K o e^{Lam - B})^T U

Every exponent is <= 0 (``decay``). For the sum rule U = V. For the delta rule
(scalar gates) U solves a unit lower-triangular system, the UT transform with the
decays folded in (Yang et al. 2024):

    A U = diag(beta) (V - (K o e^B) S0),   A = I + diag(beta) (K K^T o Gamma_strict)
    W = A^{-1} diag(beta) (K o e^B),  U0 = A^{-1} diag(beta) V,   U = U0 - W S0

P, A, W and U0 do not depend on the state: every chunk is transformed at once, and
only the short loop over the n = N / C chunk states stays sequential. The backward
keeps the n + 1 chunk-boundary states and differentiates these formulas.

Shape legend: (...) leading dimensions, n chunks of C tokens, d_k, d_v widths, G the
gate width (1: scalar per head, d_k: GLA's diagonal gate).
"""

from typing import NamedTuple

import numpy as np

from .decay import (
    causal_scores,
    causal_scores_backward,
    from_chunks,
    reduce_gate,
    reverse_cumsum,
    to_chunks,
    unit_lower_inverse,
)


class ChunkwiseCache(NamedTuple):
    q: np.ndarray  # (..., n, C, d_k) chunked, zero-padded
    k: np.ndarray  # (..., n, C, d_k)
    v: np.ndarray  # (..., n, C, d_v)
    B: np.ndarray  # (..., n, C, G) local cumulative log-decays
    beta: np.ndarray | None  # (..., n, C) delta rule, or None (sum rule)
    P: np.ndarray  # (..., n, C, C) scale (Q K^T o Gamma)
    L: np.ndarray | None  # (..., n, C, C) delta rule: K K^T o Gamma_strict
    T: np.ndarray | None  # (..., n, C, C) delta rule: A^{-1}
    WU: np.ndarray | None  # (..., n, C, d_k + d_v) delta rule: [W | U0]
    U: np.ndarray  # (..., n, C, d_v) what each token wrote
    states: np.ndarray  # (..., n + 1, d_k, d_v) the state at every chunk boundary
    scale: float
    N: int


def _ut_transform(k, v, B, beta):
    """L, T = A^{-1} and [W | U0] = T diag(beta) [K o e^B | V] (module docstring)."""
    L = causal_scores(k, k, B, strict=True)  # (..., n, C, C) K K^T o Gamma_strict
    T = unit_lower_inverse(beta[..., :, None] * L)  # A = I + diag(beta) L
    rhs = beta[..., None] * np.concatenate([k * np.exp(B), v], axis=-1)
    return L, T, T @ rhs  # (..., n, C, d_k + d_v)


def _state_loop(S, Kh, U0, W, lam):
    """Carry the state over the chunks; returns states (..., n + 1, ...) and U."""
    n = Kh.shape[-3]
    states = np.empty(S.shape[:-2] + (n + 1,) + S.shape[-2:], dtype=S.dtype)
    KtV = None if W is not None else np.swapaxes(Kh, -1, -2) @ U0  # (..., n, dk, dv)
    U = U0 if W is None else np.empty_like(U0)
    for j in range(n):
        states[..., j, :, :] = S
        if W is None:
            S = lam[..., j, :, :] * S + KtV[..., j, :, :]
            continue
        U[..., j, :, :] = U0[..., j, :, :] - W[..., j, :, :] @ S  # (..., C, d_v)
        S = (
            lam[..., j, :, :] * S
            + np.swapaxes(Kh[..., j, :, :], -1, -2) @ U[..., j, :, :]
        )
    states[..., n, :, :] = S
    return states, U


def chunkwise_forward(q, k, v, g, beta, S0, *, scale, chunk_size):
    """out (..., N, d_v), ChunkwiseCache, final state; g (..., N, G), beta or None."""
    N, C = q.shape[-2], min(chunk_size, q.shape[-2])
    qc, kc, vc = to_chunks(q, C), to_chunks(k, C), to_chunks(v, C)
    B = np.cumsum(to_chunks(g, C), axis=-2)  # (..., n, C, G)
    lam = B[..., -1:, :]  # (..., n, 1, G) the chunk's total log-decay
    Kh = kc * np.exp(lam - B)  # (..., n, C, d_k) keys decayed to the chunk's end
    W, U0, bc, L, T, WU = None, vc, None, None, None, None
    if beta is not None:
        bc = to_chunks(beta[..., None], C)[..., 0]  # (..., n, C)
        L, T, WU = _ut_transform(kc, vc, B, bc)
        W, U0 = WU[..., : k.shape[-1]], WU[..., k.shape[-1] :]
    decay = np.exp(np.swapaxes(lam, -1, -2))  # (..., n, G, 1) scales the state's rows
    states, U = _state_loop(S0, Kh, U0, W, decay)
    P = scale * causal_scores(qc, kc, B)  # (..., n, C, C)
    out = (scale * qc * np.exp(B)) @ states[..., :-1, :, :] + P @ U  # (..., n, C, dv)
    cache = ChunkwiseCache(qc, kc, vc, B, bc, P, L, T, WU, U, states, scale, N)
    return from_chunks(out, N), cache, states[..., -1, :, :]


def _boundary_grads(dO, dSN, c):
    """Back through the chunk loop: dU (..., n, C, d_v) and dS at every boundary."""
    B, states = c.B, c.states
    W = None if c.WU is None else c.WU[..., : c.k.shape[-1]]
    lam = B[..., -1:, :]
    Kh = c.k * np.exp(lam - B)
    decay = np.exp(np.swapaxes(lam, -1, -2))  # (..., n, G, 1)
    dU = np.swapaxes(c.P, -1, -2) @ dO  # (..., n, C, d_v) the intra-chunk part
    QtdO = np.swapaxes(c.scale * c.q * np.exp(B), -1, -2) @ dO  # (..., n, dk, dv)
    dS = np.empty_like(states)  # dS[j]: gradient of the state entering chunk j
    dS[..., -1, :, :] = dSN
    for j in reversed(range(B.shape[-3])):
        nxt = dS[..., j + 1, :, :]
        dS[..., j, :, :] = QtdO[..., j, :, :] + decay[..., j, :, :] * nxt
        if W is not None:  # forward: U = U0 - W S,  S_next = ... + Kh^T U
            dU[..., j, :, :] += Kh[..., j, :, :] @ nxt
            dS[..., j, :, :] -= np.swapaxes(W[..., j, :, :], -1, -2) @ dU[..., j, :, :]
    if W is None:
        dU += Kh @ dS[..., 1:, :, :]
    return dU, dS, Kh


def _decay_grads(dO, dS, c, Kh):
    """dq, dk and dB from O's inter-chunk term, S_next's decays and the scores P."""
    B, G = c.B, c.B.shape[-1]
    eB = np.exp(B)
    S_in, dS_out = c.states[..., :-1, :, :], dS[..., 1:, :, :]
    dQe = dO @ np.swapaxes(S_in, -1, -2)  # (..., n, C, d_k) forward: O += Qe S0
    dKh = c.U @ np.swapaxes(dS_out, -1, -2)  # forward: S_next += Kh^T U
    dP = c.scale * (dO @ np.swapaxes(c.U, -1, -2))  # forward: O += P U
    dq, dk, dB = causal_scores_backward(dP, c.q, c.k, B)
    dq += c.scale * dQe * eB
    dk += dKh * np.exp(B[..., -1:, :] - B)
    X = reduce_gate(dKh * Kh, G)  # (..., n, C, G) forward: Kh = K e^{Lam - B}
    dB += reduce_gate(c.scale * dQe * c.q * eB, G) - X
    decay = np.exp(np.swapaxes(B[..., -1:, :], -1, -2))  # (..., n, G, 1)
    held = np.sum(dS_out * decay * S_in, axis=-1)  # forward: S_next = e^Lam S0 + ...
    dB[..., -1, :] += X.sum(axis=-2) + reduce_gate(held, G)  # Lam = B_C
    return dq, dk, dB


def _ut_backward(dU, c, dq_dk_dB):
    """Add the UT transform's gradients (delta rule); returns dk, dv, dB, dbeta."""
    dk, dB = dq_dk_dB
    k, B, beta, d_k = c.k, c.B, c.beta, c.k.shape[-1]
    L, T, WU = c.L, c.T, c.WU
    dW = -dU @ np.swapaxes(c.states[..., :-1, :, :], -1, -2)  # U = U0 - W S0
    dR = np.swapaxes(T, -1, -2) @ np.concatenate([dW, dU], axis=-1)  # A^T dR = dZ
    dA = np.tril(-dR @ np.swapaxes(WU, -1, -2), -1)  # (..., n, C, C) A is unit lower
    Ke = k * np.exp(B)
    dbeta = np.sum(dR * np.concatenate([Ke, c.v], axis=-1), axis=-1)
    dbeta += np.sum(dA * L, axis=-1)  # forward: A = I + diag(beta) L
    dRb = beta[..., None] * dR  # forward: rhs = diag(beta) [K e^B | V]
    dk = dk + dRb[..., :d_k] * np.exp(B)
    dB = dB + reduce_gate(dRb[..., :d_k] * Ke, B.shape[-1])
    dk1, dk2, dB1 = causal_scores_backward(
        beta[..., :, None] * dA, k, k, B, strict=True
    )
    return dk + dk1 + dk2, dRb[..., d_k:], dB + dB1, dbeta


def chunkwise_backward(dout, cache, dfinal_state=None):
    """dq, dk, dv, dg, dbeta (None for the sum rule), dS0 of chunkwise_forward.

    ``dfinal_state`` is the gradient of the final state (None: it is not used).
    """
    c = cache
    dO = to_chunks(dout, c.q.shape[-2])  # (..., n, C, d_v)
    dSN = (
        np.zeros_like(c.states[..., -1, :, :]) if dfinal_state is None else dfinal_state
    )
    dU, dS, Kh = _boundary_grads(dO, dSN, c)
    dq, dk, dB = _decay_grads(dO, dS, c, Kh)
    dv, dbeta = dU, None
    if c.beta is not None:
        dk, dv, dB, dbeta = _ut_backward(dU, c, (dk, dB))
        dbeta = from_chunks(dbeta[..., None], c.N)[..., 0]
    dg = reverse_cumsum(dB, axis=-2)  # forward: B = cumsum(g) inside each chunk
    grads = (from_chunks(x, c.N) for x in (dq, dk, dv, dg))
    return (*grads, dbeta, dS[..., 0, :, :])

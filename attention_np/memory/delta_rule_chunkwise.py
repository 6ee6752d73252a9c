"""The delta rule in chunks (DeltaNet; Yang, Wang, Zhang, Shen, Kim 2024).

Within a chunk of C tokens (rows K, V, Q, write strengths beta, incoming state S0),
let u_t = beta_t (v_t - k_t S_{t-1}) be what token t actually writes, so that
S_t = S0 + sum_{j<=t} k_j^T u_j. Substituting S_{t-1} gives a triangular system:

    A U_bar = diag(beta) (V - K S0),   A = I + diag(beta) tril(K K^T, -1)   (C, C)
    UT transform: T = A^{-1} diag(beta),  W = T K,  U = T V,  U_bar = U - W S0
    O      = Q S0 + (Q K^T o tril) U_bar          (diagonal included)
    S_next = S0 + K^T U_bar

W and U do not depend on the state, so every chunk is transformed at once (one
batched solve); only the short recurrence over chunk states stays sequential. A
sequence whose length is not a multiple of C is zero-padded (k = v = 0, beta = 0:
padded tokens write nothing). The backward differentiates these matrix formulas
chunk by chunk, storing only the chunk-boundary states (N / C of them).

Shape legend: (...) leading batch/head dimensions, N positions, C chunk size,
n = ceil(N / C) chunks, d_k key width, d_v value width; S is (..., d_k, d_v).
State is carried exactly as in ``delta_rule`` (``initial_state``, ``cache.final_state``,
``dinitial_state`` last, ``cache._replace(dfinal_state=dS)``).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .delta_rule import check_qkv_beta, start_state


def _to_chunks(x, C):
    """(..., N, d) -> (..., n, C, d), zero-padded at the end."""
    N = x.shape[-2]
    n = -(-N // C)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, n * C - N), (0, 0)]
    return np.pad(x, pad).reshape(x.shape[:-2] + (n, C, x.shape[-1]))


def _masks(C):
    rows, cols = np.indices((C, C))
    return rows >= cols, rows > cols  # (C, C) tril with and without the diagonal


def ut_transform(k, v, beta):
    """W = T K and U = T V with T = (I + diag(beta) tril(K K^T, -1))^{-1} diag(beta).

    Args:
        k: (..., C, d_k), v: (..., C, d_v), beta: (..., C) one chunk (or many).

    Returns:
        A (..., C, C), W (..., C, d_k), U (..., C, d_v).
    """
    k = V.float_array("k", k, min_ndim=2)
    v = V.float_array("v", v, min_ndim=2)
    beta = V.float_array("beta", beta, min_ndim=1)
    if v.shape[:-1] != k.shape[:-1] or beta.shape != k.shape[:-1]:
        raise ValueError(
            f"k{k.shape}, v{v.shape} and beta{beta.shape} must share (..., C)"
        )
    V.same_dtype(k=k, v=v, beta=beta)
    return _ut_transform(k, v, beta)


def _ut_transform(k, v, beta):
    C = k.shape[-2]
    _, strict = _masks(C)
    L = np.where(strict, k @ np.swapaxes(k, -1, -2), 0.0)  # (..., C, C)
    A = np.eye(C, dtype=k.dtype) + beta[..., :, None] * L  # unit lower triangular
    b = beta[..., :, None]
    return A, np.linalg.solve(A, b * k), np.linalg.solve(A, b * v)


class ChunkwiseCache(NamedTuple):
    q: np.ndarray  # (..., n, C, d_k) chunked, zero-padded
    k: np.ndarray  # (..., n, C, d_k)
    v: np.ndarray  # (..., n, C, d_v)
    beta: np.ndarray  # (..., n, C)
    A: np.ndarray  # (..., n, C, C)
    states: np.ndarray  # (..., n + 1, d_k, d_v) S at every chunk boundary
    u_bar: np.ndarray  # (..., n, C, d_v) the values actually written
    N: int
    dfinal_state: np.ndarray | None = None  # gradient of S_N from a later segment

    @property
    def final_state(self):
        """(..., d_k, d_v) the state after the last token."""
        return self.states[..., -1, :, :]


def delta_rule_chunkwise_forward(q, k, v, beta, initial_state=None, *, chunk_size):
    """The delta rule computed chunk by chunk (module docstring); any chunk size.

    Args:
        q, k: (..., N, d_k); v: (..., N, d_v); beta: (..., N).
        initial_state: (..., d_k, d_v) S_0, default zeros.
        chunk_size: C >= 1 (C = 1 is the recurrence, C >= N one parallel chunk).

    Returns:
        out (..., N, d_v), cache (``cache.final_state`` is S_N).
    """
    q, k, v, beta, S = check_qkv_beta(q, k, v, beta, initial_state)
    C = V.positive_int("chunk_size", chunk_size)
    N = k.shape[-2]
    qc, kc, vc = _to_chunks(q, C), _to_chunks(k, C), _to_chunks(v, C)
    bc = _to_chunks(beta[..., None], C)[..., 0]  # (..., n, C)
    A, W, U = _ut_transform(kc, vc, bc)  # every chunk at once
    n = kc.shape[-3]
    S = start_state(k, v, S)
    states = np.empty(S.shape[:-2] + (n + 1,) + S.shape[-2:], dtype=S.dtype)
    u_bar, out = np.empty_like(U), np.empty_like(vc)  # (..., n, C, d_v)
    incl, _ = _masks(C)
    for j in range(n):
        states[..., j, :, :] = S
        Qj, Kj = qc[..., j, :, :], kc[..., j, :, :]
        u_bar[..., j, :, :] = U[..., j, :, :] - W[..., j, :, :] @ S  # (..., C, d_v)
        P = np.where(incl, Qj @ np.swapaxes(Kj, -1, -2), 0.0)  # (..., C, C)
        out[..., j, :, :] = Qj @ S + P @ u_bar[..., j, :, :]
        S = S + np.swapaxes(Kj, -1, -2) @ u_bar[..., j, :, :]  # (..., d_k, d_v)
    states[..., n, :, :] = S
    out = out.reshape(out.shape[:-3] + (n * C, v.shape[-1]))[..., :N, :]
    return out, ChunkwiseCache(qc, kc, vc, bc, A, states, u_bar, N)


def _solve_backward(dU_bar, k, v, beta, A, S0, U_bar):
    """Back through A U_bar = diag(beta)(V - K S0): dk, dv, dbeta, dS0 (partial)."""
    _, strict = _masks(k.shape[-2])
    dR = np.linalg.solve(np.swapaxes(A, -1, -2), dU_bar)  # dR = A^{-T} dU_bar
    dA = -dR @ np.swapaxes(U_bar, -1, -2)  # (..., C, C) forward: U_bar = A^{-1} R
    L = np.where(strict, k @ np.swapaxes(k, -1, -2), 0.0)  # forward: A = I + b L
    dL = np.where(strict, beta[..., :, None] * dA, 0.0)
    resid = v - k @ S0  # (..., C, d_v) forward: R = beta (V - K S0)
    dbeta = np.sum(dA * L, axis=-1) + np.sum(dR * resid, axis=-1)
    bdR = beta[..., :, None] * dR
    dk = (dL + np.swapaxes(dL, -1, -2)) @ k - bdR @ np.swapaxes(S0, -1, -2)
    return dk, bdR, dbeta, -np.swapaxes(k, -1, -2) @ bdR


def _chunk_backward(dO, dS_next, q, k, v, beta, A, S0, U_bar):
    """Gradients of one chunk's (O, S_next) w.r.t. q, k, v, beta and S0."""
    incl, _ = _masks(k.shape[-2])
    kT = np.swapaxes(k, -1, -2)
    P = np.where(incl, q @ kT, 0.0)  # (..., C, C)
    # forward: O = Q S0 + P U_bar,  S_next = S0 + K^T U_bar
    dU_bar = np.swapaxes(P, -1, -2) @ dO + k @ dS_next
    dP = np.where(incl, dO @ np.swapaxes(U_bar, -1, -2), 0.0)
    dq = dP @ k + dO @ np.swapaxes(S0, -1, -2)
    dk = np.swapaxes(dP, -1, -2) @ q + U_bar @ np.swapaxes(dS_next, -1, -2)
    dS0 = np.swapaxes(q, -1, -2) @ dO + dS_next
    dk2, dv, dbeta, dS0_2 = _solve_backward(dU_bar, k, v, beta, A, S0, U_bar)
    return dq, dk + dk2, dv, dbeta, dS0 + dS0_2


def delta_rule_chunkwise_backward(dout, cache):
    """Gradients of delta_rule_chunkwise_forward, chunk by chunk in reverse.

    Returns:
        dq, dk (..., N, d_k), dv (..., N, d_v), dbeta (..., N),
        dinitial_state (..., d_k, d_v).
    """
    q, k, v, beta, A, states, u_bar, N, dF = cache
    V.grad_shape("dout", dout, v.shape[:-3] + (N, v.shape[-1]))
    n, C = k.shape[-3], k.shape[-2]
    dO = _to_chunks(dout, C)  # (..., n, C, d_v)
    dq, dk, dv, dbeta = (np.empty_like(a) for a in (q, k, v, beta))
    dS = np.zeros_like(states[..., 0, :, :]) if dF is None else dF.copy()
    for j in reversed(range(n)):
        c = (Ellipsis, j, slice(None), slice(None))  # chunk j of a (..., n, C, x)
        dq[c], dk[c], dv[c], dbeta[..., j, :], dS = _chunk_backward(
            dO[c], dS, q[c], k[c], v[c], beta[..., j, :], A[c], states[c], u_bar[c]
        )
    flat = lambda g: g.reshape(g.shape[:-3] + (n * C, g.shape[-1]))[..., :N, :]
    dbeta = dbeta.reshape(dbeta.shape[:-2] + (n * C,))[..., :N]
    return flat(dq), flat(dk), flat(dv), dbeta, dS

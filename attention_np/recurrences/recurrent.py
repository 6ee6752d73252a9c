"""Recurrent form of the gated recurrence: one token at a time, O(1) state.

    S_t = diag(alpha_t) S_{t-1} + k_t^T u_t,        o_t = scale q_t S_t,

with alpha_t = exp(g_t) (a scalar per head, or one per key channel for GLA) and the
write u_t = v_t (sum rule: linear attention, RetNet, GLA, Mamba-2) or the delta rule
u_t = beta_t (v_t - k_t S'_t) with S'_t = alpha_t S_{t-1} (DeltaNet, Gated DeltaNet):
the state first decays, then the value that the decayed state already returns for
k_t is replaced by v_t, with strength beta_t.

The backward walks the tokens in reverse. Storing every state would take N d_k d_v
numbers, so the forward keeps one state every ``CHECKPOINT`` tokens and the backward
recomputes the states of one segment at a time (2x the forward work, N / 64 states).

Shape legend: (...) leading dimensions, N positions, d_k, d_v widths, G the gate
width (1 or d_k); S is (..., d_k, d_v), the layout of flash-linear-attention.
"""

from typing import NamedTuple

import numpy as np

CHECKPOINT = 64  # tokens between stored states


class RecurrentCache(NamedTuple):
    q: np.ndarray  # (..., N, d_k)
    k: np.ndarray  # (..., N, d_k)
    v: np.ndarray  # (..., N, d_v)
    g: np.ndarray  # (..., N, G) log-decays
    beta: np.ndarray | None  # (..., N) delta rule, or None (sum rule)
    checkpoints: np.ndarray  # (..., ceil(N / CHECKPOINT), d_k, d_v) S before them
    scale: float


def _outer(a, b):
    return a[..., :, None] * b[..., None, :]  # (..., m), (..., n) -> (..., m, n)


def _vecmat(a, M):
    return (a[..., None, :] @ M)[..., 0, :]  # (..., m) @ (..., m, n) -> (..., n)


def _step(S, t, c):
    """One token: returns (S'_t decayed, u_t written, S_t)."""
    Sa = np.exp(c.g[..., t, :])[..., :, None] * S  # (..., d_k, d_v) decay first
    u = c.v[..., t, :]
    if c.beta is not None:  # replace what k_t reads by v_t, with strength beta_t
        u = c.beta[..., t, None] * (u - _vecmat(c.k[..., t, :], Sa))
    return Sa, u, Sa + _outer(c.k[..., t, :], u)


def recurrent_forward(q, k, v, g, beta, S0, *, scale):
    """out (..., N, d_v) and (RecurrentCache, final state); g (..., N, G)."""
    N = q.shape[-2]
    c = RecurrentCache(q, k, v, g, beta, None, scale)
    n_ck = -(-N // CHECKPOINT)
    checkpoints = np.empty(S0.shape[:-2] + (n_ck,) + S0.shape[-2:], dtype=S0.dtype)
    out = np.empty_like(v)  # (..., N, d_v)
    S = S0
    for t in range(N):
        if t % CHECKPOINT == 0:
            checkpoints[..., t // CHECKPOINT, :, :] = S
        S = _step(S, t, c)[2]
        out[..., t, :] = scale * _vecmat(q[..., t, :], S)  # read after the write
    return out, c._replace(checkpoints=checkpoints), S


def _segment(c, s, N):
    """Recompute the segment's steps: [(S_{t-1}, S'_t, u_t, S_t)] for its tokens."""
    S = c.checkpoints[..., s, :, :]
    steps = []
    for t in range(s * CHECKPOINT, min(N, (s + 1) * CHECKPOINT)):
        Sa, u, S_t = _step(S, t, c)
        steps.append((Sa, u, S_t))
        S = S_t
    return steps


def _token_backward(dS, do, t, step, c, grads):
    """Gradients of token t; dS is the gradient of S_t. Returns that of S_{t-1}."""
    dq, dk, dv, dg, dbeta = grads
    Sa, u, S_t = step
    kt = c.k[..., t, :]
    dq[..., t, :] = c.scale * _vecmat(do, np.swapaxes(S_t, -1, -2))
    dS = dS + c.scale * _outer(c.q[..., t, :], do)  # forward: o_t = scale q_t S_t
    du = _vecmat(kt, dS)  # forward: S_t = S'_t + k_t^T u_t
    dk[..., t, :] = _vecmat(u, np.swapaxes(dS, -1, -2))
    if c.beta is None:
        dv[..., t, :] = du
    else:  # forward: u_t = beta_t (v_t - k_t S'_t)
        dbeta[..., t] = np.sum(du * (c.v[..., t, :] - _vecmat(kt, Sa)), axis=-1)
        dr = c.beta[..., t, None] * du
        dv[..., t, :] = dr
        dk[..., t, :] -= _vecmat(dr, np.swapaxes(Sa, -1, -2))
        dS = dS - _outer(kt, dr)
    held = np.sum(dS * Sa, axis=-1)  # (..., d_k) forward: S'_t = e^{g_t} S_{t-1}
    dg[..., t, :] = held.sum(axis=-1, keepdims=True) if c.g.shape[-1] == 1 else held
    return np.exp(c.g[..., t, :])[..., :, None] * dS


def recurrent_backward(dout, cache, *, dfinal_state=None):
    """dq, dk, dv, dg, dbeta (None for the sum rule), dS0 of recurrent_forward."""
    c = cache
    N = c.q.shape[-2]
    grads = [np.empty_like(x) for x in (c.q, c.k, c.v, c.g)]
    grads.append(None if c.beta is None else np.empty_like(c.beta))
    dS = np.zeros_like(c.checkpoints[..., 0, :, :])
    if dfinal_state is not None:
        dS = dS + dfinal_state
    for s in reversed(range(c.checkpoints.shape[-3])):
        steps = _segment(c, s, N)
        for i in reversed(range(len(steps))):
            t = s * CHECKPOINT + i
            dS = _token_backward(dS, dout[..., t, :], t, steps[i], c, grads)
    return (*grads, dS)

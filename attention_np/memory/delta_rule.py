"""Linear transformers as fast-weight programmers (Schlag, Irie, Schmidhuber 2021).

A fast-weight matrix S (d_k, d_v) is written with keys and values and read with
queries (row vectors, so a read is q S):

    sum rule:    S_t = S_{t-1} + k_t^T v_t                          o_t = q_t S_t
    delta rule:  S_t = S_{t-1} + beta_t k_t^T (v_t - k_t S_{t-1})    o_t = q_t S_t
                     = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t

The sum rule is unnormalised causal linear attention, o = tril(q k^T) v (diagonal
included). The delta rule first reads the value v_bar = k_t S_{t-1} stored under k_t
and writes only the correction, so with beta = 1 and a unit key it replaces the old
association instead of adding to it. With unit keys, I - beta k^T k is a generalised
Householder reflection (beta = 2 reflects, beta = 1 projects). Keys and queries are
expected already mapped through the feature map phi (DeltaNet: L2-normalised).

Shape legend: (...) leading batch/head dimensions, N positions, d_k key width, d_v
value width. S has shape (..., d_k, d_v), the layout of flash-linear-attention.
The chunkwise (UT/WY) form is in ``delta_rule_chunkwise``.

State is carried across segments: ``initial_state`` S_0 (default zeros) is an optional
array, ``cache.final_state`` is S_N, and the backward returns the gradient of S_0 last
among the array gradients (always, also for the zero state). To backpropagate through
a later segment that started from ``cache.final_state``, hand its ``dinitial_state``
to this segment's backward as ``cache._replace(dfinal_state=dS)``.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


def check_qkv_beta(q, k, v, beta, initial_state):
    """Validate (q, k, v[, beta][, initial_state]) of the fast-weight rules.

    q, k (..., N, d_k) and v (..., N, d_v) float arrays of one dtype with d_k, d_v >= 1;
    beta (..., N) or None; initial_state (..., d_k, d_v) or None.
    """
    q = V.float_array("q", q, min_ndim=2)
    k = V.float_array("k", k, min_ndim=2)
    v = V.float_array("v", v, min_ndim=2)
    if q.shape != k.shape:
        raise ValueError(f"q{q.shape} and k{k.shape} must have the same shape")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v{v.shape} must be (..., N, d_v) with (...,N) of k{k.shape}")
    if k.shape[-1] == 0 or v.shape[-1] == 0:
        raise ValueError(f"k{k.shape} and v{v.shape} need widths d_k, d_v >= 1")
    if beta is not None:
        beta = V.float_array("beta", beta)
        if beta.shape != k.shape[:-1]:
            raise ValueError(
                f"beta{beta.shape} must have shape {k.shape[:-1]} (..., N)"
            )
    if initial_state is not None:
        initial_state = V.float_array("initial_state", initial_state)
        want = k.shape[:-2] + (k.shape[-1], v.shape[-1])
        if initial_state.shape != want:
            raise ValueError(
                f"initial_state{initial_state.shape} must have shape {want} "
                "(..., d_k, d_v)"
            )
    V.same_dtype(q=q, k=k, v=v, beta=beta, initial_state=initial_state)
    return q, k, v, beta, initial_state


def _outer(a, b):
    """Batched outer product a^T b: (..., m), (..., n) -> (..., m, n)."""
    return a[..., :, None] * b[..., None, :]


def _vecmat(a, M):
    """Batched row vector times matrix: (..., m), (..., m, n) -> (..., n)."""
    return (a[..., None, :] @ M)[..., 0, :]


def _T(x):
    return np.swapaxes(x, -1, -2)


def start_state(k, v, initial_state):
    """S_0: a copy of ``initial_state``, or zeros (..., d_k, d_v)."""
    if initial_state is not None:
        return initial_state.copy()
    return np.zeros(k.shape[:-2] + (k.shape[-1], v.shape[-1]), dtype=k.dtype)


class SumRuleCache(NamedTuple):
    q: np.ndarray  # (..., N, d_k)
    k: np.ndarray  # (..., N, d_k)
    v: np.ndarray  # (..., N, d_v)
    initial_state: np.ndarray  # (..., d_k, d_v) S_0 (zeros when none was given)
    final_state: np.ndarray  # (..., d_k, d_v) S_N, to continue the sequence later
    dfinal_state: np.ndarray | None = None  # gradient of S_N from a later segment


def sum_rule_forward(q, k, v, initial_state=None):
    """o_t = q_t S_t with S_t = S_{t-1} + k_t^T v_t (a recurrent loop).

    Args:
        q, k: (..., N, d_k) queries and keys (after the feature map).
        v: (..., N, d_v) values.
        initial_state: (..., d_k, d_v) S_0, default zeros.

    Returns:
        out (..., N, d_v), cache (``cache.final_state`` is S_N).
    """
    q, k, v, _, S0 = check_qkv_beta(q, k, v, None, initial_state)
    S = S0 = start_state(k, v, S0)  # (..., d_k, d_v)
    out = np.empty_like(v)  # (..., N, d_v)
    for t in range(k.shape[-2]):
        S = S + _outer(k[..., t, :], v[..., t, :])  # write: S += k_t^T v_t
        out[..., t, :] = _vecmat(q[..., t, :], S)  # read: o_t = q_t S_t
    return out, SumRuleCache(q, k, v, S0, S)


def sum_rule_backward(dout, cache):
    """Gradients of the sum rule from its parallel form o = q S_0 + (q k^T o tril) v.

    Returns:
        dq, dk (..., N, d_k), dv (..., N, d_v), dinitial_state (..., d_k, d_v).
    """
    q, k, v, S0, _, dF = cache
    V.grad_shape("dout", dout, v.shape)
    dF = np.zeros_like(S0) if dF is None else dF  # forward: S_N = S_0 + k^T v
    tril = np.tril(np.ones((q.shape[-2], q.shape[-2]), dtype=bool))  # (N, N)
    P = np.where(tril, q @ _T(k), 0.0)  # (..., N, N)
    dP = np.where(tril, dout @ _T(v), 0.0)  # forward: o = P v
    dq = dP @ k + dout @ _T(S0)
    dk = _T(dP) @ q + v @ _T(dF)
    dv = _T(P) @ dout + k @ dF
    return dq, dk, dv, _T(q) @ dout + dF


class DeltaRuleCache(NamedTuple):
    q: np.ndarray  # (..., N, d_k)
    k: np.ndarray  # (..., N, d_k)
    v: np.ndarray  # (..., N, d_v)
    beta: np.ndarray  # (..., N)
    states: np.ndarray  # (..., N + 1, d_k, d_v) S_0 .. S_N
    dfinal_state: np.ndarray | None = None  # gradient of S_N from a later segment

    @property
    def final_state(self):
        """(..., d_k, d_v) S_N, to continue the sequence later."""
        return self.states[..., -1, :, :]


def delta_rule_forward(q, k, v, beta, initial_state=None):
    """The delta rule as a recurrence (module docstring), one token at a time.

    Args:
        q, k: (..., N, d_k) queries and keys (after the feature map).
        v: (..., N, d_v) values.
        beta: (..., N) write strengths (sigmoid outputs in DeltaNet).
        initial_state: (..., d_k, d_v) S_0, default zeros.

    Returns:
        out (..., N, d_v), cache (``cache.final_state`` is S_N).
    """
    q, k, v, beta, S = check_qkv_beta(q, k, v, beta, initial_state)
    S = start_state(k, v, S)
    N = k.shape[-2]
    states = np.empty(S.shape[:-2] + (N + 1,) + S.shape[-2:], dtype=S.dtype)
    states[..., 0, :, :] = S  # (..., N + 1, d_k, d_v)
    out = np.empty_like(v)  # (..., N, d_v)
    for t in range(N):
        kt = k[..., t, :]
        err = v[..., t, :] - _vecmat(kt, S)  # (..., d_v) v_t minus what k_t reads
        S = S + beta[..., t, None, None] * _outer(kt, err)  # write the correction
        states[..., t + 1, :, :] = S
        out[..., t, :] = _vecmat(q[..., t, :], S)
    return out, DeltaRuleCache(q, k, v, beta, states)


def delta_rule_backward(dout, cache):
    """Gradients of delta_rule_forward, backwards through the recurrence.

    Args:
        dout: (..., N, d_v).
        cache: from ``delta_rule_forward``.

    Returns:
        dq, dk (..., N, d_k), dv (..., N, d_v), dbeta (..., N),
        dinitial_state (..., d_k, d_v).
    """
    q, k, v, beta, states, dF = cache
    V.grad_shape("dout", dout, v.shape)
    dq, dk = np.empty_like(q), np.empty_like(k)
    dv, dbeta = np.empty_like(v), np.empty_like(beta)
    dS = np.zeros_like(states[..., 0, :, :]) if dF is None else dF.copy()
    for t in reversed(range(k.shape[-2])):
        S_prev, S_t = states[..., t, :, :], states[..., t + 1, :, :]
        kt, b = k[..., t, :], beta[..., t, None]
        dq[..., t, :] = _vecmat(dout[..., t, :], _T(S_t))
        dS = dS + _outer(q[..., t, :], dout[..., t, :])  # forward: o_t = q_t S_t
        err = v[..., t, :] - _vecmat(kt, S_prev)  # (..., d_v)
        # forward: S_t = S_prev + beta k^T err
        dbeta[..., t] = np.sum(_vecmat(kt, dS) * err, axis=-1)
        derr = b * _vecmat(kt, dS)  # (..., d_v)
        dkt = b * _vecmat(err, _T(dS))  # (..., d_k)
        # forward: err = v_t - k_t S_prev
        dv[..., t, :] = derr
        dk[..., t, :] = dkt - _vecmat(derr, _T(S_prev))
        dS = dS - _outer(kt, derr)
    return dq, dk, dv, dbeta, dS

"""Chunkwise form of the gated recurrence: parallel inside chunks, recurrent across.

The recurrence (``recurrent``) is S_t = diag(alpha_t) S_{t-1} + k_t^T u_t, read as
o_t = scale q_t S_t, where u_t = v_t (sum rule) or, for the delta rule,
u_t = beta_t (v_t - k_t alpha_t S_{t-1}). Cut the sequence into chunks of C tokens;
inside a chunk that starts from the state S0, with local cumulative log-decays
B_t = g_1 + ... + g_t (t = 1 .. C) and the chunk's total Lam = B_C:

    O      = scale (Q o e^B) S0 + P U,       P = scale (Q K^T o Gamma), Gamma_ij =
                                                 e^{B_i - B_j} for j <= i, else 0
    S_next = e^Lam o S0 + (K o e^{Lam - B})^T U

No exponent can overflow (``decay``: differences <= 0, or bounded by the span of
a chunk's decays). For the sum rule U = V. For the delta rule
(scalar gates) U solves a unit lower-triangular system, the UT transform with the
decays folded in (Yang et al. 2024):

    A U = diag(beta) (V - (K o e^B) S0),   A = I + diag(beta) (K K^T o Gamma_strict)
    W = A^{-1} diag(beta) (K o e^B),  U0 = A^{-1} diag(beta) V,   U = U0 - W S0

P, A^{-1} and the right-hand sides do not depend on the state: the chunks are
transformed together, and only the short loop over the n = N / C chunk states stays
sequential (a few NumPy calls per chunk, ``_state_loop``). The loop applies A^{-1}
after subtracting the state's prediction, U = A^{-1} diag(beta) (V - (K o e^B) S0),
which is the same U without the product W (the backward forms W and U0). The
chunks are processed in groups of GROUP_TOKENS tokens, so that the temporaries stay
bounded and the time grows linearly with N. The backward keeps the n + 1
chunk-boundary states and differentiates these formulas, group by group in reverse.

Shape legend: (...) leading dimensions, n chunks of C tokens, d_k, d_v widths, G the
gate width (1: scalar per head, d_k: GLA's diagonal gate).
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .decay import (
    causal_decay_matrix,
    causal_product,
    chunk_cumsum,
    chunk_scores,
    chunk_scores_backward,
    from_chunks,
    keys_through_last,
    queries_through_last,
    reduce_gate,
    short_span,
    to_chunks,
)
from .triangular import diagonal, unit_lower_inverse

GROUP_TOKENS = 4096  # tokens per group of chunks (bounds the temporaries)


class GroupCache(NamedTuple):
    """One group of m chunks: everything its backward needs."""

    q: np.ndarray  # (..., m, C, d_k) chunked, zero-padded
    k: np.ndarray  # (..., m, C, d_k)
    v: np.ndarray  # (..., m, C, d_v)
    B: np.ndarray  # (..., m, C, G) local cumulative log-decays
    beta: np.ndarray | None  # (..., m, C) delta rule, or None (sum rule)
    D: np.ndarray | None  # (..., m, C, C) Gamma, diagonal included (_score_side)
    P: np.ndarray  # (..., m, C, C) scale (Q K^T o Gamma)
    L: np.ndarray | None  # (..., m, C, C) delta rule: K K^T o Gamma_strict
    T: np.ndarray | None  # (..., m, C, C) delta rule: A^{-1}
    U: np.ndarray  # (..., m, C, d_v) what each token wrote
    states: np.ndarray  # (..., m + 1, d_k, d_v) the state at every chunk boundary


class ChunkwiseCache(NamedTuple):
    groups: list  # GroupCache per group of chunks, in order
    scale: float
    N: int


def _ut_system(k, v, B, beta, side, gated):
    """L, T = A^{-1} and the right-hand sides of the UT transform (module
    docstring); ``side`` makes the chunks' score products (``_score_side``)."""
    L = side.scores(side.left(k), strict=True)  # (..., m, C, C) K K^T o Gamma_strict
    T = unit_lower_inverse(beta[..., :, None] * L)  # A = I + diag(beta) L
    return L, T, _ut_rhs(k, v, B, beta, gated)


def _ut_rhs(k, v, B, beta, gated):
    """diag(beta) (K o e^B) and diag(beta) V, (..., m, C, d_k) and (..., m, C, d_v),
    the right-hand sides of the UT transform (gated False: B is zero)."""
    b = beta[..., None]
    return k * (b * np.exp(B) if gated else b), v * b


def _state_loop(S, KhT, V, T, Kb, decay):
    """Carry the state over the chunks: states (..., m + 1, d_k, d_v), the decayed
    state entering each chunk, e^Lam o S (..., m, d_k, d_v), and U.

    KhT (..., m, d_k, C) is (K o e^{Lam - B})^T; ``decay`` (..., m, G, 1) is e^Lam,
    which scales the state's rows (None: no gate, the state is kept as it is).

    Sum rule (T None, V the values): S_next = e^Lam o S + Kh^T V, with every
    Kh^T V computed before the loop. Delta rule (V = diag(beta) V, Kb =
    diag(beta) (K o e^B)): U = T (V - Kb S), then S_next = e^Lam S + Kh^T U, three
    products per chunk. This is U = U0 - W S of the module docstring with T applied
    after the subtraction, so that W = T Kb is never formed (one chunk-sized product
    fewer; the backward forms W). The loop writes into preallocated arrays: few
    NumPy calls per chunk, which matters when several threads share Python's lock.
    The gated delta rule folds e^Lam into the update's product
    (``_gated_delta_loop``).
    """
    if T is not None and decay is not None:
        return _gated_delta_loop(S, KhT, V, T, Kb, decay)
    m = KhT.shape[-3]
    states = np.empty(S.shape[:-2] + (m + 1,) + S.shape[-2:], dtype=S.dtype)
    states[..., 0, :, :] = S
    X = KhT @ V if T is None else None  # (..., m, d_k, d_v) what each chunk adds
    U = V if T is None else np.empty_like(V)
    S_in = states[..., :-1, :, :]
    held = S_in if decay is None else np.empty_like(S_in)  # e^Lam o S_in

    def chunks(x):  # x's chunks one by one (None: None for each)
        return [None] * m if x is None else np.moveaxis(x, -3, 0)

    each = [chunks(x) for x in (S_in, states[..., 1:, :, :])]
    if T is None:
        for S, nxt, a, h, x in zip(*each, *map(chunks, (decay, held, X)), strict=True):
            np.add(S if a is None else np.multiply(a, S, out=h), x, out=nxt)
        return states, held, U
    R = np.empty_like(V[..., 0, :, :])  # (..., C, d_v)
    for S, nxt, kb, v, t, kht, u in zip(
        *each, *map(chunks, (Kb, V, T, KhT, U)), strict=True
    ):  # ungated: the gated delta rule has its own loop
        np.matmul(kb, S, out=R)
        np.subtract(v, R, out=R)  # diag(beta) (V - K S)
        np.matmul(t, R, out=u)  # U = A^{-1} R
        np.matmul(kht, u, out=nxt)
        nxt += S
    return states, held, U


def _gated_delta_loop(S, KhT, V, T, Kb, decay):
    """``_state_loop`` for the delta rule with a gate (Gated DeltaNet).

    The state update S_next = e^Lam S + Kh^T U is one product, [Kh^T | e^Lam I]
    times [U; S], instead of a product, a scaling and a sum: each chunk's U and
    the state entering it are stored one above the other, Y_j = [U_j; S_j]
    (C + d_k rows), and [Kh^T | e^Lam I] is built once for all chunks. The product
    is d_k columns longer (the identity block), but the loop makes four NumPy calls
    per chunk instead of six, and a NumPy call costs a thread far more when
    another thread runs its own loop at the same time (both wait for Python's lock
    between calls). states, U and the decayed states are views of Y.
    """
    m, d_k, C = KhT.shape[-3:]
    lead = S.shape[:-2]
    Y = np.empty(lead + (m + 1, C + d_k, V.shape[-1]), dtype=S.dtype)
    Y[..., 0, C:, :] = S
    A = np.zeros(lead + (m, d_k, C + d_k), dtype=S.dtype)  # [Kh^T | e^Lam I]
    A[..., :C] = KhT
    diagonal(A[..., C:])[...] = decay[..., 0]  # decay (..., m, 1, 1): e^Lam
    R = np.empty_like(V[..., 0, :, :])  # (..., C, d_v)
    Ys = np.moveaxis(Y, -3, 0)
    rest = (np.moveaxis(x, -3, 0) for x in (Kb, V, T, A))
    for y, nxt, kb, v, t, a in zip(Ys[:-1], Ys[1:], *rest, strict=True):
        np.matmul(kb, y[..., C:, :], out=R)
        np.subtract(v, R, out=R)  # diag(beta) (V - (K o e^B) S)
        np.matmul(t, R, out=y[..., :C, :])  # U = A^{-1} R
        np.matmul(a, y, out=nxt[..., C:, :])  # S_next = Kh^T U + e^Lam S
    states = Y[..., C:, :]  # (..., m + 1, d_k, d_v)
    return states, decay * states[..., :-1, :, :], Y[..., :-1, :C, :]


class _Side(NamedTuple):
    """How a group makes its score products (``_score_side``)."""

    D: np.ndarray | None  # for the backward (see GroupCache)
    KhT: np.ndarray  # (..., m, d_k, C) (K o e^{Lam - B})^T, also the loop's
    left: Callable  # left(a, scale=1): the left operand of a product with the keys
    scores: Callable  # scores(left(a, scale), strict=False): scale (a K^T o Gamma)
    through_last: bool  # the products go through each chunk's last row


def _score_side(kc, B, gated):
    """The keys' side of the chunks' score products, scale (a K^T o Gamma).

    Ungated, or when every chunk's decays span little (``decay.short_span``, the
    usual case), a score block is one product through the chunk's last row,
    (scale a o e^{B - Lam}) (K o e^{Lam - B})^T masked, with the transposed keys that
    the state update uses too; D is not formed (None; ungated scalar gates: the
    causal mask, all the backward needs). Otherwise ``decay.chunk_scores``, with D
    for scalar gates and the halving levels for per-channel gates.
    """
    C, G = B.shape[-2:]
    if not gated or short_span(B):
        b = B if gated else None  # None: every decay factor is exactly 1
        D = np.tri(C, dtype=kc.dtype) if G == 1 and not gated else None

        def left(a, scale=1.0):
            return queries_through_last(a, b, scale)

        def scores(af, strict=False):
            return causal_product(af, KhT, strict=strict)

        KhT = keys_through_last(kc, b)
        return _Side(D, KhT, left, scores, True)
    D = causal_decay_matrix(B) if G == 1 else None  # (..., m, C, C) Gamma
    KhT = keys_through_last(kc, B)  # the state update's (K o e^{Lam - B})^T

    def left(a, scale=1.0):
        return scale * a

    def scores(af, strict=False):
        return chunk_scores(af, kc, B, D, strict=strict)

    return _Side(D, KhT, left, scores, False)


def _group_forward(qc, kc, vc, gc, bc, S0, scale):
    """out (..., m, C, d_v), GroupCache and the final state of m chunks."""
    B = chunk_cumsum(gc)  # (..., m, C, G) local cumulative log-decays
    lam = B[..., -1:, :]  # (..., m, 1, G) the chunk's total log-decay
    # No gate (linear attention, DeltaNet): every decay factor is exactly 1, so the
    # exps are skipped; the numbers are the same.
    gated = bool(np.any(gc))
    side = _score_side(kc, B, gated)
    V, L, T, Kb = vc, None, None, None
    if bc is not None:
        L, T, (Kb, V) = _ut_system(kc, vc, B, bc, side, gated)
    decay = np.exp(np.swapaxes(lam, -1, -2)) if gated else None  # (..., m, G, 1)
    Qf = side.left(qc, scale)
    P = side.scores(Qf)  # (..., m, C, C) scale (Q K^T o Gamma)
    states, held, U = _state_loop(S0, side.KhT, V, T, Kb, decay)
    out = P @ U  # (..., m, C, d_v)
    if side.through_last:  # scale (Q o e^B) S_in = (scale Q o e^{B - Lam}) e^Lam S_in
        out += Qf @ held
    else:
        out += (Qf * np.exp(B)) @ states[..., :-1, :, :]
    cache = GroupCache(qc, kc, vc, B, bc, side.D, P, L, T, U, states)
    return out, cache, states[..., -1, :, :]


def _groups(n, C):
    per = max(1, GROUP_TOKENS // C)
    return [slice(s, min(n, s + per)) for s in range(0, n, per)]


def chunkwise_forward(q, k, v, g, beta, S0, *, scale, chunk_size):
    """out (..., N, d_v), ChunkwiseCache, final state; g (..., N, G), beta or None."""
    N, C = q.shape[-2], min(chunk_size, q.shape[-2])
    qc, kc, vc, gc = (to_chunks(x, C) for x in (q, k, v, g))  # (..., n, C, .)
    bc = None if beta is None else to_chunks(beta[..., None], C)[..., 0]  # (..., n, C)
    outs, groups, S = [], [], S0
    for sl in _groups(qc.shape[-3], C):
        part = [x[..., sl, :, :] for x in (qc, kc, vc, gc)]
        part.append(None if bc is None else bc[..., sl, :])
        out, cache, S = _group_forward(*part, S, scale)
        outs.append(out)
        groups.append(cache)
    # (..., n, C, d_v); one group's output needs no copy
    out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-3)
    return from_chunks(out, N), ChunkwiseCache(groups, scale, N), S


def _boundary_grads(dO, dSN, c, W, scale):
    """Back through the chunk loop: dU (..., m, C, d_v) and dS at every boundary.

    Per chunk the loop is S_next = M S + X, with M = diag(e^Lam) (sum rule) or
    M = e^Lam I - Kh^T W (delta rule: U = U0 - W S). Its transpose runs in reverse,
    dS_j = M_j^T dS_{j+1} + Y_j, where Y_j is what chunk j's output (and, for the
    delta rule, its U) sends to the state entering it: one product and one sum per
    chunk, with every M_j^T and Y_j computed before the loop.
    """
    B, states = c.B, c.states
    lam = B[..., -1:, :]
    Kh = c.k * np.exp(lam - B)
    decay = np.exp(np.swapaxes(lam, -1, -2))  # (..., m, G, 1)
    dU = np.swapaxes(c.P, -1, -2) @ dO  # (..., m, C, d_v) the intra-chunk part
    Y = np.swapaxes(scale * c.q * np.exp(B), -1, -2) @ dO  # (..., m, dk, dv)
    if W is not None:  # forward: U = U0 - W S
        Y -= np.swapaxes(W, -1, -2) @ dU
    Mt = None  # delta rule: S_next = M S + ... with M = e^Lam I - Kh^T W
    if W is not None:
        Mt = -(np.swapaxes(W, -1, -2) @ Kh)  # (..., m, d_k, d_k) M^T
        diagonal(Mt)[...] += decay[..., 0]
    dS = np.empty_like(states)  # dS[j]: gradient of the state entering chunk j
    dS[..., -1, :, :] = dSN
    for j in reversed(range(B.shape[-3])):
        nxt, here = dS[..., j + 1, :, :], dS[..., j, :, :]
        if Mt is None:
            np.multiply(decay[..., j, :, :], nxt, out=here)
        else:
            np.matmul(Mt[..., j, :, :], nxt, out=here)
        here += Y[..., j, :, :]
    dU += Kh @ dS[..., 1:, :, :]  # forward: S_next = ... + Kh^T U
    return dU, dS, Kh


def _decay_grads(dO, dS, c, Kh, scale):
    """dq, dk and dB from O's inter-chunk term, S_next's decays and the scores P."""
    B, G = c.B, c.B.shape[-1]
    eB = np.exp(B)
    S_in, dS_out = c.states[..., :-1, :, :], dS[..., 1:, :, :]
    dQe = dO @ np.swapaxes(S_in, -1, -2)  # (..., m, C, d_k) forward: O += Qe S0
    dKh = c.U @ np.swapaxes(dS_out, -1, -2)  # forward: S_next += Kh^T U
    dP = scale * (dO @ np.swapaxes(c.U, -1, -2))  # forward: O += P U
    dq, dk, dB = chunk_scores_backward(dP, c.q, c.k, B, c.D, c.P / scale)
    dq += scale * dQe * eB
    dk += dKh * np.exp(B[..., -1:, :] - B)
    X = reduce_gate(dKh * Kh, G)  # (..., m, C, G) forward: Kh = K e^{Lam - B}
    dB += reduce_gate(scale * dQe * c.q * eB, G) - X
    decay = np.exp(np.swapaxes(B[..., -1:, :], -1, -2))  # (..., m, G, 1)
    held = np.sum(dS_out * decay * S_in, axis=-1)  # forward: S_next = e^Lam S0 + ...
    dB[..., -1, :] += X.sum(axis=-2) + reduce_gate(held, G)  # Lam = B_C
    return dq, dk, dB


def _ut_backward(dU, c, WU, dk, dB):
    """Add the UT transform's gradients (delta rule); returns dk, dv, dB, dbeta."""
    k, B, beta, d_k = c.k, c.B, c.beta, c.k.shape[-1]
    dW = -dU @ np.swapaxes(c.states[..., :-1, :, :], -1, -2)  # U = U0 - W S0
    dR = np.swapaxes(c.T, -1, -2) @ np.concatenate([dW, dU], axis=-1)  # A^T dR = dZ
    dA = np.tril(-dR @ np.swapaxes(WU, -1, -2), -1)  # (..., m, C, C) unit lower A
    Ke = k * np.exp(B)
    dbeta = np.sum(dR * np.concatenate([Ke, c.v], axis=-1), axis=-1)
    dbeta += np.sum(dA * c.L, axis=-1)  # forward: A = I + diag(beta) L
    dRb = beta[..., None] * dR  # forward: rhs = diag(beta) [K e^B | V]
    dk = dk + dRb[..., :d_k] * np.exp(B)
    dB = dB + reduce_gate(dRb[..., :d_k] * Ke, B.shape[-1])
    dL = beta[..., :, None] * dA
    dk1, dk2, dB1 = chunk_scores_backward(dL, k, k, B, c.D, c.L, strict=True)
    return dk + dk1 + dk2, dRb[..., d_k:], dB + dB1, dbeta


def _group_backward(dO, dSN, c, scale):
    """Chunked dq, dk, dv, dg, dbeta of one group, and the gradient of its S0."""
    if c.D is None and c.B.shape[-1] == 1:  # the forward made its scores without D
        c = c._replace(D=causal_decay_matrix(c.B))
    W = WU = None
    if c.beta is not None:  # [W | U0] = T diag(beta) [K o e^B | V], not kept
        WU = c.T @ np.concatenate(_ut_rhs(c.k, c.v, c.B, c.beta, gated=True), axis=-1)
        W = WU[..., : c.k.shape[-1]]
    dU, dS, Kh = _boundary_grads(dO, dSN, c, W, scale)
    dq, dk, dB = _decay_grads(dO, dS, c, Kh, scale)
    dv, dbeta = dU, None
    if c.beta is not None:
        dk, dv, dB, dbeta = _ut_backward(dU, c, WU, dk, dB)
    dg = chunk_cumsum(dB, reverse=True)  # forward: B = cumsum(g) in each chunk
    return (dq, dk, dv, dg, dbeta), dS[..., 0, :, :]


def chunkwise_backward(dout, cache, *, dfinal_state=None):
    """dq, dk, dv, dg, dbeta (None for the sum rule), dS0 of chunkwise_forward.

    ``dfinal_state`` is the gradient of the final state (None: it is not used).
    """
    first = cache.groups[0]
    dO = to_chunks(dout, first.q.shape[-2])  # (..., n, C, d_v)
    dS = np.zeros_like(first.states[..., 0, :, :])
    if dfinal_state is not None:
        dS = dS + dfinal_state
    parts, stop = [], dO.shape[-3]
    for c in reversed(cache.groups):
        start = stop - c.q.shape[-3]
        grads, dS = _group_backward(dO[..., start:stop, :, :], dS, c, cache.scale)
        parts.append(grads)
        stop = start
    joined = [
        np.concatenate([p[i] for p in reversed(parts)], axis=-3) for i in range(4)
    ]
    grads = [from_chunks(x, cache.N) for x in joined]
    dbeta = None
    if first.beta is not None:
        dbeta = np.concatenate([p[4] for p in reversed(parts)], axis=-2)
        dbeta = from_chunks(dbeta[..., None], cache.N)[..., 0]
    return (*grads, dbeta, dS)

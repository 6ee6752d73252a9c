"""Log-space decays: the one place where gates become multipliers.

A gate is a per-token log-decay g_t = log(alpha_t) <= 0, one per head (stored as
(..., N, 1)) or one per key channel ((..., N, d_k), GLA). A product of decays over a
span is a difference of cumulative sums:

    alpha_{j+1} ... alpha_i = exp(b_i - b_j),    b_t = g_1 + ... + g_t,

and for i >= j the exponent is <= 0, so exp never overflows however long the
sequence. Above the diagonal (i < j) the difference is a growth factor that would
overflow after a few thousand tokens, so it is masked *before* exp. Never
exp(b_i) * exp(-b_j): the second factor overflows (float64) once b_j < -709.

``gated_scores`` is the decay-masked score matrix every form needs:

    P_ij = sum_c q_ic k_jc exp(b_q[i, c] - b_k[j, c])   where mask[i, j], else 0

which for a scalar gate is (q k^T) o exp(b_i - b_j) (``chunk_scores`` reuses one
decay matrix). A per-channel gate needs a (rows, cols, d_k) tensor, so
``causal_scores`` builds it only for SUB-row diagonal blocks; every block left of
the diagonal is one matrix product, factorised through the position r just before
its rows (``prefix_scores``): exp(b_i - b_j) = exp(b_i - b_r) exp(b_r - b_j), both
factors <= 1.

Shape legend: (...) leading dimensions, Nq rows, Nk columns, d_k key width, G the
gate width (1 or d_k).
"""

import numpy as np

BUDGET = 1 << 21  # elements of a (rows, cols, d_k) decay tensor built at once


def reverse_cumsum(x, axis):
    """sum_{s >= t} x_s along ``axis``: the gradient of a cumulative sum."""
    return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)


def reduce_gate(x, G):
    """Sum a (..., d_k) gradient to the gate's width G (1 for a scalar gate)."""
    return np.sum(x, axis=-1, keepdims=True) if G == 1 else x


def decay_matrix(b_q, b_k, mask):
    """(..., Nq, Nk) exp(b_q[i] - b_k[j]) where mask, else 0 (scalar gates (., 1))."""
    diff = b_q - np.swapaxes(b_k, -1, -2)  # (..., Nq, Nk)
    return np.exp(np.where(mask, diff, -np.inf))  # masked before exp: no overflow


def _decay_tensor(b_q, b_k, mask):
    """(..., Nq, Nk, d_k) exp(b_q[i, c] - b_k[j, c]) where mask, else 0."""
    diff = b_q[..., :, None, :] - b_k[..., None, :, :]  # (..., Nq, Nk, d_k)
    return np.exp(np.where(mask[..., None], diff, -np.inf))


def _slices(lead, per_slice):
    """Index ranges over the flattened leading dimensions, BUDGET elements each."""
    n = int(np.prod(lead, dtype=np.int64))
    step = max(1, BUDGET // max(per_slice, 1))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def _flat(x, trailing):
    return x.reshape((-1,) + x.shape[x.ndim - trailing :])


def gated_scores(q, k, b_q, b_k, mask):
    """P (..., Nq, Nk): decay-masked scores (module docstring).

    Args:
        q: (..., Nq, d_k); k: (..., Nk, d_k); b_q: (..., Nq, G); b_k: (..., Nk, G)
            cumulative log-decays; mask: (Nq, Nk) bool, True where j may reach i.
    """
    if b_q.shape[-1] == 1:
        return (q @ np.swapaxes(k, -1, -2)) * decay_matrix(b_q, b_k, mask)
    lead, (Nq, d_k), Nk = q.shape[:-2], q.shape[-2:], k.shape[-2]
    qf, kf, bqf, bkf = (_flat(x, 2) for x in (q, k, b_q, b_k))
    P = np.empty((qf.shape[0], Nq, Nk), dtype=q.dtype)  # (L, Nq, Nk)
    for s in _slices(lead, Nq * Nk * d_k):
        E = _decay_tensor(bqf[s], bkf[s], mask)  # (l, Nq, Nk, d_k)
        P[s] = ((E * kf[s][:, None]) @ qf[s][..., None])[..., 0]
    return P.reshape(lead + (Nq, Nk))


def gated_scores_backward(dP, q, k, b_q, b_k, mask):
    """Gradients of ``gated_scores``: dq, dk, db_q, db_k.

    forward: P_ij = sum_c q_ic k_jc E_ijc, E_ijc = exp(b_q[i,c] - b_k[j,c]), so with
    X = dP o E:  dq = X k,  dk = X^T q,  db_q[i] = sum_j X_ij q_i k_j = -db_k summed.
    """
    if b_q.shape[-1] == 1:
        X = dP * decay_matrix(b_q, b_k, mask)  # (..., Nq, Nk)
        Y = X * (q @ np.swapaxes(k, -1, -2))  # d/db of exp(b_i - b_j) is +/- itself
        dbq, dbk = Y.sum(axis=-1, keepdims=True), -Y.sum(axis=-2)[..., None]
        return X @ k, np.swapaxes(X, -1, -2) @ q, dbq, dbk
    lead, (Nq, d_k), Nk = q.shape[:-2], q.shape[-2:], k.shape[-2]
    grads = [np.empty_like(_flat(x, 2)) for x in (q, k, b_q, b_k)]
    flat = [_flat(x, 2) for x in (q, k, b_q, b_k)]
    dPf = _flat(dP, 2)
    for s in _slices(lead, Nq * Nk * d_k):
        qs, ks, bqs, bks = (x[s] for x in flat)
        X = dPf[s][..., None] * _decay_tensor(bqs, bks, mask)  # (l, Nq, Nk, d_k)
        Xk = X * ks[:, None]
        Y = Xk * qs[:, :, None]
        grads[0][s], grads[1][s] = Xk.sum(axis=-2), (X * qs[:, :, None]).sum(axis=-3)
        grads[2][s], grads[3][s] = Y.sum(axis=-2), -Y.sum(axis=-3)
    return tuple(
        g.reshape(x.shape) for g, x in zip(grads, (q, k, b_q, b_k), strict=True)
    )


SUB = 8  # rows of the diagonal blocks of causal_scores with a per-channel gate


def prefix_scores(q, k, b_q, b_k, ref):
    """P_ij for keys that all precede the queries, factorised through a reference.

    With j <= r <= i for a position r whose cumulative log-decay is ``ref``
    (..., 1, G): exp(b_i - b_j) = exp(b_i - ref) exp(ref - b_j), two factors <= 1,
    so P = (q o e^{b_q - ref}) (k o e^{ref - b_k})^T is one matrix product.
    """
    qt, kt = q * np.exp(b_q - ref), k * np.exp(ref - b_k)
    return qt @ np.swapaxes(kt, -1, -2), (qt, kt)


def prefix_scores_backward(dP, q, k, b_q, b_k, ref):
    """dq, dk, db_q, db_k, dref of prefix_scores."""
    G = ref.shape[-1]
    qt, kt = q * np.exp(b_q - ref), k * np.exp(ref - b_k)
    dqt, dkt = dP @ kt, np.swapaxes(dP, -1, -2) @ qt  # forward: P = qt kt^T
    Xq, Xk = reduce_gate(dqt * qt, G), reduce_gate(dkt * kt, G)
    dref = Xk.sum(axis=-2, keepdims=True) - Xq.sum(axis=-2, keepdims=True)
    return dqt * np.exp(b_q - ref), dkt * np.exp(ref - b_k), Xq, -Xk, dref


def _blocks(C, G):
    step = C if G == 1 else SUB  # a scalar gate needs no (rows, cols, d_k) tensor
    return [(r0, min(C, r0 + step)) for r0 in range(0, C, step)]


def causal_scores(q, k, b, *, strict=False):
    """(..., C, C) P_ij = sum_c q_ic k_jc e^{b_ic - b_jc} for j <= i (j < i: strict).

    The diagonal blocks use ``gated_scores``; the blocks left of them, whose keys
    all precede their queries, are one matrix product each (``prefix_scores``).
    """
    C = q.shape[-2]
    P = np.zeros(q.shape[:-1] + (C,), dtype=q.dtype)  # (..., C, C)
    for r0, r1 in _blocks(C, b.shape[-1]):
        rows, cols = np.indices((r1 - r0, r1 - r0))
        mask = rows > cols if strict else rows >= cols
        qs, ks, bs = (x[..., r0:r1, :] for x in (q, k, b))
        P[..., r0:r1, r0:r1] = gated_scores(qs, ks, bs, bs, mask)
        if r0 > 0:
            P[..., r0:r1, :r0] = prefix_scores(
                qs, k[..., :r0, :], bs, b[..., :r0, :], b[..., r0 - 1 : r0, :]
            )[0]
    return P


def causal_scores_backward(dP, q, k, b, *, strict=False):
    """dq, dk, db of causal_scores."""
    dq, dk, db = np.zeros_like(q), np.zeros_like(k), np.zeros_like(b)
    for r0, r1 in _blocks(q.shape[-2], b.shape[-1]):
        rows, cols = np.indices((r1 - r0, r1 - r0))
        mask = rows > cols if strict else rows >= cols
        qs, ks, bs = (x[..., r0:r1, :] for x in (q, k, b))
        g = gated_scores_backward(dP[..., r0:r1, r0:r1], qs, ks, bs, bs, mask)
        dq[..., r0:r1, :] += g[0]
        dk[..., r0:r1, :] += g[1]
        db[..., r0:r1, :] += g[2] + g[3]
        if r0 > 0:
            ref = b[..., r0 - 1 : r0, :]
            g = prefix_scores_backward(
                dP[..., r0:r1, :r0], qs, k[..., :r0, :], bs, b[..., :r0, :], ref
            )
            dq[..., r0:r1, :] += g[0]
            dk[..., :r0, :] += g[1]
            db[..., r0:r1, :] += g[2]
            db[..., :r0, :] += g[3]
            db[..., r0 - 1 : r0, :] += g[4]
    return dq, dk, db


def to_chunks(x, C):
    """(..., N, w) -> (..., n, C, w) with n = ceil(N / C), zero-padded at the end.

    Zero padding is harmless: a padded token has k = v = 0 and beta = 0 (writes
    nothing) and log-decay 0 (keeps the state), so the final state is unchanged.
    """
    N = x.shape[-2]
    n = -(-N // C)
    if n * C != N:  # only a length that C does not divide needs a padded copy
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, n * C - N), (0, 0)])
    return x.reshape(x.shape[:-2] + (n, C, x.shape[-1]))


def from_chunks(x, N):
    """(..., n, C, w) -> (..., N, w), dropping the padding."""
    return x.reshape(x.shape[:-3] + (-1, x.shape[-1]))[..., :N, :]


def chunk_scores(a, b, B, D, *, strict=False):
    """(a b^T o Gamma) in each chunk; Gamma is D (scalar gates) or from B (channels).

    D holds Gamma with its diagonal of ones; D - I is Gamma_strict.
    """
    if D is None:
        return causal_scores(a, b, B, strict=strict)
    P = (a @ np.swapaxes(b, -1, -2)) * D  # (..., m, C, C)
    return zero_diagonal(P) if strict else P


def zero_diagonal(X):
    """X (a fresh contiguous (..., C, C) array) with its diagonal set to 0."""
    C = X.shape[-1]
    X.reshape(X.shape[:-2] + (C * C,))[..., :: C + 1] = 0.0
    return X


def chunk_scores_backward(dP, a, b, B, D, P, *, strict=False):
    """da, db, dB of P = chunk_scores(a, b, B, D) (dB: both roles summed)."""
    if D is None:
        dq, dk, dB = causal_scores_backward(dP, a, b, B, strict=strict)
        return dq, dk, dB
    X = zero_diagonal(dP * D) if strict else dP * D
    Y = dP * P  # P_ij = (a b^T)_ij Gamma_ij and d Gamma_ij / d B_i = Gamma_ij
    dB = Y.sum(axis=-1, keepdims=True) - Y.sum(axis=-2)[..., None]  # -d/dB_j
    return X @ b, np.swapaxes(X, -1, -2) @ a, dB

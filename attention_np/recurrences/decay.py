"""Log-space decays: the one place where gates become multipliers.

A gate is a per-token log-decay g_t = log(alpha_t) <= 0, one per head (stored as
(..., N, 1)) or one per key channel ((..., N, d_k), GLA). A product of decays over a
span is a difference of cumulative sums:

    alpha_{j+1} ... alpha_i = exp(b_i - b_j),    b_t = g_1 + ... + g_t,

and for i >= j the exponent is <= 0, so exp never overflows however long the
sequence. Above the diagonal (i < j) the difference is a growth factor that would
overflow after a few thousand tokens, so it is masked *before* exp. Never
exp(b_i) * exp(-b_j): the second factor overflows (float64) once b_j < -709.

``causal_scores`` is the decay-masked score matrix every form needs:

    P_ij = sum_c q_ic k_jc exp(b[i, c] - b[j, c])   for j <= i, else 0

which for a scalar gate is (q k^T) o exp(b_i - b_j) (``chunk_scores`` reuses one
decay matrix). A per-channel gate would need a (rows, cols, d_k) tensor of decays.
Instead, whenever all keys precede all queries, the block is one matrix product,
factorised through a position r between them (``prefix_scores``):
exp(b_i - b_j) = exp(b_i - b_r) exp(b_r - b_j), both factors <= 1. Halving the rows
recursively covers every pair j < i with such blocks (``causal_scores``). When the
decays inside a block span little (a chunk of a model's usual gates), one product
through the block's last row does the whole block: the query factors exp(b_i - b_C)
are then >= 1 but bounded by the span, and the entries above the diagonal are
masked after the product. Both are our constructions; flash-linear-attention's GLA
kernels instead split a chunk into sub-chunks and loop over the channels inside
each one.

Shape legend: (...) leading dimensions, Nq rows, Nk columns, d_k key width, G the
gate width (1 or d_k).
"""

import numpy as np

from .triangular import diagonal, next_power_of_two, pad_rows, quarters

BUDGET = 1 << 21  # scores in one strip of rows of the parallel form


def reverse_cumsum(x, axis):
    """sum_{s >= t} x_s along ``axis``: the gradient of a cumulative sum."""
    return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)


def chunk_cumsum(g, *, reverse=False):
    """Cumulative sums down the rows of each chunk, (..., m, C, G) -> same shape
    (``reverse``: sum_{s >= t}, the gradient of the forward sum).

    A scalar gate (G = 1) uses np.cumsum; a per-channel gate multiplies by a
    triangular matrix of ones, (C, C) @ (C, G), which is several times faster than
    np.cumsum along the middle axis of a (C, G) block.
    """
    if g.shape[-1] == 1:
        return reverse_cumsum(g, axis=-2) if reverse else np.cumsum(g, axis=-2)
    ones = np.tri(g.shape[-2], dtype=g.dtype)  # lower triangle: s <= t
    return (ones.T if reverse else ones) @ g


def reduce_gate(x, G):
    """Sum a (..., d_k) gradient to the gate's width G (1 for a scalar gate)."""
    return np.sum(x, axis=-1, keepdims=True) if G == 1 else x


def decay_matrix(b_q, b_k, mask):
    """(..., Nq, Nk) exp(b_q[i] - b_k[j]) where mask, else 0 (scalar gates (., 1))."""
    diff = b_q - np.swapaxes(b_k, -1, -2)  # (..., Nq, Nk)
    return np.exp(np.where(mask, diff, -np.inf))  # masked before exp: no overflow


def causal_decay_matrix(b, *, strict=False):
    """(..., C, C) Gamma_ij = exp(b_i - b_j) for j <= i (j < i: strict), else 0,
    for a scalar gate b (..., C, 1): ``decay_matrix`` with the causal mask, built
    without a C x C exp.

    The rows are halved recursively (as in ``causal_scores``): in each block of 2s
    rows, the s x s block of right-half queries and left-half keys is the outer
    product exp(b_i - b_r) exp(b_r - b_j) through the left half's last row r, both
    factors <= 1. log2(C) levels of outer products, 2C exps in all. If the decays
    span less than a third of the exponent range (``short_span``), one outer
    product through the last row replaces the levels.
    """
    C = b.shape[-2]
    if short_span(b):  # one outer product through the last row (``causal_scores``)
        ref = b[..., -1:, :]
        D = np.exp(b - ref) * np.swapaxes(np.exp(ref - b), -1, -2)  # (..., C, C)
        return np.multiply(D, causal_ones(C, b.dtype, strict), out=D)
    Cp = next_power_of_two(C)
    b = pad_rows(b, Cp, mode="edge")  # edge padding keeps b non-increasing
    D = np.zeros(b.shape[:-1] + (Cp,), dtype=b.dtype)  # (..., Cp, Cp)
    if not strict:
        diagonal(D)[...] = 1.0
    s = 1
    while s < Cp:
        bl, br = _halves(b, s)  # (..., n, s, 1) each
        ref = bl[..., -1:, :]
        right, left = np.exp(br - ref), np.swapaxes(np.exp(ref - bl), -1, -2)
        np.multiply(right, left, out=quarters(D, s, 1, 0))  # (..., n, s, s)
        s *= 2
    return D if Cp == C else np.ascontiguousarray(D[..., :C, :C])


def prefix_scores(q, k, b_q, b_k, ref):
    """P_ij for keys that all precede the queries, factorised through a reference.

    With j <= r <= i for a position r whose cumulative log-decay is ``ref``
    (..., 1, G): exp(b_i - b_j) = exp(b_i - ref) exp(ref - b_j), two factors <= 1,
    so P = (q o e^{b_q - ref}) (k o e^{ref - b_k})^T is one matrix product.
    """
    qt, kt = q * np.exp(b_q - ref), k * np.exp(ref - b_k)
    return qt @ np.swapaxes(kt, -1, -2), (qt, kt)


def prefix_scores_backward(dout, q, k, b_q, b_k, ref):
    """dq, dk, db_q, db_k, dref of prefix_scores; dout is dP."""
    G = ref.shape[-1]
    qt, kt = q * np.exp(b_q - ref), k * np.exp(ref - b_k)
    dqt, dkt = dout @ kt, np.swapaxes(dout, -1, -2) @ qt  # forward: P = qt kt^T
    Xq, Xk = reduce_gate(dqt * qt, G), reduce_gate(dkt * kt, G)
    dref = Xk.sum(axis=-2, keepdims=True) - Xq.sum(axis=-2, keepdims=True)
    return dqt * np.exp(b_q - ref), dkt * np.exp(ref - b_k), Xq, -Xk, dref


def keys_through_last(k, b):
    """(K o e^{b_C - b})^T of each block, (..., d_k, C) and C-contiguous: the key
    side of ``scores_through_last`` (b None: no decay, K^T).

    Built transposed so that the score product is a plain row-major matrix
    product: a stacked a @ swapaxes(k) is markedly slower in NumPy than a @ kT
    with kT contiguous, and one transposed copy serves every product with it.
    """
    kT = np.empty(k.shape[:-2] + k.shape[:-3:-1], dtype=k.dtype)  # (..., d_k, C)
    view = np.swapaxes(kT, -1, -2)  # (..., C, d_k), writes into kT
    if b is None:
        view[...] = k
    else:
        np.multiply(k, np.exp(b[..., -1:, :] - b), out=view)
    return kT


def queries_through_last(a, b, scale=1.0):
    """scale (a o e^{b - b_C}), (..., C, d_k): the query side of a product through
    the block's last row C (factors >= 1, bounded by the block's span; b None: no
    decay, scale a)."""
    return a * (scale if b is None else scale * np.exp(b - b[..., -1:, :]))


def causal_product(af, kT, *, strict=False):
    """(..., C, C) af @ kT with the entries above the diagonal (and on it: strict)
    set to 0."""
    P = af @ kT
    return np.multiply(P, causal_ones(af.shape[-2], P.dtype, strict), out=P)


def scores_through_last(a, kT, b, *, scale=1.0, strict=False):
    """(..., C, C) P_ij = scale sum_c a_ic k_jc e^{b_ic - b_jc} for j <= i (j < i:
    strict), as one product through the block's last row C (``short_span``):
    (scale a o e^{b - b_C}) (K o e^{b_C - b})^T, kT from ``keys_through_last``.

    For j <= i the two factors multiply to e^{b_i - b_j} <= 1; the entries above
    the diagonal are growth factors bounded by the block's span, set to 0 after the
    product. b None: no decay.
    """
    return causal_product(queries_through_last(a, b, scale), kT, strict=strict)


def causal_ones(C, dtype, strict=False):
    """(C, C) ones on and below the diagonal (strictly below: ``strict``)."""
    return np.tri(C, k=-1 if strict else 0, dtype=dtype)


def short_span(b):
    """Whether every channel's cumulative log-decay b (..., C, G) spans less than a
    third of the dtype's exponent range, so that exp(b_i - b_C), up to
    e^(b_1 - b_C), and products of it with the inputs stay far from overflow.

    Then ``causal_scores`` factorises the whole block through its last row in one
    product, q e^(b - b_C) (factors >= 1) times (k e^(b_C - b))^T (factors <= 1):
    for j <= i the two factors multiply to e^(b_i - b_j) <= 1, and the entries above
    the diagonal (i < j, growth factors up to the span) are bounded and then masked.
    """
    span = np.max(b[..., 0, :] - b[..., -1, :], initial=0.0)  # b is non-increasing
    return span < np.log(np.finfo(b.dtype).max) / 3


def _pad_to_power_of_two(q, k, b):
    """q, k zero-padded and b edge-padded to Cp = 2^ceil(log2 C) rows, and Cp.

    A padded row has q = k = 0 (adds nothing) and the last row's cumulative decay
    (b stays non-increasing, so every exponent below stays <= 0).
    """
    Cp = next_power_of_two(q.shape[-2])
    return pad_rows(q, Cp), pad_rows(k, Cp), pad_rows(b, Cp, mode="edge"), Cp


def _halves(x, s):
    """(..., n * 2s, w) -> the left and right halves of its blocks of 2s rows,
    (..., n, s, w) each (views)."""
    y = x.reshape(x.shape[:-2] + (x.shape[-2] // (2 * s), 2, s, x.shape[-1]))
    return y[..., 0, :, :], y[..., 1, :, :]


def causal_scores(q, k, b, *, strict=False):
    """(..., C, C) P_ij = sum_c q_ic k_jc e^{b_ic - b_jc} for j <= i (j < i: strict).

    If the decays span less than a third of the exponent range (``short_span``),
    one product through the block's last row does it, whatever the gate's width
    (``scores_through_last``). Otherwise a scalar gate (G = 1) is one matrix product
    times ``causal_decay_matrix``, and a per-channel gate (GLA), which would need a
    (C, C, d_k) tensor of decays, has its rows halved recursively: in each block of
    2s rows, every key of the left half precedes every query of the right half, so
    that s x s block is one ``prefix_scores`` product through the left half's last
    row (both factors <= 1). Every pair j < i is in exactly one such block (the
    level where i and j first fall apart); the diagonal j = i has no decay. log2(C)
    levels of products.
    """
    C = q.shape[-2]
    if short_span(b):
        return scores_through_last(q, keys_through_last(k, b), b, strict=strict)
    if b.shape[-1] == 1:
        return (q @ np.swapaxes(k, -1, -2)) * causal_decay_matrix(b, strict=strict)
    q, k, b, Cp = _pad_to_power_of_two(q, k, b)
    P = np.zeros(q.shape[:-1] + (Cp,), dtype=q.dtype)  # (..., Cp, Cp)
    if not strict:
        diagonal(P)[...] = np.sum(q * k, axis=-1)
    s = 1
    while s < Cp:
        (_, qr), (kl, _), (bl, br) = (_halves(x, s) for x in (q, k, b))
        block = prefix_scores(qr, kl, br, bl, bl[..., -1:, :])[0]  # (..., n, s, s)
        quarters(P, s, 1, 0)[...] = block
        s *= 2
    return P if Cp == C else np.ascontiguousarray(P[..., :C, :C])


def causal_scores_backward(dout, q, k, b, *, strict=False):
    """dq, dk, db of causal_scores; dout (..., C, C) is dP."""
    C, G = q.shape[-2], b.shape[-1]
    if G > 1 and short_span(b):  # forward: one product through the last row
        dP = dout * causal_ones(C, dout.dtype, strict)
        dq, dk, db_q, db_k, _ = prefix_scores_backward(dP, q, k, b, b, b[..., -1:, :])
        # P does not depend on the reference row (only differences of b enter), so
        # the reference's own gradient is exactly zero and is left out.
        return dq, dk, db_q + db_k
    if G == 1:
        X = dout * causal_decay_matrix(b, strict=strict)
        Y = X * (q @ np.swapaxes(k, -1, -2))  # d/db of exp(b_i - b_j) is +/- itself
        db = Y.sum(axis=-1, keepdims=True) - Y.sum(axis=-2)[..., None]
        return X @ k, np.swapaxes(X, -1, -2) @ q, db
    q, k, b, Cp = _pad_to_power_of_two(q, k, b)
    if Cp != C:
        dout = np.pad(dout, [(0, 0)] * (dout.ndim - 2) + [(0, Cp - C), (0, Cp - C)])
    dout = np.ascontiguousarray(dout)
    dq, dk, db = np.zeros_like(q), np.zeros_like(k), np.zeros_like(b)
    if not strict:
        diag = np.diagonal(dout, axis1=-2, axis2=-1)[..., None]  # (..., Cp, 1)
        dq += diag * k
        dk += diag * q
    s = 1
    while s < Cp:
        (_, qr), (kl, _), (bl, br) = (_halves(x, s) for x in (q, k, b))
        (_, dqr), (dkl, _), (dbl, dbr) = (_halves(x, s) for x in (dq, dk, db))
        g = prefix_scores_backward(
            quarters(dout, s, 1, 0), qr, kl, br, bl, bl[..., -1:, :]
        )
        dqr += g[0]
        dkl += g[1]
        dbr += g[2]
        dbl += g[3]
        dbl[..., -1:, :] += g[4]
        s *= 2
    if Cp != C:  # padded rows copied b[C - 1]
        db[..., C - 1, :] += db[..., C:, :].sum(axis=-2)
    return dq[..., :C, :], dk[..., :C, :], db[..., :C, :]


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
    """X ((..., C, C), changed in place) with its diagonal set to 0."""
    diagonal(X)[...] = 0.0
    return X


def chunk_scores_backward(dout, a, b, B, D, P, *, strict=False):
    """da, db, dB of P = chunk_scores(a, b, B, D), dout = dP (dB: both roles summed)."""
    if D is None:
        dq, dk, dB = causal_scores_backward(dout, a, b, B, strict=strict)
        return dq, dk, dB
    X = zero_diagonal(dout * D) if strict else dout * D
    Y = dout * P  # P_ij = (a b^T)_ij Gamma_ij and d Gamma_ij / d B_i = Gamma_ij
    dB = Y.sum(axis=-1, keepdims=True) - Y.sum(axis=-2)[..., None]  # -d/dB_j
    return X @ b, np.swapaxes(X, -1, -2) @ a, dB

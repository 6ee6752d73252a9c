"""Y = (A B^T) C, causally masked or not, in the forms that linear attention uses.

Linear attention is this product with A = phi(q), B = phi(k), C = [v, 1] (the ones
column gives the normaliser). Associativity is the whole trick: A (B^T C) costs
O(N f e) instead of O(N M f) for (A B^T) C. With the causal rule (j <= i, N = M):

    parallel:   Y = tril(A B^T) C                       O(N^2), the reference
    recurrent:  S_i = S_{i-1} + b_i c_i^T,  y_i = S_i^T a_i     an RNN, O(f e) state
    chunkwise:  Y_t = A_t S_{t-1} + tril(A_t B_t^T) C_t,  S_t = S_{t-1} + B_t^T C_t

Each form has forward ``y, cache = *_forward(a, b, c)`` and ``da, db, dc =
*_backward(dout, cache)``, dout = dL/dy (..., N, e). In the recurrent backward the
gradient of the state flows backwards in time: R_i = sum_{j >= i} a_j dout_j^T, a
reverse cumulative sum.
``offset_forward`` runs any causal form for N != M under the rule j <= i + offset
(zero rows in front make it square: the aligned causal rule of the package).

Shape legend: a (..., N, f), b (..., M, f), c (..., M, e), y (..., N, e);
f feature width, e value width, S (..., f, e); chunks (..., T, L, .) of length L.
"""

import numpy as np


def _t(x):
    return np.swapaxes(x, -1, -2)


def global_forward(a, b, c):
    """Non-causal: y = a (b^T c), never forming the (N, M) matrix."""
    s = _t(b) @ c  # (..., f, e) the whole "memory" of keys and values
    return a @ s, (a, b, c, s)  # (..., N, e)


def global_backward(dout, cache):
    a, b, c, s = cache
    ds = _t(a) @ dout  # forward: y = a s -> ds = a^T dout, (..., f, e)
    return dout @ _t(s), c @ _t(ds), b @ ds  # da = dout s^T, db = c ds^T, dc = b ds


def parallel_causal_forward(a, b, c):
    """Causal, quadratic: y = tril(a b^T) c (the reference the other forms match)."""
    w = np.tril(a @ _t(b))  # (..., N, N) masked kernel matrix
    return w @ c, (a, b, c, w)


def parallel_causal_backward(dout, cache):
    a, b, c, w = cache
    dw = np.tril(dout @ _t(c))  # forward: y = w c -> dw = dout c^T, masked like w
    return dw @ b, _t(dw) @ a, _t(w) @ dout  # w = a b^T -> da = dw b, db = dw^T a


def recurrent_forward(a, b, c):
    """Causal, one position at a time: S_i = S_{i-1} + b_i c_i^T, y_i = S_i^T a_i."""
    s = np.zeros(a.shape[:-2] + (a.shape[-1], c.shape[-1]), a.dtype)  # (..., f, e)
    y = np.empty(a.shape[:-1] + c.shape[-1:], a.dtype)  # (..., N, e)
    for i in range(a.shape[-2]):
        s = s + b[..., i, :, None] * c[..., i, None, :]  # add b_i c_i^T
        y[..., i, :] = np.einsum("...f,...fe->...e", a[..., i, :], s)
    return y, (a, b, c)


def recurrent_backward(dout, cache):
    """da_i = S_i dout_i (forward in time), then db, dc from R_i (backward in time)."""
    a, b, c = cache
    da, db, dc = np.empty_like(a), np.empty_like(b), np.empty_like(c)
    s = np.zeros(a.shape[:-2] + (a.shape[-1], c.shape[-1]), a.dtype)  # (..., f, e)
    # replay the states; forward: y_i = S_i^T a_i -> da_i = S_i dout_i
    for i in range(a.shape[-2]):
        s = s + b[..., i, :, None] * c[..., i, None, :]
        da[..., i, :] = np.einsum("...fe,...e->...f", s, dout[..., i, :])
    r = np.zeros_like(s)  # (..., f, e) R_i = sum_{j >= i} a_j dout_j^T
    for i in reversed(range(a.shape[-2])):
        r = r + a[..., i, :, None] * dout[..., i, None, :]
        db[..., i, :] = np.einsum("...fe,...e->...f", r, c[..., i, :])  # R_i c_i
        dc[..., i, :] = np.einsum("...fe,...f->...e", r, b[..., i, :])  # R_i^T b_i
    return da, db, dc


def _chunks(x, L):
    """(..., N, w) -> (..., T, L, w), zero-padding N up to a multiple of L."""
    pad = -x.shape[-2] % L
    if pad:
        zeros = np.zeros(x.shape[:-2] + (pad, x.shape[-1]), x.dtype)
        x = np.concatenate([x, zeros], axis=-2)
    return x.reshape(x.shape[:-2] + (x.shape[-2] // L, L, x.shape[-1]))


def _unchunk(x, N):
    return x.reshape(x.shape[:-3] + (-1, x.shape[-1]))[..., :N, :]  # (..., N, w)


def _sum_before(x):
    """(..., T, f, e): for each chunk t, the sum of x over the chunks u < t."""
    out = np.zeros_like(x)
    np.cumsum(x[..., :-1, :, :], axis=-3, out=out[..., 1:, :, :])
    return out


def _sum_after(x):
    """(..., T, f, e): for each chunk t, the sum of x over the chunks u > t."""
    return np.flip(_sum_before(np.flip(x, axis=-3)), axis=-3)


def chunkwise_forward(a, b, c, *, chunk_size):
    """Causal, chunk by chunk: quadratic inside a chunk, a running state between."""
    N = a.shape[-2]
    ac, bc, cc = (_chunks(x, chunk_size) for x in (a, b, c))  # (..., T, L, .)
    s_prev = _sum_before(_t(bc) @ cc)  # (..., T, f, e) state before t
    w = np.tril(ac @ _t(bc))  # (..., T, L, L) within-chunk kernel matrix
    y = ac @ s_prev + w @ cc  # (..., T, L, e)
    return _unchunk(y, N), (ac, bc, cc, s_prev, w, N)


def chunkwise_backward(dout, cache):
    ac, bc, cc, s_prev, w, N = cache
    doutc = _chunks(dout, ac.shape[-2])  # (..., T, L, e)
    dw = np.tril(doutc @ _t(cc))  # forward: y = a s_prev + w c
    da = doutc @ _t(s_prev) + dw @ bc
    g = _sum_after(_t(ac) @ doutc)  # (..., T, f, e)
    db = _t(dw) @ ac + cc @ _t(g)  # s_prev_t sums b_u^T c_u over chunks u < t
    dc = _t(w) @ doutc + bc @ g
    return tuple(_unchunk(x, N) for x in (da, db, dc))


def _pad_rows(x, front, length):
    """Zero rows: ``front`` before x's rows and enough after to make ``length``."""
    width = [(0, 0)] * (x.ndim - 2) + [(front, length - front - x.shape[-2]), (0, 0)]
    return np.pad(x, width)


def offset_forward(a, b, c, *, offset, product):
    """A causal form with key j visible to query i when j <= i + offset (N != M).

    Zero rows make the rule square: ``offset`` > 0 puts offset empty queries in
    front, ``offset`` < 0 puts -offset empty keys in front, and the shorter side
    is filled up to L = max(N, M). Zero feature rows add nothing to any sum.
    ``product`` is the (forward, backward) pair of a causal form.
    """
    N, M = a.shape[-2], b.shape[-2]
    fa, fb = max(offset, 0), max(-offset, 0)  # rows put in front of a, of b and c
    L = max(N + fa, M + fb)
    y, cache = product[0](_pad_rows(a, fa, L), _pad_rows(b, fb, L), _pad_rows(c, fb, L))
    return y[..., fa : fa + N, :], (cache, product[1], fa, fb, N, M, L)  # (..., N, e)


def offset_backward(dout, cache):
    """da, db, dc of offset_forward: pad dout like y, then drop the padded rows."""
    inner, backward, fa, fb, N, M, L = cache
    da, db, dc = backward(_pad_rows(dout, fa, L), inner)
    return da[..., fa : fa + N, :], db[..., fb : fb + M, :], dc[..., fb : fb + M, :]


FORMS = {
    "parallel": (parallel_causal_forward, parallel_causal_backward),
    "recurrent": (recurrent_forward, recurrent_backward),
    "chunkwise": (chunkwise_forward, chunkwise_backward),
}

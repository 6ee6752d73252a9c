"""Neural Turing Machine addressing, reading, writing (Graves, Wayne, Danihelka 2014).

A head turns its controller outputs into weights w over the n rows of the memory M:

    content:   w_c(i) = softmax_i(beta * cos(k, M_i))          find rows like the key
    interp:    w_g = g w_c + (1 - g) w_prev                     or keep the old focus
    shift:     w_s(i) = sum_o w_g((i - o) mod n) s(o)           rotate (circular conv)
    sharpen:   w(i) = w_s(i)^gamma / sum_j w_s(j)^gamma         undo the shift's blur
    read:      r = sum_i w(i) M_i
    write:     M'_i = M_i o (1 - w(i) e) + w(i) a               erase, then add

Every stage maps weights that sum to 1 to weights that sum to 1. The controller's
squashing (beta = softplus, g = sigmoid, s = softmax, gamma = 1 + softplus) is left to
the caller: these functions take the constrained values. s has S = 2R + 1 entries for
the offsets -R..R (s[R] is "no shift").

Shape legend: B batch, n memory rows, W row width, S shift offsets.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..softmax import softmax_backward, softmax_forward

EPS = 1e-8  # keeps cos(k, M_i) finite for an all-zero row or key


def cosine_forward(k, M, *, eps=EPS):
    """cos(k, M_i) = k . M_i / (|k| |M_i| + eps). k (B, W), M (B, n, W) -> (B, n)."""
    nk = np.linalg.norm(k, axis=-1, keepdims=True)  # (B, 1)
    nM = np.linalg.norm(M, axis=-1)  # (B, n)
    dot = np.einsum("bw,bnw->bn", k, M)  # (B, n)
    den = nk * nM + eps
    return dot / den, (k, M, nk, nM, dot, den)


def cosine_backward(dcos, cache):
    """dk (B, W), dM (B, n, W) of cosine_forward."""
    k, M, nk, nM, dot, den = cache
    ddot = dcos / den  # forward: cos = dot / den
    dden = -dcos * dot / den**2  # (B, n); den = |k| |M_i| + eps
    dnk = np.sum(dden * nM, axis=-1, keepdims=True)  # (B, 1)
    dnM = dden * nk  # (B, n)
    safe = lambda x: np.where(x > 0, x, 1.0)  # d|x|/dx = x / |x|, 0 at x = 0
    dk = np.einsum("bn,bnw->bw", ddot, M) + dnk * k / safe(nk)
    dM = ddot[..., None] * k[:, None, :] + (dnM / safe(nM))[..., None] * M
    return dk, dM


def content_forward(k, beta, M):
    """w_c = softmax(beta * cos(k, M_i)). beta (B,) >= 0 -> (B, n)."""
    cos, cc = cosine_forward(k, M)
    w, sc = softmax_forward(beta[:, None] * cos)
    return w, (cos, cc, sc, beta)


def content_backward(dw, cache):
    """dk, dbeta, dM of content_forward."""
    cos, cc, sc, beta = cache
    dz = softmax_backward(dw, sc)  # (B, n)
    dk, dM = cosine_backward(beta[:, None] * dz, cc)
    return dk, np.sum(dz * cos, axis=-1), dM


def interpolate_forward(w_c, w_prev, g):
    """w_g = g w_c + (1 - g) w_prev, g (B,) in [0, 1]."""
    return g[:, None] * w_c + (1.0 - g[:, None]) * w_prev, (w_c, w_prev, g)


def interpolate_backward(dw, cache):
    """dw_c, dw_prev, dg of interpolate_forward."""
    w_c, w_prev, g = cache
    return g[:, None] * dw, (1.0 - g[:, None]) * dw, np.sum(dw * (w_c - w_prev), -1)


def _offsets(S):
    return np.arange(S) - S // 2  # (S,) -R..R


def shift_forward(w, s):
    """w_s(i) = sum_o w((i - o) mod n) s(o): a circular convolution. s (B, S), S odd."""
    shifted = np.stack([np.roll(w, o, axis=-1) for o in _offsets(s.shape[-1])], 1)
    return np.einsum("bon,bo->bn", shifted, s), (shifted, s)  # (B, n)


def shift_backward(dw_s, cache):
    """dw, ds of shift_forward (np.roll's adjoint is the opposite roll)."""
    shifted, s = cache
    ds = np.einsum("bn,bon->bo", dw_s, shifted)  # (B, S)
    dw = sum(
        np.roll(dw_s * s[:, i, None], -o, axis=-1)
        for i, o in enumerate(_offsets(s.shape[-1]))
    )
    return dw, ds


def sharpen_forward(w, gamma):
    """w^gamma / sum w^gamma, gamma (B,) >= 1."""
    pw = w ** gamma[:, None]  # (B, n)
    total = pw.sum(axis=-1, keepdims=True)  # (B, 1)
    out = pw / total
    return out, (w, gamma, out)


def sharpen_backward(dout, cache):
    """dw, dgamma of sharpen_forward (log w is taken only where w > 0)."""
    w, gamma, out = cache
    dlog = out * (dout - np.sum(dout * out, axis=-1, keepdims=True))  # d / d log(pw)
    logw = np.log(np.where(w > 0, w, 1.0))  # 0 * log 0 counts as 0
    dw = np.where(w > 0, dlog * gamma[:, None] / np.where(w > 0, w, 1.0), 0.0)
    return dw, np.sum(dlog * logw, axis=-1)


class AddressCache(NamedTuple):
    caches: tuple  # (content, interpolate, shift, sharpen)
    stages: dict  # name -> (B, n) weights after each stage, for plots


def ntm_address_forward(k, beta, g, s, gamma, M, w_prev):
    """The four addressing stages in order (module docstring).

    Args:
        k: (B, W) key; beta: (B,) key strength >= 0; g: (B,) gate in [0, 1];
        s: (B, S) shift weights (S odd, rows sum to 1); gamma: (B,) >= 1;
        M: (B, n, W) memory; w_prev: (B, n) the head's previous weights.

    Returns:
        w (B, n), cache (``cache.stages`` holds content, interpolated, shifted, w).
    """
    _check_address(k, beta, g, s, gamma, M, w_prev)
    w_c, c1 = content_forward(k, beta, M)
    w_g, c2 = interpolate_forward(w_c, w_prev, g)
    w_s, c3 = shift_forward(w_g, s)
    w, c4 = sharpen_forward(w_s, gamma)
    stages = {"content": w_c, "interpolated": w_g, "shifted": w_s, "sharpened": w}
    return w, AddressCache((c1, c2, c3, c4), stages)


def ntm_address_backward(dw, cache):
    """dk, dbeta, dg, ds, dgamma, dM, dw_prev of ntm_address_forward."""
    c1, c2, c3, c4 = cache.caches
    V.grad_shape("dw", dw, cache.stages["sharpened"].shape)
    dw_s, dgamma = sharpen_backward(dw, c4)
    dw_g, ds = shift_backward(dw_s, c3)
    dw_c, dw_prev, dg = interpolate_backward(dw_g, c2)
    dk, dbeta, dM = content_backward(dw_c, c1)
    return dk, dbeta, dg, ds, dgamma, dM, dw_prev


def _check_address(k, beta, g, s, gamma, M, w_prev):
    M = V.float_array("M", M, ndim=3)
    B, n, W = M.shape
    want = {"k": (B, W), "beta": (B,), "g": (B,), "gamma": (B,), "w_prev": (B, n)}
    for name, a in zip(want, (k, beta, g, gamma, w_prev), strict=True):
        if V.float_array(name, a).shape != want[name]:
            raise ValueError(f"{name}{np.shape(a)} must have shape {want[name]}")
    s = V.float_array("s", s, ndim=2)
    if s.shape[0] != B or s.shape[1] % 2 == 0 or s.shape[1] > n:
        raise ValueError(f"s{s.shape} must be (B, S) = ({B}, odd S <= n = {n})")
    if np.any(np.asarray(gamma) < 1) or np.any(np.asarray(beta) < 0):
        raise ValueError("gamma must be >= 1 and beta >= 0")


def _check_rw(w, M, **vectors):
    M = V.float_array("M", M, ndim=3)
    if V.float_array("w", w, ndim=2).shape != M.shape[:2]:
        raise ValueError(
            f"w{np.shape(w)} must be (B, n) = {M.shape[:2]} for M{M.shape}"
        )
    for name, x in vectors.items():
        if V.float_array(name, x).shape != (M.shape[0], M.shape[2]):
            raise ValueError(f"{name}{np.shape(x)} must be (B, W) for M{M.shape}")


def ntm_read_forward(w, M):
    """r = sum_i w(i) M_i. w (B, n), M (B, n, W) -> (B, W)."""
    _check_rw(w, M)
    return np.einsum("bn,bnw->bw", w, M), (w, M)


def ntm_read_backward(dr, cache):
    """dw (B, n), dM (B, n, W) of ntm_read_forward."""
    w, M = cache
    V.grad_shape("dr", dr, (M.shape[0], M.shape[2]))
    return np.einsum("bw,bnw->bn", dr, M), w[..., None] * dr[:, None, :]


def ntm_write_forward(w, e, a, M):
    """M' = M o (1 - w e^T) + w a^T. w (B, n); e (B, W) in [0, 1]; a (B, W)."""
    _check_rw(w, M, e=e, a=a)
    keep = 1.0 - w[..., None] * e[:, None, :]  # (B, n, W) what survives the erase
    return M * keep + w[..., None] * a[:, None, :], (w, e, a, M, keep)


def ntm_write_backward(dM_new, cache):
    """dw, de, da, dM of ntm_write_forward."""
    w, e, a, M, keep = cache
    V.grad_shape("dM_new", dM_new, M.shape)
    dkeep = dM_new * M  # (B, n, W)
    dw = -np.einsum("bnw,bw->bn", dkeep, e) + np.einsum("bnw,bw->bn", dM_new, a)
    de = -np.einsum("bnw,bn->bw", dkeep, w)
    da = np.einsum("bnw,bn->bw", dM_new, w)
    return dw, de, da, dM_new * keep

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
the caller: these functions take the constrained values, and check them: beta >= 0,
g in [0, 1], s and w_prev non-negative rows that sum to 1, gamma >= 1, e in [0, 1].
s has S = 2R + 1 entries for the offsets -R..R (s[R] is "no shift").

Argument order: the head's outputs in the order the stages use them, then the state
(the memory M, then the previous weights): ``ntm_address_forward(k, beta, g, s, gamma,
M, w_prev)``, ``ntm_read_forward(w, M)``, ``ntm_write_forward(w, e, a, M)``; each
backward ``(dout, cache)`` returns the gradients in that order.

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


def cosine_backward(dout, cache):
    """dk (B, W), dM (B, n, W) of cosine_forward; dout (B, n) is dcos."""
    k, M, nk, nM, dot, den = cache
    ddot = dout / den  # forward: cos = dot / den
    dden = -dout * dot / den**2  # (B, n); den = |k| |M_i| + eps
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


def content_backward(dout, cache):
    """dk, dbeta, dM of content_forward; dout (B, n) is dw_c."""
    cos, cc, sc, beta = cache
    dz = softmax_backward(dout, sc)  # (B, n)
    dk, dM = cosine_backward(beta[:, None] * dz, cc)
    return dk, np.sum(dz * cos, axis=-1), dM


def interpolate_forward(w_c, w_prev, g):
    """w_g = g w_c + (1 - g) w_prev, g (B,) in [0, 1]."""
    return g[:, None] * w_c + (1.0 - g[:, None]) * w_prev, (w_c, w_prev, g)


def interpolate_backward(dout, cache):
    """dw_c, dw_prev, dg of interpolate_forward; dout (B, n) is dw_g."""
    w_c, w_prev, g = cache
    dg = np.sum(dout * (w_c - w_prev), axis=-1)
    return g[:, None] * dout, (1.0 - g[:, None]) * dout, dg


def _offsets(S):
    return np.arange(S) - S // 2  # (S,) -R..R


def shift_forward(w, s):
    """w_s(i) = sum_o w((i - o) mod n) s(o): a circular convolution. s (B, S), S odd."""
    shifted = np.stack([np.roll(w, o, axis=-1) for o in _offsets(s.shape[-1])], 1)
    return np.einsum("bon,bo->bn", shifted, s), (shifted, s)  # (B, n)


def shift_backward(dout, cache):
    """dw, ds of shift_forward; dout (B, n) is dw_s (np.roll's adjoint is the
    opposite roll)."""
    shifted, s = cache
    ds = np.einsum("bn,bon->bo", dout, shifted)  # (B, S)
    dw = sum(
        np.roll(dout * s[:, i, None], -o, axis=-1)
        for i, o in enumerate(_offsets(s.shape[-1]))
    )
    return dw, ds


def sharpen_forward(w, gamma):
    """w^gamma / sum w^gamma, gamma (B,) >= 1, as softmax(gamma log w) over w > 0.

    w^gamma underflows to 0 for a large gamma and 0 / 0 is NaN; the softmax form
    subtracts the row max first and never does. A row of zeros stays zeros.
    """
    support = w > 0  # (B, n) 0^gamma = 0: those rows get weight exactly 0
    logw = np.log(np.where(support, w, 1.0))  # (B, n)
    out, _ = softmax_forward(gamma[:, None] * logw, support)
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
        s: (B, S) shift weights (S odd <= n, rows >= 0 sum to 1); gamma: (B,) >= 1;
        M: (B, n, W) memory; w_prev: (B, n) the head's previous weights (rows >= 0
        sum to 1).

    Returns:
        w (B, n), cache (``cache.stages`` holds content, interpolated, shifted, w).
    """
    k, beta, g, s, gamma, M, w_prev = _check_address(k, beta, g, s, gamma, M, w_prev)
    w_c, c1 = content_forward(k, beta, M)
    w_g, c2 = interpolate_forward(w_c, w_prev, g)
    w_s, c3 = shift_forward(w_g, s)
    w, c4 = sharpen_forward(w_s, gamma)
    stages = {"content": w_c, "interpolated": w_g, "shifted": w_s, "sharpened": w}
    return w, AddressCache((c1, c2, c3, c4), stages)


def ntm_address_backward(dout, cache):
    """dk, dbeta, dg, ds, dgamma, dM, dw_prev of ntm_address_forward (dout: (B, n))."""
    c1, c2, c3, c4 = cache.caches
    V.grad_shape("dout", dout, cache.stages["sharpened"].shape)
    dw_s, dgamma = sharpen_backward(dout, c4)
    dw_g, ds = shift_backward(dw_s, c3)
    dw_c, dw_prev, dg = interpolate_backward(dw_g, c2)
    dk, dbeta, dM = content_backward(dw_c, c1)
    return dk, dbeta, dg, ds, dgamma, dM, dw_prev


def _distribution(name, x, tol):
    """Rows of x must be non-negative and sum to 1 (up to ``tol``)."""
    V.values_in_range(name, x, lo=0.0, hi=1.0 + tol)
    sums = x.sum(axis=-1)
    if x.shape[-1] and np.any(np.abs(sums - 1.0) > tol):
        raise ValueError(f"the rows of {name}{x.shape} must sum to 1, got {sums}")


def _check_address(k, beta, g, s, gamma, M, w_prev):
    M = V.float_array("M", M, ndim=3)
    B, n, W = M.shape
    if n == 0 or W == 0:
        raise ValueError(f"M{M.shape} needs n >= 1 rows of width W >= 1")
    want = {"k": (B, W), "beta": (B,), "g": (B,), "gamma": (B,), "w_prev": (B, n)}
    arrays = dict(zip(want, (k, beta, g, gamma, w_prev), strict=True))
    arrays = {name: V.float_array(name, a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.shape != want[name]:
            raise ValueError(f"{name}{a.shape} must have shape {want[name]}")
    s = V.float_array("s", s, ndim=2)
    if s.shape[0] != B or s.shape[1] % 2 == 0 or s.shape[1] > n:
        raise ValueError(f"s{s.shape} must be (B, S) = ({B}, odd S <= n = {n})")
    V.same_dtype(M=M, s=s, **arrays)
    tol = max(1e-4, float(np.sqrt(np.finfo(M.dtype).eps)))  # rounding, FD steps
    V.values_in_range("beta", arrays["beta"], lo=0.0)
    V.values_in_range("g", arrays["g"], lo=0.0, hi=1.0)
    V.values_in_range("gamma", arrays["gamma"], lo=1.0)
    _distribution("s", s, tol)
    _distribution("w_prev", arrays["w_prev"], tol)
    a = arrays
    return a["k"], a["beta"], a["g"], s, a["gamma"], M, a["w_prev"]


def _check_rw(w, M, **vectors):
    M = V.float_array("M", M, ndim=3)
    w = V.float_array("w", w, ndim=2)
    if w.shape != M.shape[:2]:
        raise ValueError(f"w{w.shape} must be (B, n) = {M.shape[:2]} for M{M.shape}")
    arrays = {name: V.float_array(name, x) for name, x in vectors.items()}
    for name, x in arrays.items():
        if x.shape != (M.shape[0], M.shape[2]):
            raise ValueError(f"{name}{x.shape} must be (B, W) for M{M.shape}")
    V.same_dtype(w=w, M=M, **arrays)
    if "e" in arrays:
        V.values_in_range("e", arrays["e"], lo=0.0, hi=1.0)
    return w, M, *arrays.values()


def ntm_read_forward(w, M):
    """r = sum_i w(i) M_i. w (B, n), M (B, n, W) -> (B, W)."""
    w, M = _check_rw(w, M)
    return np.einsum("bn,bnw->bw", w, M), (w, M)


def ntm_read_backward(dout, cache):
    """dw (B, n), dM (B, n, W) of ntm_read_forward; dout (B, W) is dr."""
    w, M = cache
    V.grad_shape("dout", dout, (M.shape[0], M.shape[2]))
    return np.einsum("bw,bnw->bn", dout, M), w[..., None] * dout[:, None, :]


def ntm_write_forward(w, e, a, M):
    """M' = M o (1 - w e^T) + w a^T. w (B, n); e (B, W) in [0, 1]; a (B, W)."""
    w, M, e, a = _check_rw(w, M, e=e, a=a)
    keep = 1.0 - w[..., None] * e[:, None, :]  # (B, n, W) what survives the erase
    return M * keep + w[..., None] * a[:, None, :], (w, e, a, M, keep)


def ntm_write_backward(dout, cache):
    """dw, de, da, dM of ntm_write_forward; dout (B, n, W) is dM_new."""
    w, e, a, M, keep = cache
    V.grad_shape("dout", dout, M.shape)
    dM_new = dout
    dkeep = dM_new * M  # (B, n, W)
    dw = -np.einsum("bnw,bw->bn", dkeep, e) + np.einsum("bnw,bw->bn", dM_new, a)
    de = -np.einsum("bnw,bn->bw", dkeep, w)
    da = np.einsum("bnw,bn->bw", dM_new, w)
    return dw, de, da, dM_new * keep

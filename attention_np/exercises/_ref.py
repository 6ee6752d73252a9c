"""The checkers' own small reference computations (the answer key of the graders).

The checkers compute every expected answer here, from first principles, instead of
calling the package's layers: the package's signatures may change without breaking
an exercise, and a student notebook never needs to import what it is asked to write.
A student's function that calls one of these (or the package's implementation) is
caught by ``guard.py`` and fails.

Shape legend: B batch, H heads, N queries, M keys, d head width, D model width.
"""

import numpy as np

INF = np.inf


def row_shift(x):
    """Row max with -inf (a row with no finite entry) replaced by 0: (..., 1)."""
    m = np.max(x, axis=-1, keepdims=True)  # (..., 1)
    return np.where(np.isfinite(m), m, 0.0)


def softmax(x):
    """Softmax over the last axis; -inf entries get 0, an all -inf row gives 0."""
    e = np.exp(x - row_shift(x))  # (..., M)
    s = np.sum(e, axis=-1, keepdims=True)  # (..., 1)
    return e / np.where(s == 0, 1.0, s)


def logsumexp(x):
    """log sum exp over the last axis (...,); -inf for a row with no finite entry."""
    m = row_shift(x)  # (..., 1)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an empty row
        return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def softmax_backward(dout, y):
    """dx = y * (dout - rowsum(dout * y))."""
    return y * (dout - np.sum(dout * y, axis=-1, keepdims=True))


def swap(a):
    """Transpose the last two axes."""
    return np.swapaxes(a, -1, -2)


def attention(q, k, v, allow=None, scale=None):
    """(out, P): out = softmax(scale q k^T, -inf where not allowed) v."""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    S = scale * (q @ swap(k))  # (..., N, M)
    if allow is not None:
        S = np.where(allow, S, -INF)
    P = softmax(S)  # (..., N, M)
    return P @ v, P


def attention_backward(dout, q, k, v, P, scale=None):
    """(dq, dk, dv) of out = P v, P = softmax(scale q k^T)."""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    dv = swap(P) @ dout  # (..., M, d_v)
    dS = softmax_backward(dout @ swap(v), P)  # (..., N, M)
    return scale * dS @ k, scale * swap(dS) @ q, dv


def causal_allow(N, M):
    """(N, M) bool, True where key j <= query i (top-left)."""
    return np.arange(M)[None, :] <= np.arange(N)[:, None]


def padding_allow(lengths, M):
    """(B, 1, 1, M) bool, True where key j < lengths[b]."""
    keep = np.arange(M)[None, :] < np.asarray(lengths)[:, None]  # (B, M)
    return keep[:, None, None, :]


def split_heads(x, H):
    """(B, N, D) -> (B, H, N, D / H)."""
    B, N, D = x.shape
    return x.reshape(B, N, H, D // H).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, N, d) -> (B, N, H d)."""
    B, H, N, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * d)


def mha_forward(x, params, H, allow=None):
    """Self-attention out (B, N, D) and what its backward needs."""
    proj = {n: x @ params[f"W_{n}"] + params[f"b_{n}"] for n in "qkv"}  # (B, N, D)
    heads = [split_heads(proj[n], H) for n in "qkv"]  # (B, H, N, d)
    o, P = attention(*heads, allow)  # (B, H, N, d)
    o_cat = merge_heads(o)  # (B, N, D)
    return o_cat @ params["W_o"] + params["b_o"], (heads, P, o_cat)


def mha_backward(dout, x, params, H, allow=None):
    """(dx, grads) of self-attention."""
    D = x.shape[-1]
    heads, P, o_cat = mha_forward(x, params, H, allow)[1]
    rows = lambda t: t.reshape(-1, D)  # every (batch, position) is one row
    grads = {"W_o": rows(o_cat).T @ rows(dout), "b_o": rows(dout).sum(axis=0)}
    do = split_heads(dout @ params["W_o"].T, H)  # (B, H, N, d)
    dx = np.zeros_like(x)
    for n, dh in zip("qkv", attention_backward(do, *heads, P), strict=True):
        d_cat = merge_heads(dh)  # (B, N, D)
        grads[f"W_{n}"], grads[f"b_{n}"] = rows(x).T @ rows(d_cat), rows(d_cat).sum(0)
        dx += d_cat @ params[f"W_{n}"].T  # x feeds all three projections
    return dx, grads


def layernorm(x, gamma, beta, eps):
    """(out, (xhat, inv_std)) of layer norm over the last axis (biased variance)."""
    xc = x - x.mean(axis=-1, keepdims=True)  # (..., D)
    inv = 1.0 / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + eps)  # (..., 1)
    return gamma * xc * inv + beta, (xc * inv, inv)


def layernorm_dx(dout, gamma, xhat, inv):
    """dx of layer norm: inv * (g - mean(g) - xhat mean(g xhat)), g = dout gamma."""
    g = dout * gamma  # (..., D)
    mean_g = g.mean(axis=-1, keepdims=True)
    return inv * (g - mean_g - xhat * (g * xhat).mean(axis=-1, keepdims=True))


def rope(x, positions, base, layout="interleaved"):
    """Rotate pair i of the row at position p by p * base^(-2i/d)."""
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)  # (d/2,)
    angle = np.asarray(positions, dtype=float)[..., None] * theta  # (..., N, d/2)
    cos, sin = np.cos(angle), np.sin(angle)
    if layout == "interleaved":
        lo, hi = slice(0, d, 2), slice(1, d, 2)
    else:  # rotate-half: pairs (x_i, x_{i + d/2})
        lo, hi = slice(0, d // 2), slice(d // 2, d)
    a, b = x[..., lo], x[..., hi]
    out = np.empty(np.broadcast_shapes(x.shape, angle.shape[:-1] + (d,)))
    out[..., lo], out[..., hi] = a * cos - b * sin, a * sin + b * cos
    return out


def numerical_grads(f, inputs, dout, h=1e-6):
    """Central differences of sum(f(inputs) * dout) for every array in ``inputs``."""
    work = {name: np.array(a, dtype=float) for name, a in inputs.items()}
    grads = {}
    for name, x in work.items():
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            plus = np.sum(f(work) * dout)
            x[i] = old - h
            minus = np.sum(f(work) * dout)
            x[i] = old
            g[i] = (plus - minus) / (2 * h)
        grads[name] = g
    return grads


FUNCTIONS = (softmax, logsumexp, softmax_backward, attention, attention_backward,
             causal_allow, padding_allow, split_heads, merge_heads, mha_forward,
             mha_backward, layernorm, layernorm_dx, rope, numerical_grads)  # fmt: skip

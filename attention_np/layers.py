"""Layers shared by the transformer, the memory models and the exercises.

    embedding:  out[b, n] = W[ids[b, n]]
    layer norm: out = gamma * (x - mean) / sqrt(var + eps) + beta   (over the last axis)
    GELU:       0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (tanh approximation)

Shape legend: B batch, N positions, D model width, V vocabulary size.

GELU: we use the tanh approximation of Hendrycks & Gimpel (2016), as GPT-2 does; the
exact form x * Phi(x) needs erf, which NumPy lacks. The two differ by < 1e-3.
"""

import math

import numpy as np

from . import validate as V


def embedding_forward(ids, W):
    """out = W[ids]: look up one row of W per token.

    Args:
        ids: (B, N) integer token ids in [0, V).
        W: (V, D) embedding table.

    Returns:
        out (B, N, D), cache (ids, V).
    """
    W = V.float_array("W", W, ndim=2)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":  # bools and floats would index the wrong rows
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= W.shape[0]):
        raise ValueError(
            f"ids must lie in [0, {W.shape[0]}) for W{W.shape}, "
            f"got min {ids.min()} max {ids.max()}"
        )
    return W[ids], (ids, W.shape)  # (B, N, D)


def embedding_backward(dout, cache):
    """dW: add each position's gradient to the row of its token (repeats accumulate).

    The rows are sorted by token, so each token's gradients are neighbours and one
    ``np.add.reduceat`` sums every run (5-8x faster than ``np.add.at`` here).
    """
    ids, shape = cache
    V.grad_shape("dout", dout, ids.shape + shape[1:])
    flat, rows = ids.reshape(-1), dout.reshape(-1, shape[1])  # (B*N,), (B*N, D)
    order = np.argsort(flat, kind="stable")  # the positions of each token together
    tokens, starts = np.unique(flat[order], return_index=True)  # where each run starts
    dW = np.zeros(shape, dtype=dout.dtype)  # (V, D); tokens never seen get 0
    dW[tokens] = np.add.reduceat(rows[order], starts, axis=0)  # one sum per run
    return dW


def _row_mean(a):
    """(..., D) -> (..., 1): the mean over the last axis as one matrix-vector
    product with ones (a.mean(axis=-1) runs one short sum per row: 2-4x slower
    at D = 64; the sums differ only in rounding)."""
    return (a @ np.ones(a.shape[-1], a.dtype))[..., None] / a.shape[-1]


def layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """out = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps), last axis.

    Args:
        x: (..., D) inputs.
        gamma, beta: (D,) scale and shift.
        eps: added to the variance (biased, 1/D) before the square root.

    Returns:
        out (..., D), cache (xhat, gamma, inv_std).
    """
    x = V.float_array("x", x, min_ndim=1)
    gamma = V.float_array("gamma", gamma, ndim=1)
    beta = V.float_array("beta", beta, ndim=1)
    if gamma.shape != (x.shape[-1],) or beta.shape != gamma.shape:
        raise ValueError(
            f"gamma{gamma.shape} and beta{beta.shape} must be (D,) for x{x.shape}"
        )
    V.same_dtype(x=x, gamma=gamma, beta=beta)
    eps = V.real("eps", eps, lo=0.0, lo_open=True)  # eps = 0: 1/0 on a constant row
    mu = _row_mean(x)  # (..., 1)
    xhat = x - mu  # (..., D) centred; scaled in place below (one array, not two)
    var = _row_mean(np.square(xhat))  # (..., 1) biased variance
    inv_std = 1.0 / np.sqrt(var + eps)  # (..., 1)
    xhat *= inv_std  # (..., D) zero mean, unit variance
    out = gamma * xhat
    out += beta
    return out, (xhat, gamma, inv_std)


def layernorm_backward(dout, cache):
    """Gradients of layernorm_forward: dx (..., D), dgamma (D,), dbeta (D,).

    With g = dout * gamma the input gradient is
    dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)): the two means remove the
    directions that the centring and the scaling take away.
    """
    xhat, gamma, inv_std = cache
    V.grad_shape("dout", dout, xhat.shape)
    D = xhat.shape[-1]
    dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)  # forward: out = gamma*xhat + b
    dbeta = dout.reshape(-1, D).sum(axis=0)
    g = dout * gamma  # (..., D) gradient w.r.t. xhat
    mean_g = _row_mean(g)  # (..., 1)
    gx = g * xhat  # (..., D) scratch, reused for xhat * mean_gx
    mean_gx = _row_mean(gx)  # (..., 1)
    dx = g  # dx = inv_std * (g - mean_g - xhat * mean_gx), in place in g:
    dx -= mean_g
    dx -= np.multiply(xhat, mean_gx, out=gx)
    dx *= inv_std  # (..., D)
    return dx, dgamma, dbeta


_C = math.sqrt(2.0 / math.pi)  # a Python float: keeps float32 inputs float32


def gelu_forward(x):
    """GELU, tanh approximation: 0.5 x (1 + tanh(c (x + 0.044715 x^3))).

    The formula's operations in its order, in place in two arrays (t, out): a new
    array per operation would cost a pass over freshly allocated memory each (the
    in-place form is about 1.4x faster in a training step of the course's model).
    """
    x = V.float_array("x", x)
    t = 0.044715 * x
    t *= x
    t *= x  # 0.044715 x^3 (x * x * x: far faster than x**3)
    t += x
    t *= _C
    np.tanh(t, out=t)  # t = tanh(c (x + 0.044715 x^3))
    out = t + 1.0
    out *= x
    out *= 0.5  # out = 0.5 x (1 + t)
    return out, (x, t)


def gelu_backward(dout, cache):
    """dx = dout * (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)).

    In place in two arrays, as in the forward: dt is the second term (tanh' = 1 - t^2
    times the inner derivative), dx starts as 0.5 (1 + t).
    """
    x, t = cache
    V.grad_shape("dout", dout, x.shape)
    dt = t * t
    np.subtract(1.0, dt, out=dt)  # 1 - t^2
    dt *= x
    dt *= 0.5 * _C  # 0.5 x (1 - t^2) c
    dx = (3 * 0.044715) * x
    dx *= x
    dx += 1.0
    dt *= dx  # 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)
    np.add(t, 1.0, out=dx)
    dx *= 0.5  # 0.5 (1 + t)
    dx += dt
    dx *= dout
    return dx

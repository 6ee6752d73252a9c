"""Small pieces around a recurrence in a mixer layer, each with its backward.

    short_conv:  y_t = sum_{i < K} w_i o x_{t-i}        causal, depthwise (K, D)
    l2norm:      y = x / sqrt(|x|^2 + eps)               unit keys and queries
    rmsnorm:     y = x / sqrt(mean(x^2) + eps)           the output of each head

The short convolution lets a token see the few before it (Zoology and every modern
recurrent layer put one before the mixer): what an associative-recall model needs
to bind a value to the key right before it. Shapes: (B, N, D) for the convolution,
(..., d) over the last axis for the norms.
"""

import numpy as np

from .. import validate as V


def short_conv_forward(x, w):
    """Depthwise causal convolution y_t = sum_{i < K} w_i o x_{t-i} (x_{<0} = 0).

    Args:
        x: (B, N, D) inputs.  w: (K, D) taps; w[0] weighs the current token.

    Returns:
        y (B, N, D), cache.
    """
    x = V.float_array("x", x, ndim=3)
    w = V.float_array("w", w, ndim=2)
    if w.shape[1] != x.shape[2]:
        raise ValueError(f"w{w.shape} must be (K, D) for x{x.shape}")
    N = x.shape[1]
    y = np.zeros_like(x)
    for i in range(min(w.shape[0], N)):
        y[:, i:] += w[i] * x[:, : N - i]  # tap i reads the token i steps back
    return y, (x, w)


def short_conv_backward(dout, cache):
    """dx (B, N, D), dw (K, D) of short_conv_forward."""
    x, w = cache
    V.grad_shape("dout", dout, x.shape)
    N = x.shape[1]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(min(w.shape[0], N)):  # forward: y[:, i:] += w_i x[:, :N - i]
        dx[:, : N - i] += w[i] * dout[:, i:]
        dw[i] = np.sum(dout[:, i:] * x[:, : N - i], axis=(0, 1))
    return dx, dw


def _unit_forward(x, eps, mean):
    x = V.float_array("x", x, min_ndim=1)
    eps = V.real("eps", eps, lo=0.0, lo_open=True)
    sq = (np.mean if mean else np.sum)(x * x, axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(sq + eps)  # (..., 1)
    return x * r, (x * r, r, mean)


def _unit_backward(dout, cache):
    y, r, mean = cache
    V.grad_shape("dout", dout, y.shape)
    proj = np.sum(y * dout, axis=-1, keepdims=True)  # (..., 1)
    if mean:
        proj = proj / y.shape[-1]
    return r * (dout - y * proj)  # forward: y = x r(x), r' = -x r^3 (/ d for mean)


def l2norm_forward(x, *, eps=1e-6):
    """y = x / sqrt(|x|^2 + eps) over the last axis: x (..., d)."""
    return _unit_forward(x, eps, mean=False)


def l2norm_backward(dout, cache):
    """dx = r (dout - y <y, dout>) with r = 1 / sqrt(|x|^2 + eps)."""
    return _unit_backward(dout, cache)


def rmsnorm_forward(x, *, eps=1e-6):
    """y = x / sqrt(mean(x^2) + eps) over the last axis (no gain): x (..., d)."""
    return _unit_forward(x, eps, mean=True)


def rmsnorm_backward(dout, cache):
    """dx = r (dout - y mean(y o dout)) with r = 1 / sqrt(mean(x^2) + eps)."""
    return _unit_backward(dout, cache)

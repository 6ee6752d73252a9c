"""The inner-loop loss of TTT-Linear (Sun et al. 2024) and its hand-written gradient.

For one token (a row) with pre-activation Z = x_K W + b and target t = x_V - x_K:

    loss  l = 1/2 || LN(Z) - t ||^2,     LN(Z) = gamma * xhat + beta,
    xhat = (Z - mean Z) * rho,           rho = 1 / sqrt(var Z + eps)

Its gradient with respect to Z (the "LN-fused L2" gradient of ttt-lm-pytorch) is
layer norm's backward applied to the residual r = LN(Z) - t:

    g = gamma * r                                         (dl/dxhat)
    G = rho * (g - mean(g) - xhat * mean(g * xhat))       (dl/dZ, one row per token)

and then dl/dW = x_K^T G, dl/db = G. ``ln_l2_grad_backward`` differentiates G once
more: TTT's outer loop trains W_0, b_0, gamma, beta and the inputs through the inner
gradient steps, so it needs the derivative of a derivative.

Shape legend: (...) leading dimensions (batch, positions), F inner width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


def _check(Z, target, gamma, beta, eps):
    Z = V.float_array("Z", Z, min_ndim=1)
    target = V.float_array("target", target, min_ndim=1)
    if target.shape != Z.shape:
        raise ValueError(f"target{target.shape} must have the shape of Z{Z.shape}")
    if Z.shape[-1] == 0:
        raise ValueError(f"Z{Z.shape} needs a width F >= 1 (last axis)")
    gamma, beta = V.float_array("gamma", gamma), V.float_array("beta", beta)
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p.shape != Z.shape[-1:]:
            raise ValueError(f"{name}{p.shape} must have shape ({Z.shape[-1]},)")
    V.same_dtype(Z=Z, target=target, gamma=gamma, beta=beta)
    V.real("eps", eps, lo=0.0, lo_open=True)
    return Z, target, gamma, beta


def _normalise(Z, eps):
    """xhat and rho = 1 / sqrt(var + eps) over the last axis."""
    mu = Z.mean(axis=-1, keepdims=True)  # (..., 1)
    rho = 1.0 / np.sqrt(((Z - mu) ** 2).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    return (Z - mu) * rho, rho  # (..., F), (..., 1)


def ln_l2_loss(Z, target, gamma, beta, *, eps=1e-6):
    """Per-row loss 1/2 ||gamma * xhat + beta - target||^2: (..., F) -> (...)."""
    Z, target, gamma, beta = _check(Z, target, gamma, beta, eps)
    xhat, _ = _normalise(Z, eps)
    return 0.5 * np.sum((gamma * xhat + beta - target) ** 2, axis=-1)  # (...)


class LnL2GradCache(NamedTuple):
    xhat: np.ndarray  # (..., F) normalised Z
    rho: np.ndarray  # (..., 1) 1 / sqrt(var + eps)
    r: np.ndarray  # (..., F) residual LN(Z) - target
    g: np.ndarray  # (..., F) gamma * r
    m: np.ndarray  # (..., 1) mean(g * xhat)
    G: np.ndarray  # (..., F) the output
    gamma: np.ndarray  # (F,)
    loss: np.ndarray  # (...) the per-row loss 1/2 ||LN(Z) - target||^2


def ln_l2_grad_forward(Z, target, gamma, beta, *, eps=1e-6):
    """G = d/dZ of the summed per-row losses 1/2 ||LN(Z) - target||^2.

    Args:
        Z: (..., F) pre-activations x_K W + b.
        target: (..., F) reconstruction targets x_V - x_K.
        gamma, beta: (F,) layer-norm gain and shift.
        eps: layer norm's epsilon > 0.

    Returns:
        G (..., F), cache for ``ln_l2_grad_backward`` (``cache.loss`` is the per-row
        loss).
    """
    Z, target, gamma, beta = _check(Z, target, gamma, beta, eps)
    xhat, rho = _normalise(Z, eps)
    r = gamma * xhat + beta - target  # (..., F) residual of the reconstruction
    g = gamma * r  # (..., F) dl/dxhat
    m = np.mean(g * xhat, axis=-1, keepdims=True)  # (..., 1)
    G = rho * (g - g.mean(axis=-1, keepdims=True) - xhat * m)  # layer norm's backward
    loss = 0.5 * np.sum(r * r, axis=-1)  # (...)
    return G, LnL2GradCache(xhat, rho, r, g, m, G, gamma, loss)


def _ln_input_backward(dxhat, xhat, rho):
    """dZ from dxhat through xhat = (Z - mean) * rho (rho's dependence included)."""
    mean_d = dxhat.mean(axis=-1, keepdims=True)
    mean_dx = (dxhat * xhat).mean(axis=-1, keepdims=True)
    return rho * (dxhat - mean_d - xhat * mean_dx)


def ln_l2_grad_backward(dout, cache):
    """Vector-Jacobian product of G = ln_l2_grad_forward(Z, target, gamma, beta).

    Args:
        dout: (..., F) upstream gradient of G.
        cache: from ``ln_l2_grad_forward``.

    Returns:
        dZ (..., F), dtarget (..., F), dgamma (F,), dbeta (F,).
    """
    xhat, rho, r, g, m, G, gamma, _ = cache
    V.grad_shape("dout", dout, G.shape)
    dG = dout
    F = xhat.shape[-1]
    # forward: G = rho * P(g), P(g) = g - mean(g) - xhat mean(g xhat); P is symmetric
    dg = _ln_input_backward(dG, xhat, rho)
    dxhat = -rho * (m * dG + g * np.mean(dG * xhat, axis=-1, keepdims=True))
    drho = np.sum(dG * G, axis=-1, keepdims=True) / rho  # (..., 1) from G = rho * P
    dr = gamma * dg  # forward: g = gamma * r
    dgamma = dg * r + dr * xhat  # forward: r = gamma * xhat + beta - target
    dxhat = dxhat + gamma * dr
    # forward: rho = (var + eps)^(-1/2)  ->  d rho / dZ = -rho^2 xhat / F
    dZ = _ln_input_backward(dxhat, xhat, rho) - drho * rho**2 * xhat / F
    rows = lambda a: a.reshape(-1, F).sum(axis=0)  # sum over every leading dimension
    return dZ, -dr, rows(dgamma), rows(dr)

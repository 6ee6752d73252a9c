"""Feature maps phi for linear attention: phi(q) . phi(k) stands in for exp(q . k).

Each map is a forward/backward pair applied row by row (``phi, cache = *_forward(x)``,
``dx = *_backward(dout, cache)`` with dout = dL/dphi). Features must be non-negative
so that the normaliser sum_j phi(q_i) . phi(k_j) is a sum of non-negative terms.

    elu+1 (Katharopoulos et al. 2020):  phi(x) = elu(x) + 1 > 0         f = d
    relu:                               phi(x) = max(x, 0) >= 0         f = d
    dpfp (Schlag et al. 2021), nu = 1, 2, ...:  r = [relu(x), relu(-x)],
        phi(x) = [r * roll(r, 1), ..., r * roll(r, nu)]                 f = 2 d nu

The random features of the Performer (FAVOR+) live in ``performer.py``.

Shape legend: x (..., N, d) queries or keys, phi (..., N, f).
"""

import numpy as np


def elu_plus_one_forward(x):
    """phi = x + 1 for x > 0, exp(x) otherwise: positive, smooth, ~linear for x > 0."""
    # exp(min(x, 0)) + max(x, 0) is exp(x) for x <= 0 and 1 + x for x > 0; exp never
    # sees a positive argument (no overflow) and there is no slow np.where
    phi = np.exp(np.minimum(x, 0.0))  # (..., N, d)
    phi += np.maximum(x, 0.0)
    return phi, (x, phi)


def elu_plus_one_backward(dout, cache):
    x, phi = cache
    return dout * np.where(x > 0, 1.0, phi)  # d/dx: 1 for x > 0, exp(x) = phi otherwise


def relu_forward(x):
    """phi = max(x, 0): cheap, but a row can be all zero (the eps keeps 0/0 away)."""
    return np.maximum(x, 0.0), (x,)


def relu_backward(dout, cache):
    (x,) = cache
    return dout * (x > 0)


def dpfp_forward(x, *, nu=1):
    """DPFP: products of shifted copies of r = [relu(x), relu(-x)]."""
    r = np.concatenate([np.maximum(x, 0.0), np.maximum(-x, 0.0)], axis=-1)  # (.., 2d)
    products = [r * np.roll(r, s, axis=-1) for s in range(1, nu + 1)]  # nu x (.., 2d)
    phi = np.concatenate(products, axis=-1)  # (..., N, 2 d nu)
    return phi, (x, r, nu)


def dpfp_backward(dout, cache):
    x, r, nu = cache
    d2 = r.shape[-1]
    dr = np.zeros_like(r)  # (..., N, 2d)
    for s in range(1, nu + 1):
        g = dout[..., (s - 1) * d2 : s * d2]  # forward: phi_s = r * roll(r, s)
        dr += g * np.roll(r, s, axis=-1) + np.roll(g * r, -s, axis=-1)
    d = x.shape[-1]
    return dr[..., :d] * (x > 0) - dr[..., d:] * (x < 0)  # r = [relu(x), relu(-x)]


FEATURE_MAPS = {
    "elu+1": (elu_plus_one_forward, elu_plus_one_backward),
    "relu": (relu_forward, relu_backward),
    "dpfp": (dpfp_forward, dpfp_backward),
}

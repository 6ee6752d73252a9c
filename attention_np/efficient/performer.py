"""FAVOR+ (Choromanski et al. 2020): positive random features for the softmax kernel.

For omega ~ N(0, I_d),  E[exp(omega.x - |x|^2/2) exp(omega.y - |y|^2/2)] = exp(x.y).
Averaging m such features gives an unbiased, always-positive estimate of exp(x.y):

    phi(x) = exp(x' omega - |x'|^2 / 2 - c) / sqrt(m),   x' = x / d^(1/4)

so phi(q) . phi(k) estimates exp(q.k / sqrt(d)) e^(-c_q - c_k): softmax attention
with scale 1/sqrt(d) up to the constants c, which cancel in the normalisation.
They are stabilisers: c = the row max for queries, one max over all keys.
Orthogonal omega (blocks of d orthogonal directions, chi-distributed lengths) keep
each omega_i ~ N(0, I) and lower the variance.

Shape legend: x (..., N, d), omega (d, m) one random direction per column,
phi (..., N, m).
"""

import numpy as np

from .. import validate as V

STABILIZE = (None, "row", "all")


def favor_omega(d, m, *, rng, orthogonal=True):
    """(d, m) random projections; each column is distributed as N(0, I_d).

    Args:
        d: head width.
        m: number of random features.
        rng: np.random.Generator.
        orthogonal: columns within each block of d are exactly orthogonal.
    """
    d, m = V.positive_int("d", d), V.positive_int("m", m)
    V.rng_arg(rng)
    if not V.bool_arg("orthogonal", orthogonal):
        return rng.standard_normal((d, m))
    blocks = []
    for _ in range(-(-m // d)):  # ceil(m / d) blocks of d orthonormal columns
        basis, r = np.linalg.qr(rng.standard_normal((d, d)))
        blocks.append(basis * np.sign(np.diag(r)))  # sign fix: uniform directions
    lengths = np.linalg.norm(rng.standard_normal((d, m)), axis=0)  # chi_d lengths
    return np.concatenate(blocks, axis=1)[:, :m] * lengths  # (d, m)


def _max_axes(stabilize):
    return {"row": (-1,), "all": (-2, -1)}[stabilize]


def _check(x, omega, stabilize):
    """Validated x and omega: float arrays of one dtype sharing d >= 1, m >= 1."""
    if stabilize not in STABILIZE:
        raise ValueError(f"stabilize must be one of {STABILIZE}, got {stabilize!r}")
    x = V.float_array("x", x, min_ndim=2 if stabilize == "all" else 1)
    omega = V.float_array("omega", omega, ndim=2)
    V.same_dtype(x=x, omega=omega)
    if x.shape[-1] != omega.shape[0]:
        raise ValueError(
            f"x{x.shape} and omega{omega.shape} must share d = x.shape[-1]"
        )
    if 0 in omega.shape:
        raise ValueError(f"omega{omega.shape} needs d >= 1 and m >= 1 features")
    return x, omega


def favor_forward(x, omega, *, stabilize=None):
    """phi(x) = exp(x' omega - |x'|^2/2 - c) / sqrt(m), x' = x d^(-1/4).

    Args:
        x: (..., N, d) queries or keys (or one (d,) vector, unless "all").
        omega: (d, m) from ``favor_omega``.
        stabilize: None (c = 0), "row" (c = max over features, for queries) or
            "all" (c = max over positions and features, for keys).

    Returns:
        phi (..., N, m) and a cache.
    """
    x, omega = _check(x, omega, stabilize)
    d, m = omega.shape
    xs = x * d**-0.25  # (..., N, d)
    u = xs @ omega - 0.5 * np.sum(xs * xs, axis=-1, keepdims=True)  # (..., N, m)
    c = 0.0
    if stabilize is not None:
        axes = _max_axes(stabilize)  # exp(u - c) <= 1; no positions: c = -inf, unused
        c = np.max(u, axis=axes, keepdims=True, initial=-np.inf)
    phi = np.exp(u - c) / np.sqrt(m)
    return phi, (xs, omega, u, phi, stabilize)


def favor_backward(dout, cache):
    """dx and domega from dout = dphi; the stabiliser's max passes its gradient to
    the entry where it was taken.

    Returns:
        dx (..., N, d) and domega (d, m), summed over every row of x.
    """
    xs, omega, u, phi, stabilize = cache
    V.grad_shape("dout", dout, phi.shape)
    du = _stabiliser_backward(dout * phi, u, stabilize)  # phi = exp(u - c) / sqrt(m)
    d = omega.shape[0]
    # forward: u = xs omega - |xs|^2 / 2 -> dxs = du omega^T - (sum_m du) xs
    dxs = du @ omega.T - np.sum(du, axis=-1, keepdims=True) * xs
    domega = xs.reshape(-1, d).T @ du.reshape(-1, omega.shape[1])  # (d, m)
    return dxs * d**-0.25, domega  # xs = x d^(-1/4)


def _stabiliser_backward(du, u, stabilize):
    """Add the gradient through c = max(u) (over ``stabilize``'s axes) to du."""
    if stabilize is None:
        return du
    axes = _max_axes(stabilize)
    dc = -np.sum(du, axis=axes, keepdims=True)  # phi depends on c through -c
    if u.size == 0:  # no entries: no max was taken
        return du
    flat = u.reshape(u.shape[: u.ndim - len(axes)] + (-1,))  # (..., group)
    top = np.argmax(flat, axis=-1)[..., None]  # where the max was taken
    grad_flat = du.reshape(flat.shape).copy()
    np.put_along_axis(
        grad_flat,
        top,
        np.take_along_axis(grad_flat, top, -1) + dc.reshape(top.shape),
        -1,
    )
    return grad_flat.reshape(u.shape)

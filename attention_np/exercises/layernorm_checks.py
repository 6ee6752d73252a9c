"""Checker for exercise 12: the backward pass of layer norm.

Student signature:
    layernorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)
        forward (over the last axis): out = gamma * xhat + beta,
        xhat = (x - mu) / sqrt(var + eps), var the biased variance (1/D);
        dout, x, dx (..., D); gamma, dgamma, dbeta (D,).

Planted mistakes reuse the package's ``layernorm_backward(dout, cache)``: its cache
is (xhat, gamma, inv_std), so a student who computed the statistics wrongly (eps in
the wrong place, the unbiased variance) is the reference fed those statistics.
"""

import numpy as np

from ..gradcheck import numerical_grads
from ..layers import layernorm_backward, layernorm_forward
from .framework import Case, Checker
from .hints import kind, matches, matches_any, when

OUTPUTS = ("dx", "dgamma", "dbeta")


def _case(name, rng, x, eps):
    D = x.shape[-1]
    gamma = 1.0 + 0.5 * rng.standard_normal(D)
    beta = 0.5 * rng.standard_normal(D)  # the forward's shift: dbeta must not need it
    out, cache = layernorm_forward(x, gamma, beta, eps=eps)
    dout = rng.standard_normal(out.shape)  # random, never ones
    forward = lambda p: layernorm_forward(p["x"], p["gamma"], p["beta"], eps=eps)[0]
    fd = numerical_grads(forward, {"x": x, "gamma": gamma, "beta": beta}, dout)
    label = f"{name}: x {x.shape}, eps {eps:g}"
    expected = layernorm_backward(dout, cache)
    return Case(
        label, (dout, x, gamma, eps), expected, fd=(fd["x"], fd["gamma"], fd["beta"])
    )


def _cases(rng):
    g = rng.standard_normal
    return [
        _case("rows of 5 features", rng, 2.0 * g((3, 5)) + 1.0, 1e-5),
        _case("batch of sequences", rng, g((2, 4, 6)), 1e-5),
        _case("small variance, eps matters", rng, 0.1 * g((4, 3)), 0.01),
        _case("two features per row", rng, g((3, 2)) + 3.0, 1e-5),
    ]


def _stats(c, *, inv_std=None, ddof=0):
    """(xhat, inv_std) of a case, with a planted way to compute inv_std."""
    _, x, _, eps = c.args
    xc = x - x.mean(axis=-1, keepdims=True)  # (..., D)
    var = (xc * xc).sum(axis=-1, keepdims=True) / (x.shape[-1] - ddof)  # (..., 1)
    inv = 1.0 / np.sqrt(var + eps) if inv_std is None else inv_std(var, eps)
    return xc * inv, inv


def _reference_with(c, **planted):
    dout, _, gamma, _ = c.args
    xhat, inv = _stats(c, **planted)
    return layernorm_backward(dout, (xhat, gamma, inv))


def _dx_paths(c, mean=True, var=True):
    """dx with the mean path and/or the variance path left out."""
    dout, _, gamma, _ = c.args
    xhat, inv = _stats(c)
    g = dout * gamma  # (..., D)
    dx = g
    if mean:
        dx = dx - g.mean(axis=-1, keepdims=True)
    if var:
        dx = dx - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    return {"dx": inv * dx}


def _unbiased(c):
    """dx with 1/(D - 1) in the variance: the reference formula fed those statistics,
    and the exact gradient of that (unbiased) layer norm."""
    dout, x, gamma, _ = c.args
    xhat, inv = _stats(c, ddof=1)
    g = dout * gamma  # (..., D)
    row = (g * xhat).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)  # (..., 1)
    exact = inv * (g - g.mean(axis=-1, keepdims=True) - xhat * row)
    return [{"dx": _reference_with(c, ddof=1)[0]}, {"dx": exact}]


def _wrong_eps(c):
    rules = [
        lambda var, eps: 1.0 / (np.sqrt(var) + eps),
        lambda var, eps: 1.0 / np.sqrt(var),
        lambda var, eps: 1.0 / np.sqrt(var) + eps,
    ]
    return [{"dx": _reference_with(c, inv_std=rule)[0]} for rule in rules]


def _no_gamma(c):
    xhat, inv = _stats(c)
    return {"dx": layernorm_backward(c.args[0], (xhat, 1.0, inv))[0]}


def _dgamma_of_x(c):
    dout, x = c.args[:2]
    return {"dgamma": (dout * x).reshape(-1, x.shape[-1]).sum(axis=0)}


def _param_shape(f):
    return kind("shape")(f) and f.name in ("dgamma", "dbeta")


HINTS = (
    when(
        _param_shape,
        "gamma and beta are shared by every row, so their gradients add up over "
        "every row (every axis but the last): "
        "(dout * xhat).reshape(-1, D).sum(axis=0), shape (D,).",
    ),
    matches(
        lambda c: _dx_paths(c, mean=False, var=False),
        "you treated the mean and the standard deviation as constants "
        "(dx = gamma * dout / sigma). Both depend on every x of the row: "
        "dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * gamma.",
    ),
    matches(
        lambda c: _dx_paths(c, mean=False),
        "the path through the mean is missing: mu depends on every x of the row, "
        "which subtracts mean(g) (g = dout * gamma) from every entry.",
    ),
    matches(
        lambda c: _dx_paths(c, var=False),
        "the path through the variance is missing: sigma depends on every x of the "
        "row, which subtracts xhat * mean(g * xhat) (g = dout * gamma).",
    ),
    matches_any(
        _wrong_eps,
        "eps goes inside the square root: inv_std = 1 / np.sqrt(var + eps), the same "
        "as in the forward pass (see the case with eps = 0.01).",
    ),
    matches_any(
        _unbiased,
        "layer norm uses the biased variance, mean((x - mu)**2) = np.var(x) with "
        "ddof=0, not the unbiased 1/(D - 1) version (ddof=1).",
    ),
    matches(
        _no_gamma,
        "forward: out = gamma * xhat + beta, so the gradient reaching xhat is "
        "g = dout * gamma: multiply by gamma first.",
    ),
    matches(
        _dgamma_of_x,
        "dgamma = sum of dout * xhat (the normalised x), not dout * x.",
    ),
)

LAYERNORM_BACKWARD = Checker(
    title="layernorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)",
    make_cases=_cases,
    outputs=OUTPUTS,
    arg_names=("dout", "x", "gamma"),
    hints=HINTS,
    fallback="xhat = (x - mu) * inv_std; g = dout * gamma; "
    "dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)); dgamma = sum(dout * xhat), "
    "dbeta = sum(dout) over every row.",
)


def check_layernorm_backward(fn):
    """Check a student's ``layernorm_backward(dout, x, gamma, eps=1e-5)``.

    Returns (dx, dgamma, dbeta) for out = gamma * (x - mu) / sqrt(var + eps) + beta
    over the last axis (biased variance): dout, x, dx (..., D); gamma, dgamma,
    dbeta (D,). Compared with the reference and with central finite differences.
    Returns True when every case passes.
    """
    return LAYERNORM_BACKWARD.run(fn)

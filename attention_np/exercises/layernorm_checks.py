"""Checker for exercise 09a: the backward pass of layer norm.

Student signature:
    layernorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)
        forward (over the last axis): out = gamma * xhat + beta,
        xhat = (x - mu) / sqrt(var + eps), var the biased variance (1/D);
        dout, x, dx (..., D) with any number of leading axes; gamma, dgamma,
        dbeta (D,).
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, matches, matches_any, when

OUTPUTS = ("dx", "dgamma", "dbeta")


def _case(name, rng, x, eps):
    D = x.shape[-1]
    gamma = 1.0 + 0.5 * rng.standard_normal(D)
    beta = 0.5 * rng.standard_normal(D)  # the forward's shift: dbeta must not need it
    out, (xhat, inv) = _ref.layernorm(x, gamma, beta, eps)
    dout = rng.standard_normal(out.shape)  # random, never ones
    forward = lambda p: _ref.layernorm(p["x"], p["gamma"], p["beta"], eps)[0]
    fd = _ref.numerical_grads(forward, {"x": x, "gamma": gamma, "beta": beta}, dout)
    rows = lambda a: a.reshape(-1, D).sum(axis=0)  # sum over every row
    expected = (
        _ref.layernorm_dx(dout, gamma, xhat, inv),
        rows(dout * xhat),
        rows(dout),
    )
    label = f"{name}: x {x.shape}, eps {eps:g}"
    fd = (fd["x"], fd["gamma"], fd["beta"])
    return Case(label, (dout, x, gamma, eps), expected, fd=fd)


def _cases(rng):
    g = rng.standard_normal
    return [
        _case("rows of 5 features", rng, 2.0 * g((3, 5)) + 1.0, 1e-5),
        _case("batch of sequences", rng, g((2, 4, 6)), 1e-5),
        _case("batch, heads and positions", rng, g((2, 2, 3, 4)), 1e-5),
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


def _dx(c, mean=True, var=True, gamma=True, **stats):
    """dx with the mean path, the variance path or gamma left out, or other stats."""
    dout, _, g_, _ = c.args
    xhat, inv = _stats(c, **stats)
    g = dout * g_ if gamma else dout  # (..., D)
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
    return [_dx(c, ddof=1), {"dx": exact}]


def _wrong_eps(c):
    rules = [
        lambda var, eps: 1.0 / (np.sqrt(var) + eps),
        lambda var, eps: 1.0 / np.sqrt(var),
        lambda var, eps: 1.0 / np.sqrt(var) + eps,
        lambda var, eps: 1.0 / np.sqrt(var + 1e-5),
    ]
    return [_dx(c, inv_std=rule) for rule in rules]


def _dgamma_of_x(c):
    dout, x = c.args[:2]
    return {"dgamma": (dout * x).reshape(-1, x.shape[-1]).sum(axis=0)}


def _param_shape(f):
    return kind("shape")(f) and f.name in ("dgamma", "dbeta")


HINTS = (
    when(
        _param_shape,
        "gamma and beta are shared by every row, so their gradients add up over "
        "every row, that is over every axis but the last: shape (D,).",
    ),
    matches(
        lambda c: _dx(c, mean=False, var=False),
        "you treated the mean and the standard deviation as constants. Both depend "
        "on every x of the row, which adds the two terms with means in the formula "
        "for dx.",
    ),
    matches(
        lambda c: _dx(c, mean=False),
        "the path through the mean is missing: mu depends on every x of the row "
        "(the term -mean(g) of the formula).",
    ),
    matches(
        lambda c: _dx(c, var=False),
        "the path through the variance is missing: sigma depends on every x of the "
        "row (the term with mean(g * xhat)).",
    ),
    matches_any(
        _wrong_eps,
        "eps goes inside the square root, 1 / sqrt(var + eps), with the eps "
        "argument: the same as in the forward pass (see the case with eps = 0.01).",
    ),
    matches_any(
        _unbiased,
        "layer norm uses the biased variance, mean((x - mu)**2) (np.var's ddof=0), "
        "not the unbiased 1/(D - 1) version.",
    ),
    matches(
        lambda c: _dx(c, gamma=False),
        "forward: out = gamma * xhat + beta, so the gradient reaching xhat is "
        "dout * gamma.",
    ),
    matches(
        _dgamma_of_x,
        "dgamma sums dout * xhat (the normalised x), not dout * x.",
    ),
)

LAYERNORM_BACKWARD = Checker(
    title="layernorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)",
    make_cases=_cases,
    outputs=OUTPUTS,
    arg_names=("dout", "x", "gamma"),
    hints=HINTS,
    forbidden=answer_key.LAYERNORM + answer_key.REFERENCE,
    call="check_layernorm_backward(layernorm_backward)",
)


def check_layernorm_backward(fn, *, seed=None):
    """Check a student's ``layernorm_backward(dout, x, gamma, eps=1e-5)``.

    Returns (dx, dgamma, dbeta) for out = gamma * (x - mu) / sqrt(var + eps) + beta
    over the last axis (biased variance): dout, x, dx (..., D) with any leading
    axes; gamma, dgamma, dbeta (D,). Compared with the reference and with central
    finite differences. Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(LAYERNORM_BACKWARD, fn, seed=seed)

"""Checkers for exercise 19a: the gradient of TTT-Linear's inner loss.

Student signatures (a mini-batch of m tokens, inner width F; W (F, F), b (F,)):
    ttt_grad(x_k, x_v, W, b) -> (dW, db)
        loss L = sum_t 1/2 || x_k,t W + b - (x_v,t - x_k,t) ||^2, no layer norm;
        x_k, x_v (m, F); dW (F, F), db (F,).
    ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6) -> (dW, db)
        TTT-Linear's loss (Sun et al. 2024): L = sum_t 1/2 || LN(x_k,t W + b) -
        (x_v,t - x_k,t) ||^2 with LN(z) = gamma * (z - mean) / sqrt(var + eps) + beta.

With G = dL/dZ (one row per token, Z = x_k W + b) both are dW = x_k^T G and
db = sum_t G_t: G is the residual itself without layer norm, and layer norm's
backward applied to the residual with it.
"""

from functools import partial
from types import SimpleNamespace

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, matches, matches_any, when

OUTPUTS = ("dW", "db")
EPS = 1e-6


def _inputs(rng, m, F):
    g = rng.standard_normal
    return g((m, F)), g((m, F)), 0.5 * g((F, F)), 0.3 * g(F)


SIZES = [  # name, m, F, eps
    ("a mini-batch of 4 tokens, F = 3", 4, 3, EPS),
    ("8 tokens, F = 5", 8, 5, EPS),
    ("one token, F = 4", 1, 4, EPS),
    ("6 tokens, F = 3, eps 0.1", 6, 3, 0.1),
]


def _G(c, target=None, ln_backward=True):
    """dL/dZ (m, F) for either part, with a planted target or layer-norm backward."""
    x_k, x_v, W, b = c.args[:4]
    t = x_v - x_k if target is None else target(x_k, x_v)
    Z = x_k @ W + b  # (m, F)
    if len(c.args) == 4:
        return Z - t
    gamma, beta, eps = c.args[4:]
    y, (zhat, inv) = _ref.layernorm(Z, gamma, beta, eps)
    r = y - t  # (m, F) the residual
    return _ref.layernorm_dx(r, gamma, zhat, inv) if ln_backward else r


def _loss(p, args):
    Z = args[0] @ p["W"] + p["b"]  # (m, F)
    target = args[1] - args[0]
    if len(args) == 4:
        return 0.5 * np.sum((Z - target) ** 2)
    return 0.5 * np.sum((_ref.layernorm(Z, *args[4:])[0] - target) ** 2)


def _make(rng, with_ln):
    out = []
    for name, m, F, eps in SIZES if with_ln else SIZES[:3]:
        x_k, x_v, W, b = _inputs(rng, m, F)
        args = (x_k, x_v, W, b)
        if with_ln:
            args += (
                1.0 + 0.3 * rng.standard_normal(F),
                0.2 * rng.standard_normal(F),
                eps,
            )
        fd = _ref.numerical_grads(partial(_loss, args=args), {"W": W, "b": b}, 1.0)
        label = f"{name}: x_k, x_v ({m}, {F}), W ({F}, {F})"
        case = Case(label, args, None, fd=(fd["W"], fd["b"]))
        G = _G(case)
        case.expected = (x_k.T @ G, G.sum(axis=0))
        out.append(case)
    return out


def _as_dict(c, G, x_k=None):
    x_k = c.args[0] if x_k is None else x_k
    return {"dW": x_k.T @ G, "db": G.sum(axis=0)}


def _wrong_targets(c):
    targets = [lambda x_k, x_v: x_v, lambda x_k, x_v: x_k - x_v,
               lambda x_k, x_v: x_v + x_k]  # fmt: skip
    return [_as_dict(c, _G(c, t)) for t in targets]


def _no_ln_backward(c):
    """G without layer norm's backward: r, gamma r, gamma r / sigma."""
    r = _G(c, ln_backward=False)
    gamma, _, eps = c.args[4:]
    Z = c.args[0] @ c.args[2] + c.args[3]
    inv = _ref.layernorm(Z, gamma, 0.0, eps)[1][1]
    return [_as_dict(c, G) for G in (r, gamma * r, gamma * r * inv)]


def _default_eps(c):
    if len(c.args) == 4 or c.args[6] == EPS:
        return [{}]
    return [_as_dict(c, _G(SimpleNamespace(args=c.args[:6] + (EPS,))))]


HINTS = (
    when(
        lambda f: kind("shape")(f),
        "dW has W's shape (F, F) and db b's shape (F,): the loss sums over the m "
        "tokens, so their gradients add up.",
    ),
    matches_any(
        _wrong_targets,
        "the target is x_v - x_k (TTT-Linear learns to reconstruct x_v from x_k "
        "through the residual f(x) = x + LN(x W + b)).",
    ),
    matches(
        lambda c: {"dW": c.expected[0].T},
        "dW is transposed: for Z = x_k W + b its rows are indexed like W's inputs "
        "(W is square, so the shape does not tell).",
    ),
    matches(
        lambda c: {
            "dW": c.expected[0] / len(c.args[0]),
            "db": c.expected[1] / len(c.args[0]),
        },
        "the loss is the SUM over the m tokens (not the mean): no division by m.",
    ),
    matches(
        lambda c: _as_dict(c, _G(c)[-1:], x_k=c.args[0][-1:]),
        "sum the gradients of ALL tokens of the mini-batch, not just the last one.",
    ),
    matches(
        lambda c: {"dW": -c.expected[0], "db": -c.expected[1]},
        "the sign is flipped: the residual is prediction minus target.",
    ),
    matches_any(
        _no_ln_backward,
        "the loss goes through layer norm, so dL/dZ is layer norm's backward of the "
        "residual (exercise 09a), row by row.",
    ),
    matches_any(
        _default_eps,
        "use the eps argument in the layer norm (see the case with eps 0.1).",
    ),
)

TTT_GRAD = Checker(
    title="ttt_grad(x_k, x_v, W, b) -> (dW, db)",
    make_cases=lambda rng: _make(rng, with_ln=False),
    outputs=OUTPUTS,
    arg_names=("x_k", "x_v", "W", "b"),
    hints=HINTS,
    forbidden=answer_key.TTT + answer_key.REFERENCE,
    call="check_ttt_grad(ttt_grad)",
)

TTT_LN_GRAD = Checker(
    title="ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6) -> (dW, db)",
    make_cases=lambda rng: _make(rng, with_ln=True),
    outputs=OUTPUTS,
    arg_names=("x_k", "x_v", "W", "b", "gamma", "beta"),
    hints=HINTS,
    forbidden=answer_key.TTT + answer_key.REFERENCE,
    call="check_ttt_ln_grad(ttt_ln_grad)",
)


def check_ttt_grad(fn, *, seed=None):
    """Check a student's ``ttt_grad(x_k, x_v, W, b) -> (dW, db)``.

    Gradient of sum_t 1/2 ||x_k,t W + b - (x_v,t - x_k,t)||^2 over the m tokens of
    a mini-batch: x_k, x_v (m, F), W (F, F), b (F,). Compared with the reference and
    with finite differences. Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(TTT_GRAD, fn, seed=seed)


def check_ttt_ln_grad(fn, *, seed=None):
    """Check a student's ``ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6)``.

    Gradient (dW, db) of TTT-Linear's inner loss
    sum_t 1/2 ||LN(x_k,t W + b) - (x_v,t - x_k,t)||^2. Compared with the reference
    and with finite differences. Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(TTT_LN_GRAD, fn, seed=seed)

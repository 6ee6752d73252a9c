"""Checkers for exercise 16: the gradient of TTT-Linear's inner loss.

Student signatures (a mini-batch of m tokens, inner width F; W (F, F), b (F,)):
    ttt_grad(x_k, x_v, W, b) -> (dW, db)
        loss L = sum_t 1/2 || x_k,t W + b - (x_v,t - x_k,t) ||^2, no layer norm;
        x_k, x_v (m, F); dW (F, F), db (F,).
    ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6) -> (dW, db)
        TTT-Linear's loss (Sun et al. 2024): L = sum_t 1/2 || LN(x_k,t W + b) -
        (x_v,t - x_k,t) ||^2 with LN(z) = gamma * (z - mean) / sqrt(var + eps) + beta.

With G = dL/dZ (one row per token, Z = x_k W + b) both are dW = x_k^T G and
db = sum_t G_t. The reference G comes from ``memory.ttt_inner.ln_l2_grad_forward``
(and is the residual itself without layer norm); ``linear_backward`` turns G into
dW and db.
"""

from functools import partial

import numpy as np

from ..gradcheck import numerical_grads
from ..layers import layernorm_backward, layernorm_forward
from ..linear import linear_backward, linear_forward
from ..memory.ttt_inner import ln_l2_grad_forward, ln_l2_loss
from .framework import Case, Checker
from .hints import kind, matches, matches_any, when

OUTPUTS = ("dW", "db")
EPS = 1e-6


def _grads(c, G, x_k=None):
    """(dW, db) of Z = x_k W + b for dL/dZ = G: dW = x_k^T G, db = sum_t G_t."""
    x_k = c.args[0] if x_k is None else x_k
    cache = linear_forward(x_k, c.args[2], c.args[3])[1]
    return tuple(linear_backward(G, cache)[1:])


def _inputs(rng, m, F):
    g = rng.standard_normal
    x_k, x_v = g((m, F)), g((m, F))
    W, b = 0.5 * g((F, F)), 0.3 * g(F)
    return x_k, x_v, W, b


SIZES = [("a mini-batch of 4 tokens, F = 3", 4, 3), ("8 tokens, F = 5", 8, 5),
         ("one token, F = 4", 1, 4)]  # fmt: skip


def _plain_loss(p, x_k, x_v):
    Z = linear_forward(x_k, p["W"], p["b"])[0]  # (m, F)
    return 0.5 * np.sum((Z - (x_v - x_k)) ** 2)


def _plain_cases(rng):
    out = []
    for name, m, F in SIZES:
        x_k, x_v, W, b = _inputs(rng, m, F)
        G = x_k @ W + b - (x_v - x_k)  # (m, F) dL/dZ: the residual
        loss = partial(_plain_loss, x_k=x_k, x_v=x_v)
        fd = numerical_grads(loss, {"W": W, "b": b}, 1.0)
        label = f"{name}: x_k, x_v ({m}, {F}), W ({F}, {F})"
        case = Case(label, (x_k, x_v, W, b), None, fd=(fd["W"], fd["b"]))
        case.expected = _grads(case, G)
        out.append(case)
    return out


def _ln_parts(c):
    """(x_k, LN(Z) - target, layer norm's cache (xhat, gamma, inv_std))."""
    x_k, x_v, W, b, gamma, beta, eps = c.args
    y, cache = layernorm_forward(x_k @ W + b, gamma, beta, eps=eps)
    return x_k, y - (x_v - x_k), cache


def _ln_loss(p, x_k, x_v, gamma, beta, eps):
    Z = linear_forward(x_k, p["W"], p["b"])[0]  # (m, F)
    return np.sum(ln_l2_loss(Z, x_v - x_k, gamma, beta, eps=eps))


def _ln_cases(rng):
    out = []
    for name, m, F in SIZES:
        x_k, x_v, W, b = _inputs(rng, m, F)
        gamma, beta = 1.0 + 0.3 * rng.standard_normal(F), 0.2 * rng.standard_normal(F)
        G = ln_l2_grad_forward(x_k @ W + b, x_v - x_k, gamma, beta, eps=EPS)[0]
        loss = partial(_ln_loss, x_k=x_k, x_v=x_v, gamma=gamma, beta=beta, eps=EPS)
        fd = numerical_grads(loss, {"W": W, "b": b}, 1.0)
        label = f"{name}: x_k, x_v ({m}, {F}), W ({F}, {F})"
        args = (x_k, x_v, W, b, gamma, beta, EPS)
        case = Case(label, args, None, fd=(fd["W"], fd["b"]))
        case.expected = _grads(case, G)
        out.append(case)
    return out


def _residual(c, target=None):
    """Residual r = prediction - target (m, F) for either part, target planted."""
    x_k, x_v, W, b = c.args[:4]
    t = x_v - x_k if target is None else target(x_k, x_v)
    if len(c.args) == 4:
        return x_k @ W + b - t
    return _ln_parts(c)[1] + (x_v - x_k) - t


def _G(c, r):
    """dL/dZ from the residual: r itself, or layer norm's backward applied to it."""
    if len(c.args) == 4:
        return r
    return layernorm_backward(r, _ln_parts(c)[2])[0]


def _as_dict(dW, db):
    return {"dW": dW, "db": db}


def _wrong_targets(c):
    targets = [lambda x_k, x_v: x_v, lambda x_k, x_v: x_k - x_v,
               lambda x_k, x_v: x_v + x_k]  # fmt: skip
    out = []
    for t in targets:
        out.append(_as_dict(*_grads(c, _G(c, _residual(c, t)))))
    return out


def _right(c):
    return _grads(c, _G(c, _residual(c)))


def _no_ln_backward(c):
    """G without layer norm's backward: r, gamma r, gamma r / sigma."""
    r = _residual(c)
    _, gamma, inv_std = _ln_parts(c)[2]
    return [_as_dict(*_grads(c, G)) for G in (r, gamma * r, gamma * r * inv_std)]


def _last_token(c):
    G = _G(c, _residual(c))
    return _as_dict(*_grads(c, G[-1:], x_k=c.args[0][-1:]))


HINTS = (
    when(
        lambda f: kind("shape")(f),
        "dW has W's shape (F, F) and db b's shape (F,): the loss sums over the m "
        "tokens, so sum their gradients: dW = x_k.T @ G (the matrix product does "
        "the sum over tokens), db = G.sum(axis=0).",
    ),
    matches_any(
        _wrong_targets,
        "the target is x_v - x_k (TTT-Linear learns to reconstruct x_v from x_k "
        "through the residual f(x) = x + LN(x W + b)): r = prediction - (x_v - x_k).",
    ),
    matches(
        lambda c: _as_dict(_right(c)[0].T, _right(c)[1]),
        "dW is transposed: for Z = x_k W + b, dW = x_k^T G has rows indexed like "
        "W's inputs; G^T x_k is its transpose (W is square, so the shape does not "
        "tell).",
    ),
    matches(
        lambda c: _as_dict(*(g / c.args[0].shape[0] for g in _right(c))),
        "the loss is the SUM over the m tokens (not the mean): do not divide by m.",
    ),
    matches(
        _last_token,
        "sum the gradients of ALL tokens of the mini-batch, not just the last one: "
        "dW = x_k.T @ G over all m rows.",
    ),
    matches(
        lambda c: _as_dict(*(-g for g in _right(c))),
        "the sign is flipped: the residual is prediction minus target, "
        "r = Z - (x_v - x_k), and dL/dZ = +r.",
    ),
    matches_any(
        _no_ln_backward,
        "the loss goes through layer norm, so dL/dZ is layer norm's backward of the "
        "residual r (exercise 12): g = gamma * r, "
        "G = inv_std * (g - mean(g) - xhat * mean(g * xhat)), row by row.",
    ),
)

TTT_GRAD = Checker(
    title="ttt_grad(x_k, x_v, W, b) -> (dW, db)",
    make_cases=_plain_cases,
    outputs=OUTPUTS,
    arg_names=("x_k", "x_v", "W", "b"),
    hints=HINTS,
    fallback="G = x_k @ W + b - (x_v - x_k) (m, F); dW = x_k.T @ G; db = G.sum(0).",
)

TTT_LN_GRAD = Checker(
    title="ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6) -> (dW, db)",
    make_cases=_ln_cases,
    outputs=OUTPUTS,
    arg_names=("x_k", "x_v", "W", "b", "gamma", "beta"),
    hints=HINTS,
    fallback="r = LN(x_k W + b) - (x_v - x_k); G = layer norm's backward of r; "
    "dW = x_k.T @ G; db = G.sum(0).",
)


def check_ttt_grad(fn):
    """Check a student's ``ttt_grad(x_k, x_v, W, b) -> (dW, db)``.

    Gradient of sum_t 1/2 ||x_k,t W + b - (x_v,t - x_k,t)||^2 over the m tokens of
    a mini-batch: x_k, x_v (m, F), W (F, F), b (F,). Compared with the reference and
    with finite differences. Returns True when every case passes.
    """
    return TTT_GRAD.run(fn)


def check_ttt_ln_grad(fn):
    """Check a student's ``ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6)``.

    Gradient (dW, db) of TTT-Linear's inner loss
    sum_t 1/2 ||LN(x_k,t W + b) - (x_v,t - x_k,t)||^2. Compared with the reference
    and with finite differences. Returns True when every case passes.
    """
    return TTT_LN_GRAD.run(fn)

"""Checkers for exercise 09: a central-difference gradient and a gradient checker.

Student signatures:
    numerical_grad(f, x, dout, h=1e-6) -> grad
        f maps a float64 array x to an array shaped like dout; grad (shaped like x)
        is the central-difference gradient of sum(f(x) * dout). x must be unchanged
        afterwards.
    gradient_check(forward, backward, x, rng) -> bool
        forward(x) -> (out, cache); backward(dout, cache) -> dx. True when dx
        agrees with finite differences for a random upstream gradient dout.
"""

import numpy as np

from ..attention import attention_backward, attention_forward
from ..gradcheck import numerical_grad
from ..softmax import softmax_backward, softmax_forward
from .framework import Case, Checker
from .hints import kind, matches, when


def layers(rng):
    """Small (name, forward, backward, x) triples with exact backward passes."""
    k, v = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    return [
        (
            "tanh, x (3, 4)",
            lambda x: (np.tanh(x), x),
            lambda dout, x: dout * (1 - np.tanh(x) ** 2),
            rng.standard_normal((3, 4)),
        ),
        (
            "softmax rows, x (2, 5)",
            softmax_forward,
            softmax_backward,
            rng.standard_normal((2, 5)),
        ),
        (
            "attention w.r.t. q, q (3, 4), k (5, 4)",
            lambda q: attention_forward(q, k, v),
            lambda dout, cache: attention_backward(dout, cache)[0],
            rng.standard_normal((3, 4)),
        ),
    ]


def _numgrad_cases(rng):
    out = []
    for name, forward, backward, x in layers(rng):
        y, cache = forward(x)
        dout = rng.standard_normal(np.shape(y))  # random, never ones
        f = lambda x, forward=forward: forward(x)[0]
        out.append(Case(name, (f, x, dout, 1e-6), backward(dout, cache)))
    x, dout = rng.standard_normal(6), rng.standard_normal(6)
    cube = lambda x: x**3
    out.append(  # central differences of a cubic are exact up to h^2
        Case(
            "x**3 with a big step h = 1e-2, x (6,)",
            (cube, x, dout, 1e-2),
            numerical_grad(cube, x, dout, h=1e-2),
        )
    )
    return out


def _one_sided(c):
    f, x, dout, h = c.args
    base = np.sum(f(x) * dout)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp = x.copy()
        xp[i] += h
        grad[i] = (np.sum(f(xp) * dout) - base) / h
    return grad


NUMGRAD_HINTS = (
    matches(
        lambda c: numerical_grad(
            c.args[0], c.args[1], np.ones_like(c.args[2]), h=c.args[3]
        ),
        "you differentiated sum(f(x)), i.e. used ones as the upstream gradient: "
        "contract with dout, loss = sum(f(x) * dout).",
    ),
    matches(
        lambda c: 2 * numerical_grad(*c.args[:3], h=c.args[3]),
        "a factor 2 too large: the central difference divides by 2h, the distance "
        "between x + h and x - h.",
    ),
    matches(
        _one_sided,
        "this is a one-sided difference (f(x + h) - f(x)) / h, with error O(h). Use "
        "the central difference (f(x + h) - f(x - h)) / 2h, error O(h^2).",
        atol=1e-9,
    ),
    when(
        kind("mutated"),
        "x must be unchanged afterwards: restore x[i] after the two evaluations "
        "(or perturb a copy).",
    ),
    when(
        lambda f: kind("shape")(f) and np.size(f.got) == np.size(f.case.args[1]),
        "right values, wrong shape: return the gradient with x's shape "
        "(grad.reshape(x.shape)).",
    ),
)

NUMGRAD = Checker(
    title="numerical_grad(f, x, dout, h=1e-6) -> grad",
    make_cases=_numgrad_cases,
    outputs=("grad",),
    arg_names=("f", "x", "dout"),
    hints=NUMGRAD_HINTS,
    atol=1e-7,
    fallback="grad[i] = (sum(f(x + h e_i) * dout) - sum(f(x - h e_i) * dout)) / 2h.",
)


def check_numerical_grad(fn):
    """Check a student's ``numerical_grad(f, x, dout, h=1e-6) -> grad``.

    grad (shaped like x) is the central-difference gradient of sum(f(x) * dout);
    it is compared with the exact gradient, and x must be left unchanged. Returns
    True when every case passes.
    """
    return NUMGRAD.run(fn)

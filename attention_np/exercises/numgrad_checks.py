"""Checker for exercise 07d, part 1: a central-difference gradient.

Student signature:
    numerical_grad(f, x, dout, h=1e-6) -> grad
        f maps a float64 array x (any shape) to an array shaped like dout; grad
        (shaped like x) is the central-difference gradient of sum(f(x) * dout).
        x must be unchanged afterwards.

The expected answers are exact gradients (or, for a cubic with a big step, the
exact central difference 3 x^2 + h^2), never another finite difference.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, matches, when


def _tanh(x):
    return np.tanh(x)


def _cube(x):
    return x**3


def _outer(x):
    return x[:, None] * x[None, :]  # (n, n)


def layers(rng):
    """(name, f, exact gradient of sum(f(x) * dout), x, dout) for small functions."""
    g = rng.standard_normal
    k, v = g((5, 4)), g((5, 2))
    attn = lambda q: _ref.attention(q, k, v)[0]

    def attn_grad(q, dout):
        return _ref.attention_backward(dout, q, k, v, _ref.attention(q, k, v)[1])[0]

    specs = [
        ("tanh", _tanh, lambda x, d: d * (1 - np.tanh(x) ** 2), (3, 4), (3, 4)),
        ("softmax rows", _ref.softmax,
         lambda x, d: _ref.softmax_backward(d, _ref.softmax(x)), (2, 5), (2, 5)),
        ("attention w.r.t. q, k (5, 4)", attn, attn_grad, (3, 4), (3, 2)),
        ("softmax of a 3-D input", _ref.softmax,
         lambda x, d: _ref.softmax_backward(d, _ref.softmax(x)), (2, 3, 4), (2, 3, 4)),
        ("f(x) = outer(x, x), out shaped unlike x", _outer,
         lambda x, d: (d + d.T) @ x, (4,), (4, 4)),
    ]  # fmt: skip
    return [(name, f, grad, g(xs), g(ds)) for name, f, grad, xs, ds in specs]


def _cases(rng):
    out = []
    for name, f, grad, x, dout in layers(rng):
        label = f"{name}, x {x.shape}"
        out.append(Case(label, (f, x, dout, 1e-6), grad(x, dout), {"exact": grad}))
    x, dout, h = rng.standard_normal(6), rng.standard_normal(6), 1e-2
    exact = lambda x, d: d * 3 * x**2
    out.append(  # the central difference of a cubic is exact up to h^2
        Case(f"x**3 with a big step h = {h:g}, x (6,)", (_cube, x, dout, h),
             dout * (3 * x**2 + h**2), {"exact": exact})
    )  # fmt: skip
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


def _with_ones(c):
    f, x, dout, h = c.args
    return _ref.numerical_grads(lambda p: f(p["x"]), {"x": x}, np.ones_like(dout), h)[
        "x"
    ]


NUMGRAD_HINTS = (
    when(
        kind("mutated"),
        "x must be unchanged afterwards: after perturbing x[i], put the old value "
        "back (or perturb a copy).",
    ),
    matches(
        _with_ones,
        "you differentiated sum(f(x)), as if dout were all ones: the loss is "
        "sum(f(x) * dout).",
    ),
    matches(
        lambda c: 2 * c.expected,
        "a factor 2 too large: the central difference divides by 2h, the distance "
        "between x + h and x - h.",
    ),
    matches(
        _one_sided,
        "this is a one-sided difference (f(x + h) - f(x)) / h, with error O(h); the "
        "task asks for the central one, error O(h^2).",
        atol=1e-9,
        rtol=1e-7,
    ),
    when(
        lambda f: kind("shape")(f) and np.size(f.got) == np.size(f.case.args[1]),
        "right number of entries, wrong shape: the gradient has x's shape.",
    ),
)

NUMGRAD = Checker(
    title="numerical_grad(f, x, dout, h=1e-6) -> grad",
    make_cases=_cases,
    outputs=("grad",),
    arg_names=("f", "x", "dout"),
    hints=NUMGRAD_HINTS,
    forbidden=answer_key.FINITE_DIFFERENCES + (_ref.numerical_grads,),
    call="check_numerical_grad(numerical_grad)",
    atol=1e-7,
)


def check_numerical_grad(fn, *, seed=None):
    """Check a student's ``numerical_grad(f, x, dout, h=1e-6) -> grad``.

    grad (shaped like x) is the central-difference gradient of sum(f(x) * dout);
    it is compared with the exact gradient, and x must be left unchanged. Raises
    AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(NUMGRAD, fn, seed=seed)

"""Checker for exercise 09, part 2: a student's gradient checker.

Student signature:
    gradient_check(forward, backward, x, rng) -> bool
        forward(x) -> (out, cache); backward(dout, cache) -> dx, shaped like x;
        rng a np.random.Generator. True when dx agrees with central finite
        differences of sum(forward(x)[0] * dout) for a random dout.

The checker hands it correct and planted-wrong backward passes and watches the
upstream gradients it passes to backward (a "spy"), so it can tell a checker that
uses ones as dout from one whose tolerance is too loose.
"""

import numpy as np

from ..attention import attention_forward
from .framework import Case, Checker
from .hints import when
from .numgrad_checks import layers


class Spy:
    """Wraps a backward and records every upstream gradient it receives."""

    def __init__(self, backward):
        self.backward, self.douts = backward, []

    def __call__(self, dout, cache):
        self.douts.append(np.array(dout, dtype=float))
        return self.backward(dout, cache)

    def constant_dout(self):
        """True when every dout seen had all entries equal (e.g. ones)."""
        return bool(self.douts) and all(np.all(d == d.flat[0]) for d in self.douts)


def _key_bias(rng):
    """Attention output as a function of a bias added to every key: gradient 0."""
    q, k, v = (rng.standard_normal(s) for s in [(3, 4), (5, 4), (5, 2)])
    forward = lambda b: (attention_forward(q, k + b, v)[0], b)
    return forward, lambda dout, b: np.zeros_like(b), rng.standard_normal(4)


def _wrong_layers(rng, tanh, softmax):
    """(name, forward, backward, x) triples whose backward is planted wrong."""
    _, tanh_f, tanh_b, tanh_x = tanh
    _, sm_f, _, sm_x = softmax
    W = rng.standard_normal((4, 4))
    zeros = lambda dout, cache: np.zeros_like(dout)
    return [
        (f"softmax whose backward returns zeros, x {sm_x.shape}", sm_f, zeros, sm_x),
        (f"tanh whose backward is 2x too large, x {tanh_x.shape}", tanh_f,
         lambda dout, x: 2 * tanh_b(dout, x), tanh_x),
        ("x @ W whose backward uses W instead of W^T, x (3, 4)",
         lambda x: (x @ W, None), lambda dout, _: dout @ W,
         rng.standard_normal((3, 4))),
    ]  # fmt: skip


def _cases(rng):
    tanh, softmax, attention = layers(rng)
    wrong = _wrong_layers(rng, tanh, softmax)
    key = ("bias added to every key (true gradient 0)", *_key_bias(rng))
    out = []
    for expected, items in (
        (True, [softmax, attention]),
        (False, wrong),
        (True, [key]),
    ):
        for name, forward, backward, x in items:
            spy = Spy(backward)
            verdict = "correct" if expected else "wrong"
            args = (forward, spy, x, np.random.default_rng(len(out)))
            info = {"spy": spy, "zero_grad": "true gradient 0" in name}
            out.append(Case(f"{verdict} backward: {name}", args, expected, info))
    return out


def _passed_wrong(f):
    return f.case.expected is False and bool(f.got) is True


HINTS = (
    when(
        lambda f: not isinstance(f.got, (bool, np.bool_)),
        "return a bool: True when the gradients agree, e.g. "
        "bool(max_diff <= atol + rtol * max_abs_numeric).",
    ),
    when(
        lambda f: _passed_wrong(f) and f.case.info["spy"].constant_dout(),
        "your checker passed ones (a constant) as dout. Softmax rows sum to 1, so "
        "sum(softmax(x) * ones) is constant, its true gradient is 0, and a wrong "
        "backward returning zeros passes. Use a random dout: "
        "rng.standard_normal(out.shape).",
    ),
    when(
        lambda f: _passed_wrong(f) and not f.case.info["spy"].douts,
        "your checker never called backward: call it with the same dout you use "
        "for the finite differences and compare the two gradients.",
    ),
    when(
        _passed_wrong,
        "a wrong backward passed: compare max |analytic - numeric| with a tight "
        "tolerance, e.g. 1e-7 + 1e-6 * max |numeric| in float64.",
    ),
    when(
        lambda f: f.case.info["zero_grad"],
        "this backward is right: the true gradient is exactly 0 (adding b to every "
        "key shifts each score row by a constant). A relative error divides "
        "rounding noise by ~0 and explodes; test max |diff| <= atol + rtol * "
        "max |numeric| instead.",
    ),
    when(
        lambda f: f.case.expected is True,
        "a correct backward failed your check: pass the same dout to backward and "
        "to numerical_grad, use float64, h = 1e-6 and a tolerance near 1e-7.",
    ),
)

GRADIENT_CHECKER = Checker(
    title="gradient_check(forward, backward, x, rng) -> bool",
    make_cases=_cases,
    outputs=("ok",),
    hints=HINTS,
    fallback="dout = rng.standard_normal(out.shape); compare backward(dout, cache) "
    "with numerical_grad(lambda x: forward(x)[0], x, dout).",
)


def check_gradient_checker(fn):
    """Check a student's ``gradient_check(forward, backward, x, rng) -> bool``.

    It must say True for correct backward passes (including one whose true gradient
    is exactly 0) and False for planted wrong ones. Returns True when it judges
    every case right.
    """
    return GRADIENT_CHECKER.run(fn)

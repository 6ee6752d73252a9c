"""Checker for exercise 07d, part 2: a student's gradient checker.

Student signature:
    gradient_check(forward, backward, x, rng, atol=1e-7, rtol=1e-6) -> bool
        forward(x) -> (out, cache); backward(dout, cache) -> dx, shaped like x;
        rng a np.random.Generator. True when
        max |dx - numeric| <= atol + rtol * max |numeric| for a random dout, where
        numeric is the central-difference gradient of sum(forward(x)[0] * dout).

Each case hands it a backward pass (correct, or a near miss: one entry wrong, 10%
off, the sign flipped, transposed, a small error that a given atol or rtol must
accept or reject, one entry off by a little more than atol, which a mean of the
errors hides) and compares its verdict with a trusted checker's. The backward is
wrapped in a ``Spy`` that records the upstream gradients it receives, so a hint
can tell a checker that uses ones as dout.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, raised, when


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


def trusted_verdict(forward, backward, x, dout, atol, rtol):
    """The reference checker: max |analytic - numeric| <= atol + rtol max |numeric|."""
    out, cache = forward(x)
    f = lambda p: forward(p["x"])[0]
    numeric = _ref.numerical_grads(f, {"x": x}, dout)["x"]
    worst = np.max(np.abs(backward(dout, cache) - numeric))
    return bool(worst <= atol + rtol * np.max(np.abs(numeric)))


def _layers(rng):
    """name -> (forward, exact backward, x)."""
    g = rng.standard_normal
    q, k, v, W = g((3, 4)), g((5, 4)), g((5, 2)), g((4, 4))
    attn = lambda q_: (_ref.attention(q_, k, v)[0], q_)

    def attn_backward(dout, q_):
        return _ref.attention_backward(dout, q_, k, v, _ref.attention(q_, k, v)[1])[0]

    def key_bias(b):  # attention with b added to every key: true gradient 0
        return _ref.attention(q, k + b, v)[0], b

    tanh = (lambda x: (np.tanh(x), x), lambda d, x: d * (1 - np.tanh(x) ** 2))
    soft = (lambda x: (_ref.softmax(x),) * 2, _ref.softmax_backward)
    return {
        "softmax rows": (*soft, g((2, 5))),
        "attention w.r.t. q": (attn, attn_backward, g((3, 4))),
        "bias added to every key (true gradient 0)": (
            key_bias, lambda d, b: np.zeros_like(b), g(4)),
        "tanh": (*tanh, g((3, 4))),
        "x @ W": (lambda x: (x @ W, x), lambda d, x: d @ W.T, g((4, 4))),
    }  # fmt: skip


def _specs(rng, L):
    """(name, forward, backward, x, atol, rtol, expected verdict, info)."""
    soft_f, _, soft_x = L["softmax rows"]
    tanh_f, tanh_b, tanh_x = L["tanh"]
    lin_f, lin_b, lin_x = L["x @ W"]
    index = tuple(int(rng.integers(1, n)) for n in tanh_x.shape)  # never the first

    def one_wrong_entry(dout, x):  # off by far more than any tolerance
        grad = tanh_b(dout, x)
        grad[index] += 10.0 * (1.0 + np.abs(grad).max())
        return grad

    noise = 1e-4 * rng.choice([-1.0, 1.0], size=tanh_x.shape)  # max |error| 1e-4
    spike = np.zeros(tanh_x.shape)
    spike[index] = 1e-4  # one entry off by 1e-4: its mean over 12 entries is < 1e-5
    tol = 1e-7, 1e-6
    out = [(f"correct backward: {n}", *L[n], *tol, True, {})
           for n in ("softmax rows", "attention w.r.t. q",
                     "bias added to every key (true gradient 0)")]  # fmt: skip
    return out + [
        ("wrong backward: softmax returning zeros", soft_f,
         lambda d, c: np.zeros_like(d), soft_x, *tol, False, {"miss": "zeros"}),
        (f"near miss: tanh with one wrong entry {list(index)}", tanh_f,
         one_wrong_entry, tanh_x, *tol, False, {"miss": "entry"}),
        ("near miss: x @ W, gradient 10% too large", lin_f,
         lambda d, x: 1.1 * lin_b(d, x), lin_x, *tol, False, {"miss": "10%"}),
        ("near miss: x @ W, sign flipped", lin_f,
         lambda d, x: -lin_b(d, x), lin_x, *tol, False, {"miss": "sign"}),
        ("near miss: x @ W (square), gradient transposed", lin_f,
         lambda d, x: lin_b(d, x).T, lin_x, *tol, False, {"miss": "transposed"}),
        ("tanh with errors of 1e-4, atol=1e-3, rtol=0", tanh_f,
         lambda d, x: tanh_b(d, x) + noise, tanh_x, 1e-3, 0.0, True, {"tol": "atol"}),
        ("tanh with errors of 1e-4, atol=1e-6, rtol=0", tanh_f,
         lambda d, x: tanh_b(d, x) + noise, tanh_x, 1e-6, 0.0, False, {"tol": "atol"}),
        ("x @ W, gradient 0.1% too large, atol=0, rtol=1e-2", lin_f,
         lambda d, x: 1.001 * lin_b(d, x), lin_x, 0.0, 1e-2, True, {"tol": "rtol"}),
        ("x @ W, gradient 0.1% too large, atol=0, rtol=1e-4", lin_f,
         lambda d, x: 1.001 * lin_b(d, x), lin_x, 0.0, 1e-4, False, {"tol": "rtol"}),
        (f"near miss: tanh with entry {list(index)} off by 1e-4, atol=1e-5, rtol=0",
         tanh_f, lambda d, x: tanh_b(d, x) + spike, tanh_x, 1e-5, 0.0, False,
         {"miss": "small entry"}),
    ]  # fmt: skip


def _cases(rng):
    out = []
    for name, forward, backward, x, atol, rtol, verdict, info in _specs(
        rng, _layers(rng)
    ):
        dout = rng.standard_normal(np.shape(forward(x)[0]))
        # the designed verdict is the trusted checker's, for any random dout
        assert trusted_verdict(forward, backward, x, dout, atol, rtol) is verdict, name
        spy = Spy(backward)
        args = (forward, spy, x, np.random.default_rng(rng.integers(2**32)), atol, rtol)
        info = {**info, "spy": spy, "zero_grad": "true gradient 0" in name}
        out.append(Case(name, args, verdict, info))
    return out


def _accepted_wrong(f):
    return f.case.expected is False and f.kind == "value" and bool(f.got) is True


def _miss(name):
    return lambda f: _accepted_wrong(f) and f.case.info.get("miss") == name


HINTS = (
    raised(
        r"^AssertionError",
        "your checker raised AssertionError: gradient_check must RETURN False when "
        "the gradients disagree (an assert raises instead).",
    ),
    when(
        kind("type"),
        "gradient_check must return True or False (a bool), not a number or an array.",
    ),
    when(
        lambda f: _accepted_wrong(f) and f.case.info["spy"].constant_dout(),
        "your checker passed a constant dout (e.g. ones). Softmax rows sum to 1, so "
        "sum(softmax(x) * ones) is constant, its true gradient is 0, and a backward "
        "returning zeros passes. Draw dout at random with rng.",
    ),
    when(
        lambda f: _accepted_wrong(f) and not f.case.info["spy"].douts,
        "your checker never called backward: compare its dx with the finite "
        "differences for the same dout.",
    ),
    when(
        _miss("entry"),
        "this backward has ONE wrong entry (not the first) and your checker "
        "accepted it: compare every entry of the two gradients.",
    ),
    when(
        _miss("10%"),
        "a backward whose gradient is 10% too large passed your checker: its "
        "tolerance must be atol + rtol * max |numeric| with the given atol and rtol.",
    ),
    when(
        _miss("sign"),
        "a backward that returns -dx passed your checker: the gradients must agree "
        "in sign as well as in size.",
    ),
    when(
        _miss("transposed"),
        "a backward that returns dx transposed passed your checker: compare the "
        "arrays entry by entry, in the same layout.",
    ),
    when(
        _miss("small entry"),
        "a backward with ONE entry off by 1e-4 (more than atol = 1e-5) passed your "
        "checker: judge by the largest |difference|; a mean or a sum over the "
        "entries hides one bad entry.",
    ),
    when(
        lambda f: f.kind == "value" and f.case.info.get("tol"),
        "this case and its twin differ only in atol or rtol, and your verdict did "
        "not follow them: use the atol and rtol arguments as the task states.",
    ),
    when(
        lambda f: f.kind == "value" and f.case.info["zero_grad"],
        "this backward is right, and the true gradient is exactly 0 (adding b to "
        "every key shifts each score row by a constant). A check that divides by "
        "the size of the gradient (a relative error) divides rounding noise by ~0.",
    ),
    when(
        lambda f: f.kind == "value" and f.case.expected is True,
        "a correct backward failed your check. Check that backward and the finite "
        "differences use the same dout, in float64, with h = 1e-6.",
    ),
)

GRADIENT_CHECKER = Checker(
    title="gradient_check(forward, backward, x, rng, atol=1e-7, rtol=1e-6) -> bool",
    make_cases=_cases,
    outputs=("ok",),
    hints=HINTS,
    forbidden=answer_key.FINITE_DIFFERENCES + (_ref.numerical_grads, trusted_verdict),
    call="check_gradient_checker(gradient_check)",
)


def check_gradient_checker(fn, *, seed=None):
    """Check a student's ``gradient_check(forward, backward, x, rng, atol, rtol)``.

    It must say True for correct backward passes (including one whose true gradient
    is exactly 0) and False for wrong ones and near misses, and follow the atol and
    rtol it is given. Raises AssertionError unless it judges every case right.
    """
    __tracebackhide__ = True
    grade(GRADIENT_CHECKER, fn, seed=seed)

"""Checkers for exercise 07e: why does the key bias get no gradient?

Student signatures:
    score_change(q, k, b, scale) -> (..., N, M)
        how the scores S = scale q k^T change when b (d,) is added to every key:
        S(k + b) - S(k).
    bias_gradients(x, params, dout, n_heads, mask=None) -> dict
        {"b_q": float, "b_k": float, "b_v": float, "b_o": float}: the largest
        |gradient| of each bias of multi-head self-attention for these arrays
        (measured with the package's mha_forward / mha_backward).
    answers() -> dict with
        "rows_constant": bool   is every row of score_change constant?
        "zero_gradient": set    which of "b_q", "b_k", "b_v", "b_o" always get an
                                exactly zero gradient
        "with_mask": bool       is db_k still zero with a causal mask?

bias_gradients is checked on fresh random arrays at every run, so numbers copied
from an earlier run (or measured on other arrays) fail.
"""

import numpy as np

from . import _ref, answer_key
from .compare import Expect
from .framework import Case, Checker, grade
from .hints import kind, matches, raised, when
from .mha_checks import _inputs

BIASES = ("b_q", "b_k", "b_v", "b_o")


def _change_cases(rng):
    out = []
    for q_shape, k_shape in [((3, 4), (5, 4)), ((2, 3, 4), (2, 6, 4)),
                             ((2, 2, 3, 5), (2, 2, 4, 5))]:  # fmt: skip
        q, k = rng.standard_normal(q_shape), rng.standard_normal(k_shape)
        b, scale = rng.standard_normal(q_shape[-1]), float(rng.uniform(0.2, 1.0))
        kb_t, k_t = np.swapaxes(k + b, -1, -2), np.swapaxes(k, -1, -2)  # (..., d, M)
        expected = scale * (q @ kb_t) - scale * (q @ k_t)  # (..., N, M)
        name = f"q {q.shape}, k {k.shape}, b {b.shape}, scale {scale:.3f}"
        out.append(Case(name, (q, k, b, scale), expected))
    return out


CHANGE_HINTS = (
    when(
        lambda f: (
            kind("shape")(f)
            and np.size(f.got) * f.case.args[1].shape[-2] == np.size(f.case.expected)
        ),
        "return the full (..., N, M) change, one entry per query and key: you will "
        "see that every row is constant.",
    ),
    matches(
        lambda c: c.expected / c.args[3],
        "the scale is missing: the scores are scale q k^T.",
    ),
    matches(
        lambda c: -c.expected, "the sign is flipped: S(k + b) - S(k), not the reverse."
    ),
)

CHANGE = Checker(
    title="score_change(q, k, b, scale) -> (..., N, M)",
    make_cases=_change_cases,
    outputs=("change",),
    arg_names=("q", "k", "b"),
    hints=CHANGE_HINTS,
    forbidden=answer_key.REFERENCE,
    call="check_score_change(score_change)",
)


def _gradient_cases(rng):
    out = []
    for name, (B, N, D, H), mask in [
        ("no mask", (2, 4, 8, 2), None),
        ("causal mask", (1, 5, 6, 3), _ref.causal_allow(5, 5)),
        ("padding lengths [3, 4]", (2, 4, 8, 4), _ref.padding_allow([3, 4], 4)),
    ]:
        x, params = _inputs(rng, B, N, D)
        dout = rng.standard_normal(x.shape)
        grads = _ref.mha_backward(dout, x, params, H, mask)[1]
        expected = {n: float(np.abs(grads[n]).max()) for n in BIASES}
        expected["b_k"] = Expect(lambda g: 0 <= float(g) < 1e-9, "about 0 (< 1e-9)")
        info = {"grads": grads, "unmasked": _ref.mha_backward(dout, x, params, H)[1]}
        label = f"{name}: x {x.shape}, n_heads={H}"
        out.append(Case(label, (x, params, dout, H, mask), expected, info))
    return out


def _summary_of(c, reduce, grads="grads"):
    return {f"max_abs['{n}']": reduce(c.info[grads][n]) for n in BIASES}


GRADIENT_HINTS = (
    when(
        kind("key", "count"),
        "return a dict with the keys b_q, b_k, b_v and b_o, one number each.",
    ),
    matches(
        lambda c: _summary_of(c, lambda g: np.abs(g).max(), grads="unmasked"),
        "these are the gradients without the mask: pass `mask` to mha_forward.",
    ),
    matches(
        lambda c: _summary_of(c, np.max),
        "take the largest ABSOLUTE value, np.abs(g).max(): a gradient can be negative.",
    ),
    matches(
        lambda c: _summary_of(c, lambda g: np.abs(g).mean()),
        "the task asks for the largest |gradient| (max), not the mean.",
    ),
    when(
        lambda f: f.kind == "value" and f.name != "max_abs['b_k']",
        "measure the gradients of the arrays passed to bias_gradients (x, params, "
        "dout, n_heads, mask): they are new at every call, so numbers from another "
        "run or other arrays do not fit.",
    ),
)

GRADIENTS = Checker(
    title="bias_gradients(x, params, dout, n_heads, mask=None) -> dict",
    make_cases=_gradient_cases,
    outputs=("max_abs",),
    arg_names=("x", "params", "dout", "n_heads", "mask"),
    hints=GRADIENT_HINTS,
    forbidden=answer_key.REFERENCE,
    call="check_bias_gradients(bias_gradients)",
    rtol=1e-6,
)


QUESTIONS = {
    "rows_constant": ("is every row of score_change constant?", True),
    "zero_gradient": ("which biases always get zero gradient?", {"b_k"}),
    "with_mask": ("is db_k still zero with a causal mask?", True),
}


def _answer_cases(rng):
    return [
        Case(f"{key} ({question})", (key,), expected)
        for key, (question, expected) in QUESTIONS.items()
    ]


def _says(name):
    return lambda f: f.case.args[0] == "zero_gradient" and name in set(f.got)


ANSWER_HINTS = (
    raised(
        r"KeyError",
        "answers() must return a dict with the keys rows_constant, zero_gradient "
        "and with_mask.",
    ),
    when(
        _says("b_v"), "b_v does get a gradient: look at what bias_gradients measured."
    ),
    when(
        _says("b_q"), "b_q does get a gradient: look at what bias_gradients measured."
    ),
    when(
        _says("b_o"), "b_o does get a gradient: look at what bias_gradients measured."
    ),
    when(
        lambda f: f.case.args[0] == "zero_gradient",
        "which bias had a largest |gradient| of about 1e-16 in every case?",
    ),
    when(
        lambda f: f.case.args[0] == "rows_constant",
        "print score_change(q, k, b, scale) for small inputs and look along a row.",
    ),
    when(
        lambda f: f.case.args[0] == "with_mask",
        "run bias_gradients with mask=causal_mask(N) and look at b_k.",
    ),
)


def _one_answer(fn):
    """The function each case calls: one question of ``fn()``'s dict."""

    def one_answer(key):
        return fn()[key]

    return one_answer


ANSWERS = Checker(
    title="answers() -> dict",
    make_cases=_answer_cases,
    outputs=("answer",),
    hints=ANSWER_HINTS,
    call="check_answers(answers)",
    adapt=_one_answer,
)


def check_score_change(fn, *, seed=None):
    """Check ``score_change(q, k, b, scale)``: S(k + b) - S(k), (..., N, M), for
    S = scale q k^T. Raises AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(CHANGE, fn, seed=seed)


def check_bias_gradients(fn, *, seed=None):
    """Check ``bias_gradients(x, params, dout, n_heads, mask=None)`` on fresh random
    arrays: the largest |gradient| of b_q, b_v, b_o exactly, b_k about 0. Raises
    AssertionError unless every case passes."""
    __tracebackhide__ = True
    grade(GRADIENTS, fn, seed=seed)


def check_answers(fn, *, seed=None):
    """Check ``answers()``, the dict described in this module's docstring. Raises
    AssertionError unless every answer is right."""
    __tracebackhide__ = True
    grade(ANSWERS, fn, seed=seed)

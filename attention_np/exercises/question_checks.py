"""Checker for exercise 10: why does the key bias get no gradient?

Student signatures:
    score_change(q, k, b, scale) -> (..., N, M)
        how the scores S = scale q k^T change when b (d,) is added to every key:
        S(k + b) - S(k).
    answers() -> dict with
        "rows_constant": bool   is every row of score_change constant?
        "db_k_max": float       max |grads['b_k']| measured with mha_backward
        "db_v_max": float       max |grads['b_v']| measured the same way
        "zero_gradient": set    which of "b_q", "b_k", "b_v", "b_o" always get an
                                exactly zero gradient
        "with_mask": bool       is db_k still zero with a causal mask?
"""

import numpy as np

from .compare import Expect
from .framework import Case, Checker, run_checks
from .hints import kind, matches, raised, when


def _change_cases(rng):
    out, scale = [], 0.5
    for q_shape, k_shape in [((3, 4), (5, 4)), ((2, 3, 4), (2, 6, 4))]:
        q, k = rng.standard_normal(q_shape), rng.standard_normal(k_shape)
        b = rng.standard_normal(4)
        kb_t, k_t = np.swapaxes(k + b, -1, -2), np.swapaxes(k, -1, -2)  # (..., d, M)
        expected = scale * (q @ kb_t) - scale * (q @ k_t)  # (..., N, M)
        name = f"q {q.shape}, k {k.shape}, b {b.shape}, scale {scale}"
        out.append(Case(name, (q, k, b, scale), expected))
    return out


CHANGE_HINTS = (
    when(
        lambda f: (
            kind("shape")(f)
            and np.size(f.got) * f.case.args[1].shape[-2] == np.size(f.case.expected)
        ),
        "right numbers, but return the full (..., N, M) change, one entry per "
        "query and key: you will see that every row is constant.",
    ),
    matches(
        lambda c: c.expected / c.args[3],
        "the scale is missing: S = scale q k^T, so the change is scale q b^T.",
    ),
)

CHANGE = Checker(
    title="score_change(q, k, b, scale) -> (..., N, M)",
    make_cases=_change_cases,
    outputs=("change",),
    arg_names=("q", "k", "b"),
    hints=CHANGE_HINTS,
    fallback="S(k + b) - S(k) = scale q (k + b)^T - scale q k^T = scale (q b) "
    "repeated along the key axis.",
)


QUESTIONS = {
    "rows_constant": ("is every row of score_change constant?", True),
    "db_k_max": (
        "max |db_k| from mha_backward",
        Expect(lambda g: 0 <= float(g) < 1e-9, "about 0 (below 1e-9)"),
    ),
    "db_v_max": (
        "max |db_v| from mha_backward",
        Expect(lambda g: float(g) > 1e-3, "clearly not 0"),
    ),
    "zero_gradient": ("which biases always get zero gradient?", {"b_k"}),
    "with_mask": ("is db_k still zero with a causal mask?", True),
}


def _answer_cases(rng):
    return [
        Case(f"{key} ({question})", (key,), expected)
        for key, (question, expected) in QUESTIONS.items()
    ]


def _answer(name, pred):
    """Test: the failing answer is ``name`` and pred(its value) holds."""
    return lambda f: f.case.args[0] == name and f.got is not None and pred(f.got)


def _says(name):
    return _answer("zero_gradient", lambda got: name in set(got))


ANSWER_HINTS = (
    raised(
        r"KeyError",
        "answers() must return a dict with the keys rows_constant, db_k_max, "
        "db_v_max, zero_gradient and with_mask.",
    ),
    when(
        _answer("rows_constant", lambda g: True),
        "print score_change(q, k, b, scale) for small inputs: every entry of row i "
        "equals scale * q_i . b, whatever the key.",
    ),
    when(
        _answer("db_k_max", lambda g: True),
        "run mha_forward and mha_backward with a random dout and take "
        "np.abs(grads['b_k']).max(): it is rounding noise, around 1e-16.",
    ),
    when(
        _answer("db_v_max", lambda g: True),
        "take np.abs(grads['b_v']).max() from mha_backward: b_v moves every value, "
        "so each output row moves by b_v (its weights sum to 1).",
    ),
    when(
        _says("b_v"),
        "b_v does get gradient: adding b_v to every value adds b_v to every output "
        "row, because each row of weights sums to 1.",
    ),
    when(
        _says("b_q"),
        "b_q does get gradient: it changes score (i, j) by scale * b_q . k_j, which "
        "differs from key to key, so the weights change.",
    ),
    when(
        _says("b_o"),
        "b_o does get gradient: it is added to the output, db_o = dout summed over "
        "batch and positions.",
    ),
    when(
        _answer("zero_gradient", lambda g: "b_k" not in set(g)),
        "look at score_change: b_k adds the same number scale * q_i . b_k to every "
        "score of row i, and softmax ignores a constant shift of a row.",
    ),
    when(
        _answer("with_mask", lambda g: True),
        "a mask removes keys, but every remaining key of a row still gets the same "
        "shift, so softmax still ignores it; try it with causal_mask.",
    ),
)

ANSWERS = Checker(
    title="answers() -> dict",
    make_cases=_answer_cases,
    outputs=("answer",),
    hints=ANSWER_HINTS,
    fallback="compare your answers with what your code printed above.",
)


def check_key_bias(score_change_fn, answers_fn):
    """Check exercise 10: ``score_change(q, k, b, scale)`` and ``answers()``.

    score_change returns S(k + b) - S(k) (..., N, M) for S = scale q k^T; answers
    returns the dict described in this module's docstring. Returns True when both
    pass.
    """
    one_answer = lambda key: answers_fn()[key]  # one case per question
    return run_checks([(CHANGE, score_change_fn), (ANSWERS, one_answer)])

"""Checkers for exercise 01 (stable softmax) and 02 (softmax backward).

Student signatures:
    softmax(x) -> y                 x (..., M) scores, softmax over the last axis;
                                    -inf entries get weight 0, an all -inf row -> 0
    softmax_backward(dy, y) -> dx   dy, y (..., M); y = softmax(x); dx (..., M)
"""

import numpy as np

from ..gradcheck import numerical_grad
from ..softmax import softmax_backward, softmax_forward
from .framework import Case, Checker
from .hints import in_rows, kind, matches, nonfinite_case, nonfinite_in_rows, when

INF = np.inf


def _ref(x):
    return softmax_forward(x)[0]


def _rowmax(x):
    m = np.max(x, axis=-1, keepdims=True)  # (..., 1)
    return np.where(np.isfinite(m), m, 0.0)


def _softmax_cases(rng):
    masked = rng.standard_normal((3, 4))
    masked[0, 1], masked[2, [0, 3]] = -INF, -INF
    empty = rng.standard_normal((3, 4))
    empty[1] = -INF
    large = np.array([[1e4, 1e4 - 1, 1e4 - 3], [1.0, 2.0, 0.5], [-1e4, -1e4 + 1, -1e4]])
    cases = [
        ("random rows", rng.standard_normal((3, 5)), {}),
        ("batch of matrices", 3 * rng.standard_normal((2, 3, 4)), {}),
        ("some entries -inf (masked)", masked, {}),
        ("scores of 1e4 and -1e4", large, {"large": True}),
        ("a row that is all -inf (fully masked)", empty, {}),
        ("one entry per row", rng.standard_normal((4, 1)), {}),
    ]
    out = []
    for name, x, info in cases:
        info["empty_rows"] = np.all(x == -INF, axis=-1)  # (...,) rows with no key
        info["small_rows"] = np.max(np.abs(x), axis=-1) < 100  # (...,)
        out.append(Case(f"{name}, x {x.shape}", (x,), _ref(x), info))
    return out


def _no_normalisation(c):
    (x,) = c.args
    return np.exp(x - _rowmax(x))


def _global_sum(c):
    e = _no_normalisation(c)
    return e / e.sum()


def _other_axis(c):
    return np.swapaxes(_ref(np.swapaxes(c.args[0], -1, -2)), -1, -2)


SOFTMAX_HINTS = (
    when(
        nonfinite_in_rows("empty_rows"),
        "a row where every entry is -inf (every key masked) has max = -inf, and "
        "-inf - (-inf) = NaN. Replace a -inf row max by 0 and divide by 1 where the "
        "row sum is 0, so the whole row comes out as zeros.",
    ),
    when(
        lambda f: (
            f.case.info.get("large", False)
            and in_rows("small_rows", ("nonfinite", "value"))(f)
        ),
        "this row has small scores but came out wrong (NaN or 0): you subtracted "
        "the max of the whole array. Subtract each row's own max: "
        "x.max(axis=-1, keepdims=True).",
    ),
    when(
        nonfinite_case("large"),
        "exp(1e4) overflows to inf (and exp(-1e4) underflows to 0), giving inf/inf "
        "or 0/0 = NaN. Subtract each row's max before exp: softmax is unchanged by "
        "a shift, and then the largest exp is exactly 1.",
    ),
    matches(
        _other_axis,
        "softmax over the wrong axis: normalise over the LAST axis (axis=-1), so "
        "each row (one query's scores over the keys) sums to 1.",
    ),
    matches(
        _no_normalisation,
        "the rows do not sum to 1: divide exp(x - max) by its row sum.",
    ),
    matches(
        _global_sum,
        "you divided by the sum of the whole array; sum each row only: "
        "e.sum(axis=-1, keepdims=True).",
    ),
    when(
        kind("shape"),
        "y must have the shape of x. If a row max or sum lost its axis, the "
        "division broadcast the wrong way: use keepdims=True.",
    ),
    matches(
        lambda c: np.log(_ref(c.args[0])),
        "you returned log-softmax (x - logsumexp); softmax is its exp.",
    ),
)

SOFTMAX = Checker(
    title="softmax(x) -> y",
    make_cases=_softmax_cases,
    outputs=("y",),
    arg_names=("x",),
    hints=SOFTMAX_HINTS,
    fallback="y = exp(x - max) / sum(exp(x - max)), every reduction over axis=-1.",
)


def check_softmax(fn):
    """Check a student's ``softmax(x) -> y`` (softmax over the last axis).

    x (..., M) scores; -inf entries must get weight 0 and an all -inf row must give
    zeros (no NaN). Returns True when every case passes.
    """
    return SOFTMAX.run(fn)


def _backward_cases(rng):
    out = []
    for case in _softmax_cases(rng):
        if case.info.get("large"):
            continue  # softmax's backward only sees y, so large scores add nothing
        (x,) = case.args
        y, cache = softmax_forward(x)
        dy = rng.standard_normal(x.shape)  # random, never ones
        fd = numerical_grad(_ref, x, dy)
        info = {"empty_rows": case.info["empty_rows"], "y": y, "dy": dy}
        name = case.name.replace(", x (", ", dy and y (")
        out.append(Case(name, (dy, y), softmax_backward(dy, cache), info, fd))
    return out


def _bwd(term):
    """Variant backward from a formula term(dy, y)."""
    return lambda c: term(*c.args)


def _rowsum(a, axis=-1):
    return np.sum(a, axis=axis, keepdims=True)


SOFTMAX_BACKWARD_HINTS = (
    when(
        nonfinite_in_rows("empty_rows"),
        "masked entries have y = 0: never divide by y or take log(y). "
        "dx = y * (dy - sum(dy * y)) needs neither.",
    ),
    matches(
        _bwd(lambda dy, y: dy * y * (1 - y)),
        "you kept only the diagonal of the Jacobian, y_i (1 - y_i). Its off-diagonal "
        "entries -y_i y_j add up to -y_i sum_j dy_j y_j: "
        "dx = y * (dy - sum(dy * y, axis=-1, keepdims=True)).",
    ),
    matches(
        _bwd(lambda dy, y: y * (dy - _rowsum(dy * y, axis=-2))),
        "the row sum is over the wrong axis: sum(dy * y) runs over the last axis "
        "(axis=-1), the one softmax normalised.",
    ),
    matches(
        _bwd(lambda dy, y: y * (dy - _rowsum(dy))),
        "inside the sum, weight dy by y: sum(dy * y, axis=-1), not sum(dy).",
    ),
    matches(
        _bwd(lambda dy, y: dy - _rowsum(dy * y)),
        "multiply by y at the end: dx = y * (dy - sum(dy * y)).",
    ),
    matches(
        _bwd(lambda dy, y: y * (_rowsum(dy * y) - dy)),
        "the sign is flipped: dx = y * (dy - sum(dy * y)).",
    ),
    matches(
        _bwd(lambda dy, y: dy * y),
        "dy * y is only the exp part; the normalisation adds -y * sum(dy * y).",
    ),
)

SOFTMAX_BACKWARD = Checker(
    title="softmax_backward(dy, y) -> dx",
    make_cases=_backward_cases,
    outputs=("dx",),
    arg_names=("dy", "y"),
    hints=SOFTMAX_BACKWARD_HINTS,
    fallback="dx = y * (dy - sum(dy * y, axis=-1, keepdims=True)).",
)


def check_softmax_backward(fn):
    """Check a student's ``softmax_backward(dy, y) -> dx``.

    dy (..., M) upstream gradient, y (..., M) = softmax(x); dx (..., M) must equal
    the reference and central finite differences. Returns True when all cases pass.
    """
    return SOFTMAX_BACKWARD.run(fn)

"""Checkers for exercises 01a (stable softmax) and 07a (softmax backward).

Student signatures:
    softmax(x) -> y                   x (..., M) scores, softmax over the last axis;
                                      -inf entries get weight 0, an all -inf row -> 0
    softmax_backward(dout, y) -> dx   dout, y (..., M); y = softmax(x); dx (..., M)
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, matches_any, when

INF = np.inf


def _softmax_cases(rng):
    g = rng.standard_normal
    masked = g((3, 4))
    masked[0, rng.integers(4)] = -INF  # a masked entry per row, two in the last
    masked[1, rng.integers(4)] = -INF
    masked[2, rng.permutation(4)[:2]] = -INF
    large = np.stack([1e4 + 3 * g(3), g(3), -1e4 + 3 * g(3)])  # (3, 3)
    empty = g((2, 3, 4))
    empty[1, rng.integers(3)] = -INF  # one row of batch 1: every key masked
    cases = [
        ("random rows", 2.0 * g((3, 5)), {}),
        ("batch and heads", 3.0 * g((2, 3, 4, 5)), {}),
        ("some entries -inf (masked)", masked, {}),
        ("scores of 1e4, ordinary and -1e4 rows", large, {"large": True}),
        ("a row that is all -inf (fully masked)", empty, {}),
        ("one entry per row", g((4, 1)), {}),
    ]
    out = []
    for name, x, info in cases:
        info["empty_rows"] = np.all(x == -INF, axis=-1)  # (...,) rows with no key
        out.append(Case(f"{name}, x {x.shape}", (x,), _ref.softmax(x), info))
    return out


def _normalise(e, guarded):
    s = e.sum(axis=-1, keepdims=True)  # (..., 1)
    return e / np.where(s == 0, 1.0, s) if guarded else e / s


def _shifted(c, shift, guarded=True):
    (x,) = c.args
    with np.errstate(all="ignore"):
        return _normalise(np.exp(x - shift(x)), guarded)


def _no_shift(c):
    return [_shifted(c, lambda x: 0.0, g) for g in (True, False)]


def _global_max(c):
    return [_shifted(c, lambda x: np.max(x), g) for g in (True, False)]


def _unguarded_max(c):
    return _shifted(c, lambda x: np.max(x, axis=-1, keepdims=True), guarded=False)


def _unnormalised(c):
    (x,) = c.args
    return np.exp(x - _ref.row_shift(x))


def _other_axis(c):
    return np.swapaxes(_ref.softmax(np.swapaxes(c.args[0], -1, -2)), -1, -2)


def _each(variants):
    return lambda c: [{"y": v} for v in variants(c)]


SOFTMAX_HINTS = (
    matches(
        _unguarded_max,
        "a row where every entry is -inf (every key masked) has max = -inf, and "
        "-inf - (-inf) = NaN; its sum is 0, and 0 / 0 = NaN too. Such a row must "
        "come out as zeros: treat its max as 0 and its sum as 1.",
    ),
    matches_any(
        _each(_no_shift),
        "exp(1e4) overflows to inf (and exp(-1e4) underflows to 0), giving inf/inf "
        "or 0/0 = NaN. Subtract each row's max before exp: softmax is unchanged by "
        "a shift, and then the largest exp is exactly 1.",
    ),
    matches_any(
        _each(_global_max),
        "the ordinary rows came out wrong: you subtracted the max of the whole "
        "array, and exp(x - 1e4) underflows to 0 there. Subtract each row's own max.",
    ),
    matches(
        _other_axis,
        "softmax over the wrong axis: normalise over the LAST axis (axis=-1), so "
        "each row (one query's scores over the keys) sums to 1.",
    ),
    matches(
        _unnormalised,
        "the rows do not sum to 1: divide each exp by the sum of its row.",
    ),
    matches(
        lambda c: _unnormalised(c) / _unnormalised(c).sum(),
        "you divided by the sum of the whole array; divide by each row's own sum.",
    ),
    matches(
        lambda c: np.log(_ref.softmax(c.args[0])),
        "you returned log-softmax (x - logsumexp); softmax is its exp.",
    ),
)

SOFTMAX = Checker(
    title="softmax(x) -> y",
    make_cases=_softmax_cases,
    outputs=("y",),
    arg_names=("x",),
    hints=SOFTMAX_HINTS,
    forbidden=answer_key.SOFTMAX + answer_key.REFERENCE,
    call="check_softmax(softmax)",
)


def check_softmax(fn, *, seed=None):
    """Check a student's ``softmax(x) -> y`` (softmax over the last axis).

    x (..., M) scores; -inf entries must get weight 0 and an all -inf row must give
    zeros (no NaN). Prints one line per case; raises AssertionError unless every
    case passes. ``seed`` repeats the cases of an earlier run.
    """
    __tracebackhide__ = True
    grade(SOFTMAX, fn, seed=seed)


def _backward_cases(rng):
    out = []
    for case in _softmax_cases(rng):
        if case.info.get("large"):
            continue  # softmax's backward only sees y, so large scores add nothing
        (x,) = case.args
        y = _ref.softmax(x)
        dout = rng.standard_normal(x.shape)  # random, never ones
        fd = _ref.numerical_grads(lambda p: _ref.softmax(p["x"]), {"x": x}, dout)["x"]
        info = {"empty_rows": case.info["empty_rows"]}
        name = case.name.replace(", x (", ", dout and y (")
        out.append(Case(name, (dout, y), _ref.softmax_backward(dout, y), info, fd))
    return out


def _bwd(term):
    """Variant backward from a formula term(dout, y)."""
    return lambda c: term(*c.args)


def _rowsum(a, axis=-1):
    return np.sum(a, axis=axis, keepdims=True)


SOFTMAX_BACKWARD_HINTS = (
    matches(
        _bwd(lambda dout, y: dout * y * (1 - y)),
        "you kept only the diagonal of the Jacobian, y_i (1 - y_i). Its off-diagonal "
        "entries -y_i y_j contribute too: every dout_i reaches every x_j.",
    ),
    matches(
        _bwd(lambda dout, y: y * (dout - _rowsum(dout * y, axis=-2))),
        "the row sum is over the wrong axis: it runs over the last axis (axis=-1), "
        "the one softmax normalised.",
    ),
    matches(
        _bwd(lambda dout, y: y * (dout - _rowsum(dout))),
        "inside the row sum, weight dout by y (see the formula for dx_j).",
    ),
    matches(
        _bwd(lambda dout, y: dout - _rowsum(dout * y)),
        "the factor y_j in front of the bracket is missing.",
    ),
    matches(
        _bwd(lambda dout, y: y * (_rowsum(dout * y) - dout)),
        "the sign is flipped: compare with the formula for dx_j.",
    ),
    matches(
        _bwd(lambda dout, y: dout * y),
        "dout * y is only the diagonal part y_j dout_j; the normalisation adds a "
        "term with the row sum.",
    ),
    when(
        lambda f: f.kind == "nonfinite" and bool(f.case.info["empty_rows"].any()),
        "dx is NaN or inf in a fully masked row, where every y is 0: something "
        "divides by y or takes its log. The formula needs neither.",
    ),
)

SOFTMAX_BACKWARD = Checker(
    title="softmax_backward(dout, y) -> dx",
    make_cases=_backward_cases,
    outputs=("dx",),
    arg_names=("dout", "y"),
    hints=SOFTMAX_BACKWARD_HINTS,
    forbidden=answer_key.SOFTMAX_BACKWARD + answer_key.REFERENCE,
    call="check_softmax_backward(softmax_backward)",
)


def check_softmax_backward(fn, *, seed=None):
    """Check a student's ``softmax_backward(dout, y) -> dx``.

    dout (..., M) upstream gradient, y (..., M) = softmax(x); dx (..., M) must equal
    the reference and central finite differences. Raises AssertionError unless every
    case passes.
    """
    __tracebackhide__ = True
    grade(SOFTMAX_BACKWARD, fn, seed=seed)

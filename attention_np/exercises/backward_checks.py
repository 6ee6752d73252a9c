"""Checker for exercise 07b: the backward pass of scaled dot-product attention.

Student signature:
    attention_backward(dout, q, k, v, P) -> (dq, dk, dv)
        dout (..., N, d_v) upstream gradient; q (..., N, d), k (..., M, d),
        v (..., M, d_v) the forward's inputs; P (..., N, M) its weights
        softmax(q k^T / sqrt(d), masked) (0 where masked). Returns gradients with the
        shapes of q, k and v.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, nonfinite_in_rows, shape_swaps_axes, when

OUTPUTS = ("dq", "dk", "dv")


def _case(name, rng, q, k, v, allow=None):
    out, P = _ref.attention(q, k, v, allow)
    dout = rng.standard_normal(out.shape)  # random, never ones
    expected = _ref.attention_backward(dout, q, k, v, P)
    forward = lambda p: _ref.attention(p["q"], p["k"], p["v"], allow)[0]
    fd = _ref.numerical_grads(forward, {"q": q, "k": k, "v": v}, dout)
    info = {"N": q.shape[-2], "M": k.shape[-2], "scale": 1 / np.sqrt(q.shape[-1])}
    info["empty_rows"] = ~np.any(P > 0, axis=-1)  # (..., N)
    shapes = f"q {q.shape}, k {k.shape}, v {v.shape}"
    fd = tuple(fd[n] for n in "qkv")
    return Case(f"{name}: {shapes}", (dout, q, k, v, P), expected, info, fd)


def _backward_cases(rng):
    g = rng.standard_normal
    allow = (np.arange(5)[None, :] <= np.arange(4)[:, None] + 1) & (
        rng.random((2, 4, 5)) > 0.3
    )
    allow[1, rng.integers(4)] = False  # one query of batch 1 may attend to nothing
    return [
        _case("square, N = M = d = d_v", rng, g((4, 4)), g((4, 4)), g((4, 4))),
        _case("one head, N != M", rng, g((3, 4)), g((5, 4)), g((5, 2))),
        _case(
            "batch and heads", rng, g((2, 2, 3, 4)), g((2, 2, 5, 4)), g((2, 2, 5, 6))
        ),
        _case("masked, with a fully masked row", rng, g((2, 4, 3)), g((2, 5, 3)),
              g((2, 5, 2)), allow),
    ]  # fmt: skip


def _t(x):
    return np.swapaxes(x, -1, -2)


def _dS(c, *, row_axis=-1, dP=None):
    """dS with a planted change: the row sum over another axis, or another dP."""
    dout, q, k, v, P = c.args
    dP = dout @ _t(v) if dP is None else dP  # (..., N, M)
    return P * (dP - np.sum(dP * P, axis=row_axis, keepdims=True))


def _dq_dk(c, dS, scale=None):
    _, q, k, _, _ = c.args
    scale = c.info["scale"] if scale is None else scale
    return {"dq": scale * dS @ k, "dk": scale * _t(dS) @ q}


BACKWARD_HINTS = (
    when(
        nonfinite_in_rows("empty_rows"),
        "NaN or inf in a fully masked row, where P = 0: something divides by P or "
        "takes its log. The backward needs neither.",
    ),
    when(
        shape_swaps_axes,
        "a transpose is missing: each gradient has its input's shape (dq like q, "
        "dk like k, dv like v).",
    ),
    matches(
        lambda c: {"dv": c.args[4] @ c.args[0]},
        "forward: out = P v, so dv needs P transposed.",
    ),
    matches(
        lambda c: {"dk": c.info["scale"] * _dS(c) @ c.args[1]},
        "forward: S = scale q k^T, so dk needs dS transposed.",
    ),
    matches(
        lambda c: {"dq": c.info["scale"] * _t(_dS(c)) @ c.args[2]},
        "forward: S = scale q k^T, so dq = scale dS k, with no transpose on dS.",
    ),
    matches(
        lambda c: _dq_dk(c, _dS(c), scale=1.0),
        "the scale is missing: S = scale q k^T with scale = 1/sqrt(d), so dq and dk "
        "both carry the factor scale.",
    ),
    matches(
        lambda c: _dq_dk(c, c.args[4] * (c.args[0] @ _t(c.args[3]))),
        "the softmax backward lost its row term: dS is not just P * dP (exercise 07a).",
    ),
    matches(
        lambda c: _dq_dk(c, _dS(c, row_axis=-2)),
        "the softmax row sum runs over the wrong axis: it sums over the keys, the "
        "last axis.",
    ),
    matches(
        lambda c: _dq_dk(c, _dS(c, dP=c.args[0] @ c.args[3])),
        "forward: out = P v, so dP needs v transposed.",
    ),
)

ATTENTION_BACKWARD = Checker(
    title="attention_backward(dout, q, k, v, P) -> (dq, dk, dv)",
    make_cases=_backward_cases,
    outputs=OUTPUTS,
    arg_names=("dout", "q", "k", "v", "P"),
    hints=BACKWARD_HINTS,
    forbidden=answer_key.ATTENTION_BACKWARD
    + answer_key.ATTENTION
    + answer_key.SOFTMAX_BACKWARD
    + answer_key.REFERENCE,
    call="check_attention_backward(attention_backward)",
)


def check_attention_backward(fn, *, seed=None):
    """Check a student's ``attention_backward(dout, q, k, v, P) -> (dq, dk, dv)``.

    dout (..., N, d_v); q (..., N, d), k (..., M, d), v (..., M, d_v); P (..., N, M)
    the forward's weights (0 where masked); scale = 1/sqrt(d). Each gradient is
    compared with the reference backward and with central finite differences.
    Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(ATTENTION_BACKWARD, fn, seed=seed)

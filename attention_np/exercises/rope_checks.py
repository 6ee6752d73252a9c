"""Checker for exercise 11: rotary position embedding (RoPE), interleaved pairs.

Student signature:
    rope(x, positions=None, base=10000.0) -> x_rotated
        x (..., N, d), d even; positions broadcastable to (..., N), default 0..N-1.
        Pair i = (x_2i, x_2i+1) of the row at position m is rotated by the angle
        m theta_i with theta_i = base^(-2i/d), i = 0 .. d/2 - 1 (RoFormer layout);
        x_rotated has the shape of x.

Every planted mistake below is the package's ``rope_forward`` called with a changed
argument: a wrong exponent is a different base, a rotation the wrong way round is
the negated positions, the rotate-half layout is ``layout="half"``.
"""

import numpy as np

from ..positional import rope_forward
from .framework import Case, Checker
from .hints import matches, matches_any, when


def _case(name, x, positions=None, base=10000.0):
    expected = rope_forward(x, positions, base=base)[0]
    pos = (
        "default positions"
        if positions is None
        else f"positions {np.asarray(positions).tolist()}"
    )
    label = f"{name}: x {x.shape}, {pos}" + (
        "" if base == 10000.0 else f", base {base}"
    )
    return Case(label, (x, positions, base), expected)


def _cases(rng):
    g = rng.standard_normal
    return [
        _case("one sequence", g((5, 8))),
        _case("batch and heads", g((2, 3, 4, 6))),
        _case("a KV-cache step", g((2, 1, 8)), np.array([9])),
        _case("explicit positions", g((3, 4)), np.array([2, 30, 400])),
        _case("a small base rotates faster", g((4, 6)), None, 100.0),
        _case("d = 2, a single pair", g((6, 2))),
    ]


def _positions(c):
    x, positions, _ = c.args
    return np.arange(x.shape[-2]) if positions is None else np.asarray(positions)


def _rope(c, *, positions=None, base=None, layout="interleaved"):
    """The reference with one argument changed (a planted mistake)."""
    x, _, b = c.args
    pos = _positions(c) if positions is None else positions
    return rope_forward(x, pos, base=b if base is None else base, layout=layout)[0]


def _wrong_frequencies(c):
    """theta_i with a wrong exponent, written as the reference with another base or
    scaled positions: base^(-i/d), base^(-4i/d), base^(+2i/d), i counted from 1."""
    x, _, b = c.args
    d = x.shape[-1]
    variants = [
        _rope(c, base=np.sqrt(b)),
        _rope(c, base=b**2),
        _rope(c, base=1.0 / b),
        _rope(c, positions=_positions(c) * b ** (-2.0 / d)),
    ]
    return [{"x_rotated": v} for v in variants]


def _overwritten_first(c):
    """The second entry of each pair computed from the already rotated first one."""
    x = c.args[0]
    y, (cos, sin, *_) = rope_forward(x, _positions(c), base=c.args[2])
    y = y.copy()
    y[..., 1::2] = y[..., 0::2] * sin + x[..., 1::2] * cos
    return y


def _norm_changed(f):
    x, got = f.case.args[0], np.asarray(f.got, dtype=float)
    if got.shape != x.shape:
        return False
    return not np.allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1))


HINTS = (
    matches(
        _overwritten_first,
        "the second entry of a pair used the already rotated first entry: compute "
        "both from the ORIGINAL pair, a' = a cos - b sin and b' = a sin + b cos "
        "(keep a copy of a, or write into a new array).",
    ),
    matches(
        lambda c: _rope(c, layout="half"),
        "you rotated the pairs (x_i, x_{i + d/2}) (the rotate-half layout of "
        "GPT-NeoX / LLaMA code); this exercise uses RoFormer's interleaved pairs "
        "(x_2i, x_2i+1): a = x[..., 0::2], b = x[..., 1::2].",
    ),
    matches(
        lambda c: _rope(c, positions=-_positions(c)),
        "you rotated the wrong way round (by -m theta_i): the rotation is "
        "a' = a cos - b sin, b' = a sin + b cos.",
    ),
    matches_any(
        _wrong_frequencies,
        "the frequencies are wrong: pair i (dims 2i and 2i+1, i = 0 .. d/2 - 1) "
        "turns at theta_i = base ** (-2 * i / d), e.g. "
        "base ** (-np.arange(0, d, 2) / d). The first pair has theta_0 = 1.",
    ),
    matches(
        lambda c: _rope(c, positions=_positions(c) + 1),
        "positions start at 0: the first row is not rotated at all "
        "(np.arange(N), not np.arange(1, N + 1)).",
    ),
    matches(
        lambda c: _rope(c, positions=np.arange(c.args[0].shape[-2])),
        "use the `positions` argument when it is given (a KV-cache step passes the "
        "absolute position of its token, e.g. [9]); default to np.arange(N) only "
        "when it is None.",
    ),
    when(
        _norm_changed,
        "a rotation keeps the length of every row, but yours changed it: each pair "
        "(a, b) must become (a cos - b sin, a sin + b cos), with the SAME angle in "
        "the cos and the sin.",
    ),
)

ROPE = Checker(
    title="rope(x, positions=None, base=10000.0) -> x_rotated",
    make_cases=_cases,
    outputs=("x_rotated",),
    arg_names=("x", "positions"),
    hints=HINTS,
    fallback="angles = positions[..., None] * theta, shape (..., N, d/2); "
    "a, b = x[..., 0::2], x[..., 1::2]; out[..., 0::2] = a cos - b sin; "
    "out[..., 1::2] = a sin + b cos.",
)


def check_rope(fn):
    """Check a student's ``rope(x, positions=None, base=10000.0) -> x_rotated``.

    x (..., N, d) with d even; pair (x_2i, x_2i+1) at position m is rotated by
    m * base^(-2i/d); positions default to 0..N-1. Returns True when every case
    passes.
    """
    return ROPE.run(fn)

"""Checker for exercise 08a: rotary position embedding (RoPE), interleaved pairs.

Student signature:
    rope(x, positions=None, base=10000.0) -> x_rotated
        x (..., N, d), d even; positions broadcastable to x.shape[:-1] (e.g. (N,),
        (B, N) for a batch of sequences with their own positions, (B, 1, N) for
        (B, H, N, d) queries), default 0..N-1. Pair i = (x_2i, x_2i+1) of the row
        at position m is rotated by the angle m theta_i with
        theta_i = base^(-2i/d), i = 0 .. d/2 - 1 (RoFormer layout); x_rotated has
        the shape of x.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, matches_any, when


def _positions(x, positions):
    return np.arange(x.shape[-2]) if positions is None else np.asarray(positions)


def _case(name, x, positions=None, base=10000.0):
    expected = _ref.rope(x, _positions(x, positions), base)
    pos = "default positions" if positions is None else (
        f"positions {np.asarray(positions).shape}"
        if np.ndim(positions) > 1 else f"positions {np.asarray(positions).tolist()}"
    )  # fmt: skip
    label = f"{name}: x {x.shape}, {pos}" + (
        "" if base == 10000.0 else f", base {base}"
    )
    return Case(label, (x, positions, base), expected, {"nd": np.ndim(positions) > 1})


def _cases(rng):
    g = rng.standard_normal
    starts = rng.integers(0, 20, size=(2, 1))  # e.g. left-padded sequences
    return [
        _case("one sequence", g((5, 8))),
        _case("batch and heads", g((2, 3, 4, 6))),
        _case("a KV-cache step", g((2, 1, 8)), np.array([int(rng.integers(5, 50))])),
        _case("explicit positions", g((3, 4)), rng.choice(500, size=3, replace=False)),
        _case("each sequence its own positions", g((2, 4, 6)), starts + np.arange(4)),
        _case("heads share their sequence's positions", g((2, 3, 4, 4)),
              (starts + np.arange(4))[:, None, :]),
        _case("a small base rotates faster", g((4, 6)), None, 100.0),
        _case("d = 2, a single pair", g((6, 2))),
    ]  # fmt: skip


def _rope(c, *, positions=None, base=None, layout="interleaved"):
    """The reference with one argument changed (a planted mistake)."""
    x, pos, b = c.args
    pos = _positions(x, pos) if positions is None else positions
    return _ref.rope(x, pos, b if base is None else base, layout)


def _wrong_frequencies(c):
    """theta_i with a wrong exponent, written as the reference with another base or
    scaled positions: base^(-i/d), base^(-4i/d), base^(+2i/d), i counted from 1."""
    x, pos, b = c.args
    d = x.shape[-1]
    variants = [
        _rope(c, base=np.sqrt(b)),
        _rope(c, base=b**2),
        _rope(c, base=1.0 / b),
        _rope(c, positions=_positions(x, pos) * b ** (-2.0 / d)),
    ]
    return [{"x_rotated": v} for v in variants]


def _overwritten_first(c):
    """The second entry of each pair computed from the already rotated first one."""
    x, pos, b = c.args
    y = _ref.rope(x, _positions(x, pos), b)
    d = x.shape[-1]
    angle = _positions(x, pos)[..., None] * b ** (-np.arange(0, d, 2) / d)
    y[..., 1::2] = y[..., 0::2] * np.sin(angle) + x[..., 1::2] * np.cos(angle)
    return y


def _norm_changed(f):
    x, got = f.case.args[0], np.asarray(f.got, dtype=float)
    if got.shape != x.shape:
        return False
    return not np.allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1))


HINTS = (
    matches(
        _overwritten_first,
        "the second entry of a pair used the already rotated first entry: both new "
        "entries must come from the ORIGINAL pair (keep a copy, or write into a new "
        "array).",
    ),
    matches(
        lambda c: _rope(c, layout="half"),
        "you rotated the pairs (x_i, x_{i + d/2}) (the rotate-half layout of "
        "GPT-NeoX and Hugging Face's LLaMA); this exercise uses RoFormer's "
        "interleaved pairs (x_2i, x_2i+1).",
    ),
    matches(
        lambda c: _rope(c, positions=-_positions(*c.args[:2])),
        "you rotated the wrong way round (by -m theta_i): compare the signs with "
        "the rotation matrix above.",
    ),
    matches_any(
        _wrong_frequencies,
        "the frequencies are wrong: pair i (dims 2i and 2i+1, i = 0 .. d/2 - 1) "
        "turns at theta_i = base^(-2i/d); the first pair has theta_0 = 1.",
    ),
    matches(
        lambda c: _rope(c, positions=_positions(*c.args[:2]) + 1),
        "positions start at 0: the first row is not rotated at all.",
    ),
    matches(
        lambda c: _rope(c, positions=np.arange(c.args[0].shape[-2])),
        "use the `positions` argument when it is given (a KV-cache step passes the "
        "absolute position of its token); default to 0..N-1 only when it is None.",
    ),
    when(
        lambda f: f.case.info["nd"] and f.kind in ("exception", "shape"),
        "positions may have leading axes too, (B, N) or (B, 1, N): the angles need "
        "a new last axis for the d/2 frequencies, whatever the shape of positions.",
    ),
    when(
        _norm_changed,
        "a rotation keeps the length of every row, but yours changed it: each pair "
        "must be turned by one angle, the same in its cos and its sin.",
    ),
)

ROPE = Checker(
    title="rope(x, positions=None, base=10000.0) -> x_rotated",
    make_cases=_cases,
    outputs=("x_rotated",),
    arg_names=("x", "positions"),
    hints=HINTS,
    forbidden=answer_key.ROPE + answer_key.REFERENCE,
    call="check_rope(rope)",
)


def check_rope(fn, *, seed=None):
    """Check a student's ``rope(x, positions=None, base=10000.0) -> x_rotated``.

    x (..., N, d) with d even; pair (x_2i, x_2i+1) at position m is rotated by
    m * base^(-2i/d); positions broadcast to x.shape[:-1] and default to 0..N-1.
    Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(ROPE, fn, seed=seed)

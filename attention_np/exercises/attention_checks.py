"""Checker for exercise 02a: scaled dot-product attention with a boolean mask.

Student signature:
    attention(q, k, v, mask=None) -> out
        q (..., N, d), k (..., M, d), v (..., M, d_v); mask boolean, broadcastable
        to (..., N, M), True = may attend; out (..., N, d_v) =
        softmax(q k^T / sqrt(d), masked entries -> -inf) v, and 0 for a query row
        that may attend to nothing.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import matches, matches_any

INF = np.inf


def _random_mask(rng, shape):
    """Every row keeps at least one key and hides at least one."""
    mask = rng.random(shape) > 0.5
    mask[..., 0], mask[..., -1] = True, False
    return rng.permuted(mask, axis=-1)


def _case(name, q, k, v, mask=None):
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    full = np.ones(lead + (q.shape[-2], k.shape[-2]), bool)
    allow = full if mask is None else np.broadcast_to(mask, full.shape)
    info = {"N": q.shape[-2], "M": k.shape[-2], "d": q.shape[-1], "allow": allow}
    info["empty_rows"] = ~allow.any(axis=-1)  # (..., N) queries that see no key
    shapes = f"q {q.shape}, k {k.shape}, v {v.shape}"
    expected = _ref.attention(q, k, v, allow)[0]
    return Case(f"{name}: {shapes}", (q, k, v, mask), expected, info)


def _attention_cases(rng):
    g = rng.standard_normal
    empty = _random_mask(rng, (2, 4, 5))
    empty[1, rng.integers(4)] = False  # one query of batch 1 may attend to nothing
    specs = [  # name, shapes of q, k, v, mask
        ("one head, N != M", (3, 4), (5, 4), (5, 2), None),
        ("batch and heads", (2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 7), None),
        ("random mask", (2, 4, 3), (2, 5, 3), (2, 5, 2), _random_mask(rng, (2, 4, 5))),
        ("causal mask (N, N) shared by batch and heads",
         (2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 5), _ref.causal_allow(4, 4)),
        ("a fully masked row", (2, 4, 3), (2, 5, 3), (2, 5, 2), empty),
    ]  # fmt: skip
    cases = [_case(name, g(q), g(k), g(v), mask) for name, q, k, v, mask in specs]
    q_large = g((3, 4))
    q_large[0] *= 1e4  # row 0: scores around 1e4; rows 1, 2: ordinary scores
    cases.append(_case("scores of 1e4 in row 0", q_large, g((5, 4)), g((5, 2))))
    return cases


def _scores(c, scale=None):
    q, k, _, _ = c.args
    scale = 1 / np.sqrt(c.info["d"]) if scale is None else scale
    return scale * (q @ np.swapaxes(k, -1, -2))  # (..., N, M)


def _masked(c, scores, allow=None, fill=-INF):
    return np.where(c.info["allow"] if allow is None else allow, scores, fill)


def _softmax_variants(c, shift):
    """softmax(S) v with the row shift replaced, with and without guarding 0/0."""
    S = _masked(c, _scores(c))
    out = []
    with np.errstate(all="ignore"):
        e = np.exp(S - shift(S))  # (..., N, M)
        s = e.sum(axis=-1, keepdims=True)
        for den in (s, np.where(s == 0, 1.0, s)):
            out.append({"out": (e / den) @ c.args[2]})
    return out


def _with_scale(scale_of):
    return lambda c: _ref.softmax(_masked(c, _scores(c, scale_of(c.info)))) @ c.args[2]


def _other_axis(c):
    p = _ref.softmax(np.swapaxes(_masked(c, _scores(c)), -1, -2))
    return np.swapaxes(p, -1, -2) @ c.args[2]


def _mask_after_softmax(c):
    return (_ref.softmax(_scores(c)) * c.info["allow"]) @ c.args[2]


def _finite_fill(c):
    """A finite fill value: added (-1e9 + S) or written in place (-1e9, finfo.min)."""
    S, v = _scores(c), c.args[2]
    fills = [S - 1e9, np.full_like(S, -1e9), np.full_like(S, np.finfo(float).min)]
    return [{"out": _ref.softmax(_masked(c, S, fill=f)) @ v} for f in fills]


SCALE_TEXT = "the scores are q k^T / sqrt(d) with d = q.shape[-1], the head width"

ATTENTION_HINTS = (
    matches_any(
        lambda c: _softmax_variants(c, lambda S: np.max(S, axis=-1, keepdims=True)),
        "a query that may attend to nothing has a row of scores that is all -inf: "
        "its max is -inf and -inf - (-inf) = NaN. Its output must be 0: treat the "
        "max of such a row as 0 and its sum as 1.",
    ),
    matches_any(
        lambda c: _softmax_variants(c, lambda S: 0.0),
        "exp of scores around 1e4 overflows to inf, and inf / inf = NaN. Subtract "
        "each row's max from the scores before exp (softmax ignores a shift).",
    ),
    matches_any(
        lambda c: _softmax_variants(c, lambda S: np.max(S[np.isfinite(S)])),
        "the ordinary rows 1 and 2 came out wrong: you subtracted the max of the "
        "whole array, and exp(S - 1e4) underflows to 0 there. Subtract each row's "
        "own max.",
    ),
    matches(_with_scale(lambda i: 1.0), f"missing scale: {SCALE_TEXT}."),
    matches(
        _with_scale(lambda i: 1 / i["d"]), f"divide by sqrt(d), not d: {SCALE_TEXT}."
    ),
    matches(
        _with_scale(lambda i: np.sqrt(i["d"])), f"divide, not multiply: {SCALE_TEXT}."
    ),
    matches(
        _with_scale(lambda i: 1 / np.sqrt(i["M"])),
        f"wrong scale: {SCALE_TEXT}, not the number of keys M.",
    ),
    matches(
        _with_scale(lambda i: 1 / np.sqrt(i["N"])),
        f"wrong scale: {SCALE_TEXT}, not the number of queries N.",
    ),
    matches(
        _other_axis,
        "softmax over the wrong axis: normalise over the keys, the last axis of "
        "the scores (..., N, M), so each query's weights sum to 1.",
    ),
    matches(
        lambda c: _ref.attention(*c.args[:3], ~c.info["allow"])[0],
        "inverted mask: True means 'may attend', so the keys where the mask is "
        "False are the hidden ones.",
    ),
    matches(
        _mask_after_softmax,
        "the mask is applied after softmax, so the remaining weights no longer sum "
        "to 1. Mask the scores (-inf where not allowed) before softmax.",
    ),
    matches(
        lambda c: _ref.softmax(_masked(c, _scores(c), fill=0.0)) @ c.args[2],
        "masked scores were set to 0, but exp(0) = 1 still gives those keys weight: "
        "they need -inf.",
    ),
    matches(
        lambda c: _ref.attention(*c.args[:3])[0],
        "the mask is ignored: hidden keys need a score of -inf before softmax.",
    ),
    matches_any(
        _finite_fill,
        "the fully masked row attends to keys it may not see: with a finite fill "
        "value (-1e9, np.finfo(float).min) a row whose keys are all hidden has "
        "scores that are all equal (up to a shift), and softmax spreads its weight "
        "over them. Use -inf, and give rows with no allowed key the output 0.",
    ),
)

ATTENTION = Checker(
    title="attention(q, k, v, mask=None) -> out",
    make_cases=_attention_cases,
    outputs=("out",),
    arg_names=("q", "k", "v", "mask"),
    hints=ATTENTION_HINTS,
    forbidden=answer_key.ATTENTION + answer_key.SOFTMAX + answer_key.REFERENCE,
    call="check_attention(attention)",
)


def check_attention(fn, *, seed=None):
    """Check a student's ``attention(q, k, v, mask=None) -> out``.

    q (..., N, d), k (..., M, d), v (..., M, d_v); mask boolean broadcastable to
    (..., N, M), True = may attend. out (..., N, d_v); a query with no allowed key
    gets 0. Cases: N != M, batch and heads, masks, a fully masked row, scores of 1e4.
    Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(ATTENTION, fn, seed=seed)

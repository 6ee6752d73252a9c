"""Checker for exercise 03: scaled dot-product attention with a boolean mask.

Student signature:
    attention(q, k, v, mask=None) -> out
        q (..., N, d), k (..., M, d), v (..., M, d_v); mask boolean, broadcastable
        to (..., N, M), True = may attend; out (..., N, d_v) =
        softmax(q k^T / sqrt(d), masked entries -> -inf) v, and 0 for a query row
        that may attend to nothing.
"""

import numpy as np

from ..attention import attention_forward
from ..masks import causal_mask
from ..softmax import softmax_forward
from .framework import Case, Checker
from .hints import in_rows, matches, nonfinite_case, nonfinite_in_rows, when

INF = np.inf


def _random_mask(rng, shape):
    """Every row keeps at least one key and hides at least one."""
    mask = rng.random(shape) > 0.5
    mask[..., 0], mask[..., -1] = True, False
    return rng.permuted(mask, axis=-1)


def _case(name, q, k, v, mask=None, **info):
    d = q.shape[-1]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    full = np.ones(lead + (q.shape[-2], k.shape[-2]), bool)
    allow = full if mask is None else np.broadcast_to(mask, full.shape)
    info.update(N=q.shape[-2], M=k.shape[-2], d=d, allow=allow)
    info["empty_rows"] = ~allow.any(axis=-1)  # (..., N) queries that see no key
    shapes = f"q {q.shape}, k {k.shape}, v {v.shape}"
    expected = attention_forward(q, k, v, mask)[0]
    return Case(f"{name}: {shapes}", (q, k, v, mask), expected, info)


def _attention_cases(rng):
    g = rng.standard_normal
    empty = _random_mask(rng, (2, 4, 5))
    empty[1, 2] = False  # query 2 of batch 1 may attend to nothing
    specs = [  # name, shapes of q, k, v, mask
        ("one head, N != M", (3, 4), (5, 4), (5, 2), None),
        ("batch and heads", (2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 7), None),
        ("random mask", (2, 4, 3), (2, 5, 3), (2, 5, 2), _random_mask(rng, (2, 4, 5))),
        ("causal mask (N, N) shared by batch and heads",
         (2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 5), causal_mask(4)),
        ("a fully masked row", (2, 4, 3), (2, 5, 3), (2, 5, 2), empty),
    ]  # fmt: skip
    cases = [_case(name, g(q), g(k), g(v), mask) for name, q, k, v, mask in specs]
    q_large = g((3, 4))
    q_large[0] *= 1e4  # row 0: scores around 1e4; rows 1, 2: ordinary scores
    info = {"large": True, "small_rows": np.array([False, True, True])}
    cases.append(_case("scores of 1e4", q_large, g((5, 4)), g((5, 2)), **info))
    return cases


def _attend(scores, v):
    """softmax(scores) @ v with the package's safe softmax (-inf -> weight 0)."""
    return softmax_forward(scores)[0] @ v


def _scores(c, scale=None):
    q, k, _, _ = c.args
    scale = 1 / np.sqrt(c.info["d"]) if scale is None else scale
    return scale * (q @ np.swapaxes(k, -1, -2))  # (..., N, M)


def _masked(c, scores, allow=None):
    allow = c.info["allow"] if allow is None else allow
    return np.where(allow, scores, -INF)


def _with_scale(scale_of):
    return lambda c: _attend(_masked(c, _scores(c, scale_of(c.info))), c.args[2])


def _other_axis(c):
    p = softmax_forward(np.swapaxes(_masked(c, _scores(c)), -1, -2))[0]
    return np.swapaxes(p, -1, -2) @ c.args[2]


def _mask_after_softmax(c):
    return (_attend(_scores(c), np.eye(c.info["M"])) * c.info["allow"]) @ c.args[2]


def _empty_rows_unmasked(c):
    """What a finite fill value (-1e9) gives: a fully masked row ignores its mask."""
    allow = c.info["allow"] | c.info["empty_rows"][..., None]
    return _attend(_masked(c, _scores(c), allow), c.args[2])


def _empty_rows_uniform(c):
    """What np.finfo.min as a fill gives: a fully masked row averages v."""
    scores = _masked(c, _scores(c))
    scores = np.where(c.info["empty_rows"][..., None], 0.0, scores)
    return _attend(scores, c.args[2])


SCALE_TEXT = "S = q k^T / sqrt(d) with d = q.shape[-1], the head width"

ATTENTION_HINTS = (
    when(
        nonfinite_in_rows("empty_rows"),
        "a query that may attend to nothing has a row of S that is all -inf: its "
        "max is -inf and -inf - (-inf) = NaN. Its output must be 0: use 0 as the max "
        "of such a row and divide by 1 where the row sum is 0.",
    ),
    when(
        lambda f: (
            f.case.info.get("large", False)
            and in_rows("small_rows", ("nonfinite", "value"))(f)
        ),
        "an ordinary row came out wrong (NaN or 0): you subtracted the max of the "
        "whole array; subtract each row's max (axis=-1, keepdims=True).",
    ),
    when(
        nonfinite_case("large"),
        "exp of scores around 1e4 overflows to inf, and inf / inf = NaN. Subtract "
        "each row's max from S before exp (softmax is unchanged by a shift).",
    ),
    matches(_with_scale(lambda i: 1.0), f"missing scale: {SCALE_TEXT}."),
    matches(
        _with_scale(lambda i: 1 / i["d"]), f"divide by sqrt(d), not d: {SCALE_TEXT}."
    ),
    matches(
        _with_scale(lambda i: np.sqrt(i["d"])), f"multiply by 1/sqrt(d): {SCALE_TEXT}."
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
        "S (..., N, M), so each query's weights sum to 1.",
    ),
    matches(
        lambda c: attention_forward(*c.args[:3], ~c.info["allow"])[0],
        "inverted mask: True means 'may attend'. Hide the keys where the mask is "
        "False: np.where(mask, S, -np.inf).",
    ),
    matches(
        _mask_after_softmax,
        "the mask is applied after softmax: the remaining weights no longer sum to "
        "1. Mask the scores (-inf where not allowed) before softmax.",
    ),
    matches(
        lambda c: _attend(np.where(c.info["allow"], _scores(c), 0.0), c.args[2]),
        "masked scores were set to 0, but exp(0) = 1 still gives those keys weight: "
        "set them to -inf.",
    ),
    matches(
        lambda c: attention_forward(*c.args[:3])[0],
        "the mask is ignored: set the scores of hidden keys to -inf before softmax.",
    ),
    matches(
        _empty_rows_unmasked,
        "the fully masked row attends as if it had no mask: adding a finite penalty "
        "such as -1e9 to every score of a row is a shift, and softmax ignores "
        "shifts. Use -inf, and give rows with no allowed key the output 0.",
    ),
    matches(
        _empty_rows_uniform,
        "the fully masked row averages every value (uniform weights): filling the "
        "masked scores with a finite number (-1e9, np.finfo(float).min) makes that "
        "row's scores all equal. Use -inf, and give rows with no allowed key the "
        "output 0.",
    ),
)

ATTENTION = Checker(
    title="attention(q, k, v, mask=None) -> out",
    make_cases=_attention_cases,
    outputs=("out",),
    arg_names=("q", "k", "v", "mask"),
    hints=ATTENTION_HINTS,
    fallback="out = softmax(q k^T / sqrt(d), -inf where mask is False) @ v, "
    "softmax over the last axis.",
)


def check_attention(fn):
    """Check a student's ``attention(q, k, v, mask=None) -> out``.

    q (..., N, d), k (..., M, d), v (..., M, d_v); mask boolean broadcastable to
    (..., N, M), True = may attend. out (..., N, d_v); a query with no allowed key
    gets 0. Cases: N != M, batch and heads, masks, a fully masked row, scores of 1e4.
    Returns True when every case passes.
    """
    return ATTENTION.run(fn)

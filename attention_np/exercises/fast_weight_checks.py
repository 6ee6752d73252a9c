"""Checkers for exercise 18a: writing into a fast-weight memory.

Student signatures:
    fast_weight_update(A, h, lam, eta) -> A_new
        Ba et al. (2016): A_new = lam * A + eta * h^T h, one outer product per batch
        row; A, A_new (B, D_h, D_h), h (B, D_h) (row vectors).
    delta_rule_update(S, k, v, beta) -> S_new
        one write of the delta rule (Schlag et al. 2021), row-vector convention:
        S_new = S + beta * k^T (v - k S); S, S_new (..., d_k, d_v), k (..., d_k),
        v (..., d_v), beta (...) (a number per memory).

Both return a new array (the inputs stay unchanged).
"""

import numpy as np

from . import answer_key
from .framework import Case, Checker, grade
from .hints import Hint, kind, matches, matches_any, raised


def _outer(a, b):
    """Batched outer product a^T b: (..., m), (..., n) -> (..., m, n)."""
    return a[..., :, None] * b[..., None, :]


def _fast_cases(rng):
    g = rng.standard_normal
    specs = [  # name, B, D_h, lam, eta
        ("one sequence", 1, 4, 0.9, 0.5),
        ("batch of 3", 3, 5, 0.95, 0.5),
        ("lam = 0 forgets everything", 2, 3, 0.0, 1.5),
        ("strong write, eta = 2", 2, 4, 0.5, 2.0),
    ]
    out = []
    for name, B, D, lam, eta in specs:
        A, h = g((B, D, D)), g((B, D))  # a non-zero memory: the decay matters
        label = f"{name}: A {A.shape}, h {h.shape}, lam {lam}, eta {eta}"
        expected = lam * A + eta * _outer(h, h)  # (B, D_h, D_h)
        out.append(Case(label, (A, h, lam, eta), expected))
    return out


def _fast(c, *, decay_old=True, decay_new=False, eta=True, write=None):
    """lam A + eta h^T h with one planted change."""
    A, h, lam, e = c.args
    new = _outer(h, h) if write is None else write(h)  # (B, D_h, D_h)
    new = (e if eta else 1.0) * new * (lam if decay_new else 1.0)
    return (lam * A if decay_old else A) + new


def _decay_on_new(c):
    A, h, lam, eta = c.args
    return [
        {"A_new": _fast(c, decay_old=False, decay_new=True)},  # A + lam eta h^T h
        {"A_new": lam * (A + eta * _outer(h, h))},  # lam (A + eta h^T h)
    ]


FAST_HINTS = (
    matches(
        lambda c: _fast(c, decay_old=False),
        "the old memory must decay by lam: without it the memory never forgets, "
        "and old states swamp the new ones.",
    ),
    matches_any(
        _decay_on_new,
        "lam multiplies the OLD memory only; the new state is written at full "
        "strength eta.",
    ),
    matches(
        lambda c: _fast(c, write=lambda h: np.sum(h * h, -1)[:, None, None]),
        "h^T h is an outer product, a (D_h, D_h) matrix per batch row, not the "
        "number h . h.",
    ),
    matches(
        lambda c: _fast(c, write=lambda h: np.einsum("bi,bj->ij", h, h)[None]),
        "one outer product per batch row: each sequence has its own memory, so "
        "h^T h must not be summed over the batch.",
    ),
    matches(
        lambda c: _fast(c, eta=False),
        "the write strength eta is missing.",
    ),
    Hint(
        lambda f: kind("shape")(f) or raised("could not be broadcast", "").test(f),
        "A_new has the shape of A, (B, D_h, D_h): one (D_h, D_h) outer product per "
        "batch row (np.outer flattens a whole batch into one matrix).",
    ),
)

FAST_WEIGHT_UPDATE = Checker(
    title="fast_weight_update(A, h, lam, eta) -> A_new",
    make_cases=_fast_cases,
    outputs=("A_new",),
    arg_names=("A", "h"),
    hints=FAST_HINTS,
    forbidden=answer_key.FAST_WEIGHTS + answer_key.REFERENCE,
    call="check_fast_weight_update(fast_weight_update)",
)


def _delta_reference(S, k, v, beta):
    """S + beta k^T (v - k S), batched over the leading axes."""
    stored = (k[..., None, :] @ S)[..., 0, :]  # (..., d_v) what k reads now
    return S + np.asarray(beta)[..., None, None] * _outer(k, v - stored)


def _delta_cases(rng):
    g = rng.standard_normal
    unit = g(4)
    unit /= np.linalg.norm(unit)  # with beta = 1, k S_new = v exactly
    betas = rng.uniform(0.1, 1.0, size=(2, 3))  # one write strength per memory
    specs = [  # name, S, k, v, beta
        ("square memory, d_k = d_v", g((3, 3)), g(3), g(3), np.float64(0.5)),
        ("d_k != d_v", g((4, 2)), g(4), g(2), np.float64(0.8)),
        ("batch of 2 memories", g((2, 4, 3)), g((2, 4)), g((2, 3)), betas[0, :2]),
        ("batch and heads, 2 x 3 memories", g((2, 3, 4, 3)), g((2, 3, 4)),
         g((2, 3, 3)), betas),
        ("unit key, beta = 1: overwrite", g((4, 3)), unit, g(3), np.float64(1.0)),
    ]  # fmt: skip
    out = []
    for name, S, k, v, beta in specs:
        b = f"beta {float(beta):g}" if np.ndim(beta) == 0 else f"beta {beta.shape}"
        label = f"{name}: S {S.shape}, k {k.shape}, v {v.shape}, {b}"
        out.append(Case(label, (S, k, v, beta), _delta_reference(S, k, v, beta)))
    return out


def _delta(c, *, read="kS", sign=1.0, transposed=False, use_beta=True):
    """S + beta k^T (v - k S) with one planted change."""
    S, k, v, beta = c.args
    b = np.asarray(beta)[..., None, None] if use_beta else 1.0
    if read is None:
        err = v  # the sum rule: nothing is subtracted
    elif read == "kS":
        err = sign * (v - (k[..., None, :] @ S)[..., 0, :])  # (..., d_v)
    else:
        err = v - (S @ k[..., :, None])[..., 0]  # S k: needs d_k == d_v
    return S + b * (_outer(err, k) if transposed else _outer(k, err))


def _sum_rules(c):
    return [{"S_new": _delta(c, read=None, use_beta=b)} for b in (True, False)]


DELTA_HINTS = (
    matches_any(
        _sum_rules,
        "this is the sum rule S + beta k^T v: the delta rule first reads what the "
        "memory already stores under k, v_old = k S, and writes only the "
        "correction v - v_old.",
    ),
    matches(
        lambda c: _delta(c, transposed=True),
        "the outer product is transposed: the update k^T (v - k S) has the shape of "
        "S, (d_k, d_v), with k along the rows.",
    ),
    matches(
        lambda c: _delta(c, read="Sk"),
        "read the stored value as a row vector times the matrix, v_old = k S, shape "
        "(d_v,); S k reads the memory transposed.",
    ),
    matches(
        lambda c: _delta(c, sign=-1.0),
        "the sign of the correction is flipped: the write must move what k reads "
        "towards v.",
    ),
    matches(
        lambda c: _delta(c, use_beta=False),
        "the write strength beta is missing.",
    ),
    Hint(
        lambda f: kind("shape")(f) or raised("could not be broadcast", "").test(f),
        "the update must have the shape of S, (..., d_k, d_v); beta has one number "
        "per memory, shape (...), so it needs two new axes to multiply it.",
    ),
)

DELTA_RULE_UPDATE = Checker(
    title="delta_rule_update(S, k, v, beta) -> S_new",
    make_cases=_delta_cases,
    outputs=("S_new",),
    arg_names=("S", "k", "v"),
    hints=DELTA_HINTS,
    forbidden=answer_key.DELTA_RULE + answer_key.REFERENCE + (_delta_reference,),
    call="check_delta_rule_update(delta_rule_update)",
)


def check_fast_weight_update(fn, *, seed=None):
    """Check a student's ``fast_weight_update(A, h, lam, eta) -> A_new``.

    A (B, D_h, D_h), h (B, D_h); A_new = lam * A + eta * h^T h per batch row.
    Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(FAST_WEIGHT_UPDATE, fn, seed=seed)


def check_delta_rule_update(fn, *, seed=None):
    """Check a student's ``delta_rule_update(S, k, v, beta) -> S_new``.

    S (..., d_k, d_v), k (..., d_k), v (..., d_v), beta (...);
    S_new = S + beta * k^T (v - k S). Raises AssertionError unless every case
    passes.
    """
    __tracebackhide__ = True
    grade(DELTA_RULE_UPDATE, fn, seed=seed)

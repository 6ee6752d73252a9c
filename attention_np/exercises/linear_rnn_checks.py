"""Checker for exercise 15a: causal linear attention run as an RNN.

Student signature:
    linear_attention_rnn(q, k, v, eps=1e-6) -> out
        q, k (..., N, d), v (..., N, d_v); phi(x) = elu(x) + 1; for i = 0 .. N-1:
            S_i = S_{i-1} + phi(k_i) v_i^T    (..., d, d_v), S_{-1} = 0
            z_i = z_{i-1} + phi(k_i)          (..., d),      z_{-1} = 0
            out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)
        out (..., N, d_v).

The expected answer is the parallel form A = tril(phi(q) phi(k)^T),
out = A v / (rowsum A + eps); the planted mistakes are that form with one thing
changed.
"""

import numpy as np

from . import answer_key
from .framework import Case, Checker, grade
from .hints import matches, matches_any


def phi(x):
    """elu(x) + 1: x + 1 for x > 0, exp(x) otherwise (always > 0)."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _elu(x):
    return phi(x) - 1.0  # elu without the + 1: negative for x < 0


def _parallel(q, k, v, eps, *, feature=phi, diagonal=0, causal=True, normalise=True,
              eps_num=0.0, den_extra=0.0):  # fmt: skip
    """Linear attention in parallel form with one planted change."""
    pq = feature(q)
    A = pq @ np.swapaxes(feature(k), -1, -2)  # (..., N, N)
    if causal:
        A = np.tril(A, diagonal)  # diagonal -1: position i does not see itself
    num = A @ v + eps_num  # (..., N, d_v)
    den = A.sum(axis=-1, keepdims=True) + eps + den_extra * pq.sum(-1, keepdims=True)
    return num / den if normalise else num


def _case(name, q, k, v, eps=1e-6):
    label = f"{name}: q, k {q.shape}, v {v.shape}" + (
        "" if eps == 1e-6 else f", eps {eps:g}"
    )
    return Case(label, (q, k, v, eps), _parallel(q, k, v, eps))


def _cases(rng):
    g = rng.standard_normal
    specs = [  # name, shape of q and k, shape of v, scale, eps
        ("square, d = d_v", (5, 4), (5, 4), 1.0, 1e-6),
        ("one head, d != d_v", (6, 3), (6, 2), 1.0, 1e-6),
        ("batch and heads", (2, 2, 5, 4), (2, 2, 5, 3), 1.0, 1e-6),
        ("large queries and keys", (4, 3), (4, 2), 4.0, 1e-6),
        ("a large eps", (5, 3), (5, 2), 1.0, 0.5),
        ("one position", (1, 3), (1, 2), 1.0, 1e-6),
    ]
    return [
        _case(name, s * g(qk), s * g(qk), g(vs), eps) for name, qk, vs, s, eps in specs
    ]


def _variant(**planted):
    return lambda c: _parallel(*c.args, **planted)


def _transposed_state(c):
    """S_i = sum_j v_j phi(k_j)^T (d_v, d): out_i = sum_j (phi(q_i).v_j) phi(k_j)."""
    q, k, v, eps = c.args
    pq, pk = phi(q), phi(k)
    num = np.tril(pq @ np.swapaxes(v, -1, -2)) @ pk  # (..., N, d) needs d == d_v
    den = np.tril(pq @ np.swapaxes(pk, -1, -2)).sum(axis=-1, keepdims=True) + eps
    return num / den


def _wrong_eps(c):
    q, k, v, eps = c.args
    return [
        {"out": _parallel(q, k, v, 0.0)},  # no eps
        {"out": _parallel(q, k, v, 1e-6)},  # a constant instead of the argument
        {"out": _parallel(q, k, v, eps, eps_num=eps)},  # eps in the numerator too
        {"out": _parallel(q, k, v, 0.0, den_extra=eps)},  # phi(q) . (z + eps)
    ]


HINTS = (
    matches(
        _variant(diagonal=-1),
        "out_i read the state BEFORE position i was written: causal attention "
        "includes j = i, so position i's key and value go into the state first.",
    ),
    matches(
        _variant(normalise=False),
        "the normaliser is missing: divide by phi(q_i)^T z_i + eps, the running "
        "sum of the attention weights.",
    ),
    matches(
        _variant(feature=_elu),
        "the feature map is elu(x) + 1, not elu(x): elu is negative for x < 0, so "
        "the weights phi(q).phi(k) can be negative and the normaliser close to 0.",
    ),
    matches(
        _variant(feature=lambda x: x),
        "apply the feature map phi(x) = elu(x) + 1 to q and k first: with raw q "
        "and k the weights can be negative.",
    ),
    matches(
        _transposed_state,
        "the outer product is transposed: S_i = S_{i-1} + phi(k_i) v_i^T has shape "
        "(d, d_v), and a query reads it as phi(q_i) S_i.",
    ),
    matches(
        _variant(causal=False),
        "this is the non-causal version: out_i may only use positions j <= i, so "
        "read the state inside the loop, right after step i.",
    ),
    matches_any(
        _wrong_eps,
        "eps: the denominator is phi(q_i)^T z_i + eps, with the eps argument added "
        "once (see the case with a large eps); the numerator has no eps.",
    ),
)

LINEAR_RNN = Checker(
    title="linear_attention_rnn(q, k, v, eps=1e-6) -> out",
    make_cases=_cases,
    outputs=("out",),
    arg_names=("q", "k", "v"),
    hints=HINTS,
    forbidden=answer_key.LINEAR_ATTENTION + answer_key.REFERENCE + (_parallel,),
    call="check_linear_attention_rnn(linear_attention_rnn)",
)


def check_linear_attention_rnn(fn, *, seed=None):
    """Check a student's ``linear_attention_rnn(q, k, v, eps=1e-6) -> out``.

    Causal linear attention with phi = elu + 1, computed as a recurrence over the
    positions: q, k (..., N, d), v (..., N, d_v), out (..., N, d_v). Raises
    AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(LINEAR_RNN, fn, seed=seed)

"""Checker for exercise 14: causal linear attention run as an RNN.

Student signature:
    linear_attention_rnn(q, k, v, eps=1e-6) -> out
        q, k (..., N, d), v (..., N, d_v); phi(x) = elu(x) + 1; for i = 0 .. N-1:
            S_i = S_{i-1} + phi(k_i) v_i^T    (..., d, d_v), S_{-1} = 0
            z_i = z_{i-1} + phi(k_i)          (..., d),      z_{-1} = 0
            out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)
        out (..., N, d_v).

The expected answer is the package's recurrent form; the planted mistakes are the
parallel form A = phi(q) phi(k)^T (masked), out = A v / (rowsum A + eps), with one
thing changed.
"""

import numpy as np

from ..efficient.feature_maps import elu_plus_one_forward
from ..efficient.linear_attention import linear_attention_forward
from .framework import Case, Checker
from .hints import matches, when

EPS = 1e-6


def _case(name, q, k, v):
    expected = linear_attention_forward(
        q, k, v, feature_map="elu+1", causal=True, form="recurrent", eps=EPS
    )[0]
    label = f"{name}: q, k {q.shape}, v {v.shape}"
    return Case(label, (q, k, v, EPS), expected, {"v_max": np.abs(v).max()})


def _cases(rng):
    g = rng.standard_normal
    specs = [  # name, shape of q and k, shape of v
        ("square, d = d_v", (5, 4), (5, 4)),
        ("one head, d != d_v", (6, 3), (6, 2)),
        ("batch and heads", (2, 2, 5, 4), (2, 2, 5, 3)),
        ("large queries and keys", (4, 3), (4, 2)),
        ("one position", (1, 3), (1, 2)),
    ]
    out = []
    for name, qk, vs in specs:
        scale = 4.0 if name.startswith("large") else 1.0
        out.append(_case(name, scale * g(qk), scale * g(qk), g(vs)))
    return out


def _elu_plus_one(x):
    return elu_plus_one_forward(x)[0]


def _elu(x):
    return _elu_plus_one(x) - 1.0  # elu without the + 1: negative for x < 0


def _parallel(c, *, phi=_elu_plus_one, diagonal=0, causal=True, normalise=True):
    """Linear attention in parallel form with one planted change."""
    q, k, v, eps = c.args
    A = phi(q) @ np.swapaxes(phi(k), -1, -2)  # (..., N, N)
    if causal:
        A = np.tril(A, diagonal)  # diagonal -1: position i does not see itself
    num = A @ v  # (..., N, d_v)
    return num / (A.sum(axis=-1, keepdims=True) + eps) if normalise else num


def _transposed_state(c):
    """S_i = sum_j v_j phi(k_j)^T (d_v, d): out_i = sum_j (phi(q_i).v_j) phi(k_j)."""
    q, k, v, eps = c.args
    pq, pk = _elu_plus_one(q), _elu_plus_one(k)
    num = np.tril(pq @ np.swapaxes(v, -1, -2)) @ pk  # (..., N, d) needs d == d_v
    den = np.tril(pq @ np.swapaxes(pk, -1, -2)).sum(axis=-1, keepdims=True) + eps
    return num / den


def _outside_values(f):
    """Test: an output is far outside the range of the values (|out| > max |v|)."""
    if f.kind not in ("value", "nonfinite"):
        return False
    size = np.abs(np.asarray(f.got, dtype=float))
    return bool(np.any(size[~np.isnan(size)] > 1.01 * f.case.info["v_max"]))


HINTS = (
    matches(
        lambda c: _parallel(c, diagonal=-1),
        "out_i read the state BEFORE position i was written: causal attention "
        "includes j = i, so update S and z with phi(k_i), v_i first, then read "
        "them with phi(q_i).",
    ),
    matches(
        lambda c: _parallel(c, normalise=False),
        "the normaliser is missing: divide phi(q_i)^T S_i by "
        "phi(q_i)^T z_i + eps, the running sum of the attention weights.",
    ),
    matches(
        lambda c: _parallel(c, phi=_elu),
        "the feature map is elu(x) + 1, not elu(x): elu is negative for x < 0, so "
        "the weights phi(q).phi(k) can be negative and the normaliser close to 0.",
    ),
    matches(
        lambda c: _parallel(c, phi=lambda x: x),
        "apply the feature map phi(x) = elu(x) + 1 to q and k first (np.where(x > "
        "0, x + 1, np.exp(x))): with raw q and k the weights can be negative.",
    ),
    matches(
        _transposed_state,
        "the outer product is transposed: S_i = S_{i-1} + phi(k_i) v_i^T has shape "
        "(d, d_v), np.outer(phi_k, v) (or phi_k[..., :, None] * v[..., None, :]), "
        "and out_i = phi(q_i) @ S_i.",
    ),
    matches(
        lambda c: _parallel(c, causal=False),
        "this is the non-causal version: out_i may only use positions j <= i, so "
        "read the state inside the loop, right after step i, not after the loop.",
    ),
    when(
        _outside_values,
        "every out_i is a weighted average of v_0..v_i with positive weights, so "
        "it cannot exceed max |v|; yours does. Check that phi(x) = elu(x) + 1 > 0 "
        "and that you divide by phi(q_i)^T z_i + eps.",
    ),
)

LINEAR_RNN = Checker(
    title="linear_attention_rnn(q, k, v, eps=1e-6) -> out",
    make_cases=_cases,
    outputs=("out",),
    arg_names=("q", "k", "v"),
    hints=HINTS,
    fallback="S = 0 (d, d_v), z = 0 (d,); for each i: S += outer(phi(k_i), v_i); "
    "z += phi(k_i); out_i = phi(q_i) @ S / (phi(q_i) @ z + eps).",
)


def check_linear_attention_rnn(fn):
    """Check a student's ``linear_attention_rnn(q, k, v, eps=1e-6) -> out``.

    Causal linear attention with phi = elu + 1, computed as a recurrence over the
    positions: q, k (..., N, d), v (..., N, d_v), out (..., N, d_v). Returns True
    when every case passes.
    """
    return LINEAR_RNN.run(fn)

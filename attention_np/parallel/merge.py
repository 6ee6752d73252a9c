"""Merge two partial attention results over disjoint key sets, exactly.

Attention of a query over keys A and B, computed separately, gives (o_a, L_a) and
(o_b, L_b): each output normalised over its own keys, with the log-sum-exp L of its
scores. The full result is a weighted average whose weights are softmax(L_a, L_b):

    L = logaddexp(L_a, L_b),    o = e^(L_a - L) o_a + e^(L_b - L) o_b     ("exp")
    o = o_a - sigmoid(L_b - L_a) (o_a - o_b),  L = L_a - log sigmoid(L_a - L_b)
                                                                          ("sigmoid")

The merge is associative and commutative, so partials may be combined in any order or
reduction tree. A block in which a query sees no key has L = -inf and o = 0: it is the
identity element, and two empty blocks merge to an empty block, without NaN.

Shape legend: o (..., N, d_v), lse (..., N); leading dimensions as in attention.
"""

import numpy as np

from .. import validate as V

FORMS = ("exp", "sigmoid")


def _check(o_a, lse_a, o_b, lse_b):
    o_a, lse_a = V.float_array("o_a", o_a, min_ndim=1), V.float_array("lse_a", lse_a)
    o_b, lse_b = V.float_array("o_b", o_b, min_ndim=1), V.float_array("lse_b", lse_b)
    V.same_dtype(o_a=o_a, lse_a=lse_a, o_b=o_b, lse_b=lse_b)
    if o_a.shape != o_b.shape:
        raise ValueError(f"o_a{o_a.shape} and o_b{o_b.shape} must have the same shape")
    for name, lse in (("lse_a", lse_a), ("lse_b", lse_b)):
        if lse.shape != o_a.shape[:-1]:
            raise ValueError(
                f"{name}{lse.shape} must have shape {o_a.shape[:-1]}: "
                f"o_a{o_a.shape} without its last axis (..., N)"
            )
    return o_a, lse_a, o_b, lse_b


def _weights(lse_a, lse_b):
    """(w_a, w_b, L): softmax(L_a, L_b) per row, and L; (0, 0, -inf) if both empty."""
    lse = np.logaddexp(lse_a, lse_b)  # (..., N); -inf only when both are -inf
    base = np.where(np.isneginf(lse), 0.0, lse)  # never compute -inf - (-inf)
    return np.exp(lse_a - base), np.exp(lse_b - base), lse


def _sigmoid(x):
    """1 / (1 + e^-x) without overflow for large |x|; x = +-inf gives 1 and 0."""
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def merge_partials(o_a, lse_a, o_b, lse_b, *, form="exp"):
    """Exact merge of attention over disjoint key blocks: softmax(L_a, L_b) weights.

    Args:
        o_a, o_b: (..., N, d_v) outputs, each normalised over its own keys.
        lse_a, lse_b: (..., N) log-sum-exps of the scores; -inf = no key seen.
        form: "exp" (e^(L_a - L) o_a + e^(L_b - L) o_b) or "sigmoid"
            (o_a - sigmoid(L_b - L_a) (o_a - o_b), the ring-flash-attention form).

    Returns:
        o (..., N, d_v) and lse (..., N) over the union of the two key sets.
    """
    o_a, lse_a, o_b, lse_b = _check(o_a, lse_a, o_b, lse_b)
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if form == "exp":
        w_a, w_b, lse = _weights(lse_a, lse_b)
        return w_a[..., None] * o_a + w_b[..., None] * o_b, lse
    both_empty = np.isneginf(lse_a) & np.isneginf(lse_b)
    lse_b_safe = np.where(both_empty, 0.0, lse_b)  # never compute -inf - (-inf)
    gap = lse_b_safe - np.where(both_empty, 0.0, lse_a)  # (..., N); +-inf if one empty
    o = o_a - _sigmoid(gap)[..., None] * (o_a - o_b)  # (..., N, d_v)
    hi = np.maximum(lse_a, lse_b)
    # L_a - log sigmoid(L_a - L_b) = max + log(1 + e^-|gap|): -inf never meets +inf
    lse = np.where(both_empty, -np.inf, hi + np.log1p(np.exp(-np.abs(gap))))
    return o.astype(o_a.dtype, copy=False), lse.astype(lse_a.dtype, copy=False)


def merge_partials_backward(do, dlse, o_a, lse_a, o_b, lse_b):
    """Gradients of merge_partials: (do_a, dlse_a, do_b, dlse_b).

    With w = softmax(L_a, L_b) and o = w_a o_a + w_b o_b:
    do_a = w_a do, and dL_a = w_a (dL + rowsum(do * o_a) - rowsum(do * o)),
    the softmax Jacobian applied to the rows' dot products (the same for b).

    Args:
        do: (..., N, d_v) and dlse: (..., N) upstream gradients of o and lse.
        o_a, lse_a, o_b, lse_b: the forward's inputs.
    """
    o_a, lse_a, o_b, lse_b = _check(o_a, lse_a, o_b, lse_b)
    V.grad_shape("do", do, o_a.shape)
    V.grad_shape("dlse", dlse, lse_a.shape)
    w_a, w_b, _ = _weights(lse_a, lse_b)  # (..., N) each
    o = w_a[..., None] * o_a + w_b[..., None] * o_b  # (..., N, d_v)
    dot = np.sum(do * o, axis=-1)  # (..., N)
    grads = []
    for w, o_x in ((w_a, o_a), (w_b, o_b)):
        grads.append(w[..., None] * do)  # forward: o = w_a o_a + ...
        grads.append(w * (dlse + np.sum(do * o_x, axis=-1) - dot))  # softmax Jacobian
    return tuple(grads)

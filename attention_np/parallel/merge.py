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

``merged, cache = merge_partials_forward(o_a, lse_a, o_b, lse_b)`` returns a
``Partial(out, lse)``; ``merge_partials_backward(dout, cache)`` takes a Partial of
the two upstream gradients and returns (do_a, dlse_a, do_b, dlse_b).
``merge_partials`` is the forward without the cache.

Shape legend: o (..., N, d_v), lse (..., N); leading dimensions as in attention.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V

FORMS = ("exp", "sigmoid")


class Partial(NamedTuple):
    """Attention over some of the keys: output and log-sum-exp of its scores."""

    out: np.ndarray  # (..., N, d_v) normalised over these keys; 0 if none is seen
    lse: np.ndarray  # (..., N) log-sum-exp; -inf where no key is seen


class MergeCache(NamedTuple):
    """What ``merge_partials_backward`` needs: the two partials and the merge."""

    a: Partial
    b: Partial
    merged: Partial


def _check(o_a, lse_a, o_b, lse_b, form):
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
        if np.any(lse == np.inf):
            raise ValueError(f"{name} must be < +inf (-inf = no key seen)")
    V.choice("form", form, FORMS)
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


def _merge_sigmoid(o_a, lse_a, o_b, lse_b):
    both_empty = np.isneginf(lse_a) & np.isneginf(lse_b)
    lse_b_safe = np.where(both_empty, 0.0, lse_b)  # never compute -inf - (-inf)
    gap = lse_b_safe - np.where(both_empty, 0.0, lse_a)  # (..., N); +-inf if one empty
    o = o_a - _sigmoid(gap)[..., None] * (o_a - o_b)  # (..., N, d_v)
    hi = np.maximum(lse_a, lse_b)
    # L_a - log sigmoid(L_a - L_b) = max + log(1 + e^-|gap|): -inf never meets +inf
    lse = np.where(both_empty, -np.inf, hi + np.log1p(np.exp(-np.abs(gap))))
    return Partial(o.astype(o_a.dtype, copy=False), lse.astype(lse_a.dtype, copy=False))


def _merge(o_a, lse_a, o_b, lse_b, form):
    if form == "sigmoid":
        return _merge_sigmoid(o_a, lse_a, o_b, lse_b)
    w_a, w_b, lse = _weights(lse_a, lse_b)
    return Partial(w_a[..., None] * o_a + w_b[..., None] * o_b, lse)


def merge_partials(o_a, lse_a, o_b, lse_b, *, form="exp"):
    """Exact merge of attention over disjoint key blocks: softmax(L_a, L_b) weights.

    Args:
        o_a, o_b: (..., N, d_v) outputs, each normalised over its own keys.
        lse_a, lse_b: (..., N) log-sum-exps of the scores; -inf = no key seen.
        form: "exp" (e^(L_a - L) o_a + e^(L_b - L) o_b) or "sigmoid"
            (o_a - sigmoid(L_b - L_a) (o_a - o_b), the ring-flash-attention form).

    Returns:
        Partial(out (..., N, d_v), lse (..., N)) over the union of the key sets.
    """
    return _merge(*_check(o_a, lse_a, o_b, lse_b, form), form)


def merge_partials_forward(o_a, lse_a, o_b, lse_b, *, form="exp"):
    """``merge_partials`` as a layer: (Partial(out, lse), MergeCache).

    Arguments as in ``merge_partials``; the cache keeps both partials and the merge.
    """
    o_a, lse_a, o_b, lse_b = _check(o_a, lse_a, o_b, lse_b, form)
    merged = _merge(o_a, lse_a, o_b, lse_b, form)
    return merged, MergeCache(Partial(o_a, lse_a), Partial(o_b, lse_b), merged)


def merge_partials_backward(dout, cache):
    """Gradients of merge_partials_forward: (do_a, dlse_a, do_b, dlse_b).

    With w = softmax(L_a, L_b) and o = w_a o_a + w_b o_b:
    do_a = w_a do, and dL_a = w_a (dL + rowsum(do * o_a) - rowsum(do * o)),
    the softmax Jacobian applied to the rows' dot products (the same for b).

    Args:
        dout: Partial(out, lse) of the upstream gradients: dout.out (..., N, d_v)
            (named "dout" in errors) and dout.lse (..., N) (named "dlse").
        cache: from ``merge_partials_forward``.
    """
    a, b, merged = cache
    if not isinstance(dout, tuple) or len(dout) != 2:
        raise TypeError(
            "dout must be a Partial(out, lse) of the two upstream gradients, got "
            f"{type(dout).__name__}"
        )
    do, dlse = dout  # the gradients of merged.out and merged.lse
    V.grad_shape("dout", do, merged.out.shape)
    V.grad_shape("dlse", dlse, merged.lse.shape)
    w_a, w_b, _ = _weights(a.lse, b.lse)  # (..., N) each
    dot = np.sum(do * merged.out, axis=-1)  # (..., N)
    grads = []
    for w, part in ((w_a, a), (w_b, b)):
        grads.append(w[..., None] * do)  # forward: o = w_a o_a + ...
        row = np.sum(do * part.out, axis=-1)  # (..., N)
        grads.append(w * (dlse + row - dot))  # softmax Jacobian
    return tuple(grads)

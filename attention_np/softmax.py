"""Softmax over the last axis, numerically stable, with an optional boolean mask.

``y_j = exp(x_j - max x) / sum_k exp(x_k - max x)``. Subtracting the row max changes
nothing mathematically (softmax is shift-invariant) but keeps ``exp`` from overflowing.
Entries where ``mask`` is False (or ``x`` is -inf) get weight exactly 0; a row with no
allowed entry is all zeros (never NaN).

Non-finite scores are not scanned for (README, "NaN and inf in inputs propagate"): a NaN
or +inf in an allowed entry makes its whole row NaN and leaves the other rows alone;
-inf is a valid score meaning "weight 0"; an entry where ``mask`` is False is dropped
whatever its value, NaN included.
"""

import numpy as np

from . import validate as V


def softmax_forward(x, mask=None):
    """y = softmax(x) over the last axis.

    Args:
        x: (..., M) scores.
        mask: optional boolean array broadcastable to x.shape; False = excluded.

    Returns:
        y (..., M) with rows summing to 1 (0 for fully masked rows), cache (y,).
    """
    x = V.float_array("x", x, min_ndim=1)
    if mask is not None:
        V.bool_mask("mask", mask, x.shape)
        x = np.where(mask, x, -np.inf)  # (..., M) a copy: the caller's x is untouched
    # subtract the row max so exp never overflows; initial=-inf handles M == 0
    m = np.max(x, axis=-1, keepdims=True, initial=-np.inf)  # (..., 1)
    m[m == -np.inf] = 0.0  # fully masked row: use 0 so exp(-inf - 0) = 0, not NaN
    e = np.exp(x - m)  # (..., M) in [0, 1]
    s = e.sum(axis=-1, keepdims=True)  # (..., 1) >= 1 unless the row is fully masked
    s[s == 0] = 1.0  # fully masked row: 0 / 1 = 0 instead of 0 / 0 = NaN
    y = e / s  # (..., M)
    return y, (y,)


def softmax_backward(dout, cache):
    """dx = y * (dout - sum_j dout_j y_j), the Jacobian-vector product.

    The Jacobian of one row is diag(y) - y y^T; applying it to ``dout`` needs only a
    row sum, so no (M, M) matrix is built.
    """
    (y,) = cache
    V.grad_shape("dout", dout, y.shape)
    dot = np.sum(dout * y, axis=-1, keepdims=True)  # (..., 1) <dout, y> per row
    return y * (dout - dot)  # (..., M); masked entries have y = 0 -> dx = 0

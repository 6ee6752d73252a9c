"""Planted wrong softmax backward passes, and which upstream gradients expose them.

A gradient check compares a backward pass with finite differences of
L = sum(softmax(x) * dout) for ONE upstream gradient ``dout``. With dout = all ones,
L = sum of every row's weights = (number of rows), a constant, so the true gradient
is exactly 0: the check then only asks whether the code returns 0 for that input.
Every bug that also returns 0 there passes it. Each variant below is a function
(dout, y) -> dx, with y = softmax(x); ``ones_check_table`` runs the package's
gradient check on every variant with dout = ones and with a random dout.

Shape legend: x, y, dout, dx (..., M), softmax over the last axis.
"""

import numpy as np

from . import validate as V
from .gradcheck import compare, numerical_grad
from .softmax import softmax_forward


def _dot(dout, y):
    return np.sum(dout * y, axis=-1, keepdims=True)  # (..., 1) <dout, y> per row


SOFTMAX_BACKWARD_VARIANTS = {
    "correct: y * (dout - <dout, y>)": lambda dout, y: y * (dout - _dot(dout, y)),
    "sign flipped": lambda dout, y: -y * (dout - _dot(dout, y)),
    "twice too large": lambda dout, y: 2.0 * y * (dout - _dot(dout, y)),
    "mean(dout) instead of <dout, y>": lambda dout, y: (
        y * (dout - dout.mean(axis=-1, keepdims=True))
    ),
    "final * y left out": lambda dout, y: dout - _dot(dout, y),
    "sum(dout) instead of <dout, y>": lambda dout, y: (
        y * (dout - dout.sum(axis=-1, keepdims=True))
    ),
    "diagonal only: dout * y * (1 - y)": lambda dout, y: dout * y * (1.0 - y),
    "<dout, y> term left out": lambda dout, y: dout * y,
}


def passes_check(backward, x, dout):
    """True when backward(dout, softmax(x)) matches finite differences for this dout.

    Uses the package's tolerance (``gradcheck.compare``); x and dout float64.
    """
    x = V.float_array("x", x, min_ndim=1)
    dout = V.float_array("dout", dout)
    V.same_shape(x=x, dout=dout)
    y, _ = softmax_forward(x)
    numeric = numerical_grad(lambda x_: softmax_forward(x_)[0], x, dout)
    ((*_, ok),) = compare({"x": backward(dout, y)}, {"x": numeric})
    return ok


def ones_check_table(x, *, rng):
    """One row per variant: (name, max |dx| at dout = 1, passes with ones, passes
    with a random dout drawn from ``rng``).
    """
    x = V.float_array("x", x, min_ndim=1)
    V.rng_arg(rng)
    ones = np.ones_like(x)
    random = rng.standard_normal(x.shape)  # one random dout for every variant
    y, _ = softmax_forward(x)
    return [
        (
            name,
            float(np.max(np.abs(fn(ones, y)))),
            passes_check(fn, x, ones),
            passes_check(fn, x, random),
        )
        for name, fn in SOFTMAX_BACKWARD_VARIANTS.items()
    ]

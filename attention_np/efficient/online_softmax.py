"""Online softmax (Milakov & Gimelshein 2018): the row max and sum in one pass.

Reading the last axis one block at a time, keep the running max m and the running
sum l of exp(x - m); when a block raises the max, rescale the old sum:

    m_j = max(m_{j-1}, max(block_j))
    l_j = l_{j-1} * exp(m_{j-1} - m_j) + sum(exp(block_j - m_j))
    softmax(x)_i = exp(x_i - m) / l,     logsumexp(x) = m + log l

The same recurrence on (out, l) pairs is what tiled (Flash) attention runs over
blocks of keys. -inf entries (masked) contribute 0; a row with no finite entry keeps
m = -inf, l = 0, gets softmax 0 and logsumexp -inf.

Shape legend: x (..., M) scores; m, l, lse (...,) one value per row.
"""

import numpy as np

from .. import validate as V
from .tiles import blocks


def _check_step(m, l, block):
    """Validated running max m (...,), running sum l (...,) and block (..., b)."""
    block = V.float_array("block", block, min_ndim=1)
    checked = []
    for name, a in (("m", m), ("l", l)):
        a = V.float_array(name, np.asarray(a) if isinstance(a, np.generic) else a)
        if a.shape != block.shape[:-1]:
            raise ValueError(
                f"{name}{a.shape} must have the shape of block{block.shape} without "
                f"its last axis, {block.shape[:-1]}"
            )
        checked.append(a)
    return *checked, block


def online_softmax_step(m, l, block):
    """One step of the recurrence: fold a block (..., b) into (m, l) of shape (...,).

    Returns new arrays (m_new, l_new); m, l and block are not modified.
    """
    m, l, block = _check_step(m, l, block)
    m_new = np.maximum(m, np.max(block, axis=-1, initial=-np.inf))  # (...,)
    base = np.where(np.isneginf(m_new), 0.0, m_new)  # no -inf - (-inf) = NaN
    l_new = l * np.exp(m - base)  # rescale the old sum to the new max
    l_new = l_new + np.sum(np.exp(block - base[..., None]), axis=-1)  # (...,)
    return m_new, l_new


def online_logsumexp(x, *, block, trace=False):
    """logsumexp over the last axis, reading it ``block`` entries at a time.

    Args:
        x: (..., M) scores (-inf = masked).
        block: number of entries read per step (a positive int).
        trace: also return the list of (m, l) after each step.

    Returns:
        lse (...,), and the trace when asked for.
    """
    x = V.float_array("x", x, min_ndim=1)
    block = V.positive_int("block", block)
    trace = V.bool_arg("trace", trace)
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)  # (...,) running max
    l = np.zeros(x.shape[:-1], dtype=x.dtype)  # (...,) running sum of exp(x - m)
    steps = []
    for cols in blocks(x.shape[-1], block):
        m, l = online_softmax_step(m, l, x[..., cols])
        steps.append((m.copy(), l.copy()))
    with np.errstate(divide="ignore"):  # log 0 = -inf: a fully masked row
        lse = m + np.log(l)
    lse = np.where(l == 0, -np.inf, lse)
    return (lse, steps) if trace else lse


def online_softmax(x, *, block):
    """softmax over the last axis from one streaming pass: exp(x - logsumexp(x)).

    Args:
        x: (..., M) scores (-inf = masked).
        block: number of entries read per step (a positive int).

    Returns:
        y (..., M) (rows of a fully masked x are 0) and lse (...,).
    """
    x = V.float_array("x", x, min_ndim=1)
    lse = online_logsumexp(x, block=block)
    shift = np.where(np.isneginf(lse), np.inf, lse)  # exp(-inf - inf) = 0, not NaN
    return np.exp(x - shift[..., None]), lse

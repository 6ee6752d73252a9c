"""Softmax cross-entropy over a vocabulary, averaged over the positions that count.

    loss = -(1/n) sum_{i in mask} log softmax(logits_i)[target_i],  n = |mask|
    dlogits_i = (softmax(logits_i) - onehot(target_i)) / n   for i in mask, else 0

Shape legend: (...) any leading positions (e.g. (B, N)), V vocabulary size.
"""

import numpy as np

from .. import validate as V


def _log_softmax(x):
    """log softmax over the last axis, stable: x - max - log sum exp(x - max)."""
    shifted = x - x.max(axis=-1, keepdims=True)  # (..., V) entries <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy_forward(logits, targets, mask=None):
    """Mean negative log-likelihood of ``targets``.

    Args:
        logits: (..., V) unnormalised scores.
        targets: (...) integer classes in [0, V).
        mask: (...) boolean, True = this position counts (default: all). Positions
            with False (padding, prompt tokens) get no loss and no gradient.

    Returns:
        loss (0-d array; 0 when no position counts), cache.
    """
    logits = V.float_array("logits", logits, min_ndim=1)
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu" or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets must be integers of shape logits.shape[:-1] = "
            f"{logits.shape[:-1]}, got {targets.dtype} {targets.shape}"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[-1]):
        raise ValueError(f"targets must lie in [0, {logits.shape[-1]})")
    if mask is None:
        mask = np.ones(targets.shape, dtype=bool)
    V.bool_mask("mask", mask, targets.shape)
    mask = np.broadcast_to(mask, targets.shape)
    n = max(int(mask.sum()), 1)  # nothing counts -> loss 0, not 0/0
    logp = _log_softmax(logits)  # (..., V)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (...)
    loss = -np.sum(picked, where=mask) / n
    return np.asarray(loss, dtype=logits.dtype), (logp, targets, mask, n)


def cross_entropy_backward(dout, cache):
    """dlogits = dout * (softmax(logits) - onehot(targets)) * mask / n."""
    logp, targets, mask, n = cache
    V.grad_shape("dout", dout, ())  # the loss is a scalar
    dlogits = np.exp(logp)  # (..., V) softmax probabilities
    idx = targets[..., None]  # (..., 1)
    p_target = np.take_along_axis(dlogits, idx, axis=-1)  # (..., 1)
    np.put_along_axis(dlogits, idx, p_target - 1.0, axis=-1)  # softmax - onehot
    dlogits *= (mask[..., None] * (dout / n)).astype(dlogits.dtype)
    return dlogits

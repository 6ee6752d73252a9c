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
        targets: (...) integer classes in [0, V) (an int array: no gradient).
        mask: (...) boolean, True = this position counts (default: all). Positions
            with False (padding, prompt tokens) get no loss and no gradient.

    Returns:
        loss (0-d array; 0 when no position counts), cache.
    """
    logits = V.float_array("logits", logits, min_ndim=1)
    if logits.shape[-1] == 0:
        raise ValueError(f"logits{logits.shape} need a vocabulary of size >= 1")
    targets = V.token_ids("targets", targets, logits.shape[-1])
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets{targets.shape} must have the shape logits.shape[:-1] = "
            f"{logits.shape[:-1]}"
        )
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
    dlogits *= np.asarray(dout / n, dtype=dlogits.dtype)
    # where, not a product with the mask: a NaN logit at a position that does not
    # count must not leak into its (zero) gradient
    return np.where(mask[..., None], dlogits, dlogits.dtype.type(0))

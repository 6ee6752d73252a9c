"""Optimisers on flat ``params``/``grads`` dicts, and global-norm gradient clipping.

SGD:   p <- p - lr g
Adam:  m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   t <- t + 1
       p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) - lr wd p
(Kingma & Ba 2015; the weight-decay term is AdamW's decoupled one, Loshchilov &
Hutter 2019.) The parameter arrays are updated in place; the optimiser state is a
plain dict the caller keeps (and can save).
"""

import numpy as np

from ..validate import check_keys


def sgd_step(params, grads, *, lr):
    """In place: p <- p - lr * g for every key."""
    check_keys(grads, params, "grads")
    for k in params:
        params[k] -= lr * grads[k]


def adam_init(params):
    """Adam state: zero first and second moments shaped like params, step t = 0."""
    return {
        "m": {k: np.zeros_like(p) for k, p in params.items()},
        "v": {k: np.zeros_like(p) for k, p in params.items()},
        "t": 0,
    }


def adam_step(
    params, grads, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0
):
    """In place: one Adam(W) update of params and state (see the module docstring)."""
    check_keys(grads, params, "grads")
    state["t"] += 1
    t = state["t"]
    c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t  # bias corrections: moments start at 0
    for k, p in params.items():
        g, m, v = grads[k], state["m"][k], state["v"][k]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * g * g
        if weight_decay:
            p -= lr * weight_decay * p
        p -= lr * (m / c1) / (np.sqrt(v / c2) + eps)


def global_norm(grads):
    """sqrt(sum of g^2 over every array): the norm of all gradients as one vector."""
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))


def clip_grad_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / global_norm).

    Returns:
        (clipped grads as a new dict, the global norm before clipping). The direction
        of the whole gradient is kept; only its length is capped.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = global_norm(grads)
    factor = min(1.0, max_norm / (norm + 1e-12))
    return {k: g * factor for k, g in grads.items()}, norm

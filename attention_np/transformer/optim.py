"""Optimisers on flat ``params``/``grads`` dicts, and global-norm gradient clipping.

SGD:   p <- p - lr g
Adam:  m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   t <- t + 1
       p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) - lr wd p
(Kingma & Ba 2015; the weight-decay term is AdamW's decoupled one, Loshchilov &
Hutter 2019.) The parameter arrays are updated in place; the optimiser state is a
plain dict the caller keeps (and can save).

A step checks everything first (keys, shapes, dtypes, finite gradients,
hyperparameters, state) and only then writes: a refused step leaves params and state
as they were. A NaN or inf gradient is refused rather than written into the
parameters; a gradient (or Adam state) of another dtype than its param is a
TypeError, never a silent cast.
"""

import numpy as np

from .. import validate as V


def _check_params(params, *, writable=True):
    """params: a dict of float ndarrays, writable when they are updated in place."""
    V.instance("params", params, dict)
    for k, p in params.items():
        if not isinstance(p, np.ndarray):
            raise TypeError(
                f"params['{k}'] must be a NumPy array (updated in place), "
                f"got {type(p).__name__}"
            )
        V.float_array(f"params['{k}']", p)
        if writable and not p.flags.writeable:
            raise ValueError(f"params['{k}'] is read-only; the step writes into it")


def _check_grads(grads, params):
    """{key: float array} shaped exactly like params (no broadcasting), of the
    param's dtype (a float32 gradient for a float64 param is a TypeError), finite."""
    checked = V.grads_like(grads, params)
    for k, g in checked.items():
        V.finite(f"grads['{k}']", g)
    return checked


def sgd_step(params, grads, *, lr):
    """In place: p <- p - lr * g for every key (lr finite and > 0)."""
    _check_params(params)
    grads = _check_grads(grads, params)
    lr = V.real("lr", lr, lo=0.0, lo_open=True)
    for k, p in params.items():
        p -= lr * grads[k]


def adam_init(params):
    """Adam state: zero first and second moments shaped like params, step t = 0."""
    _check_params(params, writable=False)
    return {
        "m": {k: np.zeros_like(p) for k, p in params.items()},
        "v": {k: np.zeros_like(p) for k, p in params.items()},
        "t": 0,
    }


def _check_state(state, params):
    """The dict of ``adam_init(params)``, possibly after some steps."""
    V.check_keys(state, ("m", "v", "t"), "state")
    V.positive_int("state['t']", state["t"], allow_zero=True)
    for name in ("m", "v"):
        V.check_keys(state[name], params, f"state['{name}']")
        for k, p in params.items():
            a = state[name][k]
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                raise TypeError(f"state['{name}']['{k}'] must be a float array")
            if a.dtype != p.dtype:
                raise TypeError(
                    f"state['{name}']['{k}'] has dtype {a.dtype} but params['{k}'] "
                    f"is {p.dtype}: the state must come from adam_init(params)"
                )
            if a.shape != p.shape or not a.flags.writeable:
                raise ValueError(
                    f"state['{name}']['{k}']{a.shape} must be a writable array "
                    f"of the shape of params['{k}']{p.shape}"
                )


def _check_hyper(lr, beta1, beta2, eps, weight_decay):
    return (
        V.real("lr", lr, lo=0.0, lo_open=True),
        V.real("beta1", beta1, lo=0.0, hi=1.0, hi_open=True),
        V.real("beta2", beta2, lo=0.0, hi=1.0, hi_open=True),
        V.real("eps", eps, lo=0.0, lo_open=True),
        V.real("weight_decay", weight_decay, lo=0.0),
    )


def adam_step(
    params, grads, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0
):
    """In place: one Adam(W) update of params and state (see the module docstring).

    lr > 0, beta1 and beta2 in [0, 1), eps > 0, weight_decay >= 0, all finite.
    """
    _check_params(params)
    grads = _check_grads(grads, params)
    _check_state(state, params)
    lr, beta1, beta2, eps, weight_decay = _check_hyper(
        lr, beta1, beta2, eps, weight_decay
    )
    state["t"] = t = int(state["t"]) + 1
    c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t  # bias corrections: moments start at 0
    for k, p in params.items():
        g, m, v = grads[k], state["m"][k], state["v"][k]
        # the formula's operations in its order, in place where the dtype allows:
        # four temporaries per parameter instead of nine
        s = np.multiply(g, 1.0 - beta1)
        m *= beta1
        m += s  # m = b1 m + (1 - b1) g
        s = np.multiply(g, 1.0 - beta2)
        s *= g
        v *= beta2
        v += s  # v = b2 v + (1 - b2) g^2
        if weight_decay:
            p -= lr * weight_decay * p
        step, root = np.divide(m, c1), np.divide(v, c2)
        step *= lr  # lr m_hat
        np.sqrt(root, out=root)
        root += eps  # sqrt(v_hat) + eps
        step /= root
        p -= step


def _sum_squares(arrays, scale=None):
    """sum of g^2 over every array, in float64; of (g / scale)^2 with a scale."""
    scaled = arrays if scale is None else (g / scale for g in arrays)
    return sum(float(np.sum(np.square(g, dtype=np.float64))) for g in scaled)


def global_norm(grads):
    """sqrt(sum of g^2 over every array): the norm of all gradients as one vector.

    Computed in float64 (rescaled if the squares overflow), so finite gradients give
    a finite norm; NaN or inf in a gradient gives NaN or inf.
    """
    V.instance("grads", grads, dict)
    arrays = [V.float_array(f"grads['{k}']", g) for k, g in grads.items()]
    with np.errstate(over="ignore"):  # an overflow is handled just below
        total = _sum_squares(arrays)
    if np.isinf(total) and all(np.isfinite(g).all() for g in arrays):
        big = max(float(np.max(np.abs(g), initial=0.0)) for g in arrays)
        return big * float(np.sqrt(_sum_squares(arrays, big)))
    return float(np.sqrt(total))


def clip_grad_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / global_norm).

    Returns:
        (clipped grads as a new dict, the global norm before clipping). The direction
        of the whole gradient is kept; only its length is capped.

    Raises:
        ValueError: max_norm is not finite and > 0, or a gradient holds NaN or inf
            (no scaling makes it finite: the caller must skip the step or stop).
    """
    max_norm = V.real("max_norm", max_norm, lo=0.0, lo_open=True)
    norm = global_norm(grads)
    if not np.isfinite(norm):
        for k, g in grads.items():
            V.finite(f"grads['{k}']", np.asarray(g))
    factor = min(1.0, max_norm / (norm + 1e-12))
    return {k: V.float_array(k, g) * factor for k, g in grads.items()}, norm

"""Input checks of the recurrence layers (built on ``attention_np.validate``).

Every message names the argument and shows the shapes: ``k(2, 3, 5, 4) must have
the shape of q(2, 3, 6, 4)``. The layers need every array to share its leading
(batch, head) dimensions exactly: nothing is broadcast.
"""

import numpy as np

from .. import validate as V

FORMS = ("recurrent", "parallel", "chunkwise")


def check_qkv(q, k, v):
    """q, k (..., N, d_k) and v (..., N, d_v): float, one dtype, N, d_k, d_v >= 1."""
    q = V.float_array("q", q, min_ndim=2)
    k = V.float_array("k", k, min_ndim=2)
    v = V.float_array("v", v, min_ndim=2)
    V.same_dtype(q=q, k=k, v=v)
    if k.shape != q.shape:
        raise ValueError(f"k{k.shape} must have the shape of q{q.shape} (..., N, d_k)")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v{v.shape} must be (..., N, d_v) with the (..., N) of k{k.shape}"
        )
    if 0 in q.shape[-2:] or v.shape[-1] == 0:
        raise ValueError(
            f"q{q.shape} and v{v.shape} need N >= 1 positions and widths d_k, d_v >= 1"
        )
    return q, k, v


def check_gate(name, x, want, dtype):
    """A per-token array of exactly the shape ``want`` and the inputs' dtype."""
    x = V.float_array(name, x)
    if x.shape != tuple(want):
        raise ValueError(f"{name}{x.shape} must have shape {tuple(want)}")
    if x.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but q, k, v are {np.dtype(dtype)}: use one "
            "float dtype"
        )
    return x


def check_log_decay(name, x, want, dtype):
    """A log-decay log(alpha): finite and <= 0 (alpha in (0, 1]); NaN propagates."""
    x = check_gate(name, x, want, dtype)
    if np.any(x > 0):
        raise ValueError(
            f"{name} must be <= 0 (the log of a decay in (0, 1]), got max "
            f"{float(np.nanmax(x)):.3g}; e.g. pass -softplus(z) or log(sigmoid(z))"
        )
    if np.any(np.isneginf(x)):
        raise ValueError(
            f"{name} must be finite: -inf (alpha = 0) makes exp(b_i - b_j) NaN in "
            "the parallel and chunkwise forms; use a large negative value such as "
            "-1e4 for a full reset"
        )
    return x


def check_initial_state(initial_state, k, v):
    """None, or (..., d_k, d_v) with the leading dimensions and dtype of k."""
    if initial_state is None:
        return np.zeros(k.shape[:-2] + (k.shape[-1], v.shape[-1]), dtype=k.dtype)
    want = k.shape[:-2] + (k.shape[-1], v.shape[-1])
    return check_gate("initial_state", initial_state, want, k.dtype)


def check_options(form, chunk_size, scale, d_k):
    """form in FORMS, chunk_size >= 1, scale a finite number (None: 1/sqrt(d_k))."""
    V.choice("form", form, FORMS)
    chunk_size = V.positive_int("chunk_size", chunk_size)
    return chunk_size, V.scale_arg(scale, d_k)


def check_gamma(gamma, lead):
    """RetNet's fixed decays: None, a number or an array broadcastable to ``lead``.

    None gives RetNet's per-head 1 - 2^(-5 - h) over the last leading axis (heads).
    """
    if gamma is None:
        decays = retention_decays(lead[-1] if lead else 1)  # (H,)
        return np.broadcast_to(decays, lead) if lead else decays[0]
    if isinstance(gamma, (bool, np.bool_)):
        raise TypeError(f"gamma must be a number or an array, got {gamma!r}")
    gamma = V.float_array("gamma", gamma)
    try:
        gamma = np.broadcast_to(gamma, lead)
    except ValueError:
        raise ValueError(
            f"gamma{gamma.shape} must broadcast to the leading dimensions {lead} "
            "(e.g. (H,) for q of shape (B, H, N, d_k))"
        ) from None
    if not np.all((gamma > 0) & (gamma <= 1)):
        raise ValueError(f"gamma must lie in (0, 1], got {gamma.ravel()[:4]}...")
    return gamma


def retention_decays(n_heads):
    """(H,) RetNet's per-head decays gamma_h = 1 - 2^(-5 - h), h = 0 .. H - 1."""
    n_heads = V.positive_int("n_heads", n_heads)
    return 1.0 - 2.0 ** (-5.0 - np.arange(n_heads))

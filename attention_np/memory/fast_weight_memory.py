"""The fast-weight memory of Ba et al. (2016): write, read, and its attention view.

    write:  A_new = lam * A + eta * h^T h                  (B, D_h, D_h)
    read:   h A = eta * sum_tau lam^(n-1-tau) <h, h_tau> h_tau

The read is decayed, unnormalised dot-product attention from the query h to keys =
values = the stored states, so it can be computed without A
(``fast_weight_read_attention``); ``fast_weight_attention_matrix`` gives its weights.
The RNN that uses this memory is in ``fast_weights``.

Shape legend: B batch, T or n stored states, D_h hidden width.
"""

import numpy as np

from .. import validate as V


def _rates(lam, eta):
    """lam in [0, 1] (decay) and eta >= 0 (write strength), both finite."""
    return V.real("lam", lam, lo=0.0, hi=1.0), V.real("eta", eta, lo=0.0)


def _batch_rows(name, h, width_of, A_name):
    """h must be (B, D_h) with the B and D_h of a (B, ., D_h) array."""
    h = V.float_array(name, h, ndim=2)
    if h.shape != (width_of.shape[0], width_of.shape[-1]):
        raise ValueError(
            f"{name}{h.shape} must be (B, D_h) = "
            f"{(width_of.shape[0], width_of.shape[-1])} for {A_name}{width_of.shape}"
        )
    V.same_dtype(**{name: h, A_name: width_of})
    return h


def _memory(A):
    A = V.float_array("A", A, ndim=3)
    if A.shape[1] != A.shape[2]:
        raise ValueError(f"A{A.shape} must be square: (B, D_h, D_h)")
    return A


def fast_weight_update(A, h, *, lam, eta):
    """A_new = lam * A + eta * h^T h (one outer product per batch row).

    Args:
        A: (B, D_h, D_h) fast-weight matrix.
        h: (B, D_h) new hidden state.
        lam: decay in [0, 1]; eta: write strength >= 0.

    Returns:
        (B, D_h, D_h) updated memory.
    """
    A = _memory(A)
    h = _batch_rows("h", h, A, "A")
    return _update(A, h, *_rates(lam, eta))


def _update(A, h, lam, eta):
    return lam * A + eta * h[:, :, None] * h[:, None, :]  # (B, D_h, D_h)


def fast_weight_read(h, A):
    """h A: read the memory with query h. h (B, D_h), A (B, D_h, D_h) -> (B, D_h)."""
    A = _memory(A)
    return _read(_batch_rows("h", h, A, "A"), A)


def _read(h, A):
    return (h[:, None, :] @ A)[:, 0]  # (B, D_h)


def fast_weight_read_attention(h, past, *, lam, eta):
    """eta * sum_tau lam^(n-1-tau) <h, past_tau> past_tau: the read without A.

    Args:
        h: (B, D_h) query state.
        past: (B, n, D_h) the stored states h_1..h_n, oldest first.
        lam: decay in [0, 1]; eta: write strength >= 0.

    Returns:
        (B, D_h), equal to fast_weight_read(h, A_n).
    """
    past = V.float_array("past", past, ndim=3)
    h = _batch_rows("h", h, past, "past")
    return _read_attention(h, past, *_rates(lam, eta))


def _read_attention(h, past, lam, eta):
    n = past.shape[1]
    decay = lam ** np.arange(n - 1, -1, -1, dtype=h.dtype)  # (n,) newest gets lam^0
    scores = np.einsum("bd,bnd->bn", h, past) * decay  # (B, n) decayed dot products
    return eta * np.einsum("bn,bnd->bd", scores, past)  # (B, D_h)


def fast_weight_attention_matrix(H, *, lam, eta):
    """(B, T, T) weights eta lam^(t-1-tau) <h_t, h_tau> for tau < t, 0 elsewhere.

    Row t is how strongly the final state h_t (as a query) reads each earlier state:
    the unnormalised "attention" that the memory A_{t-1} performs. H: (B, T, D_h).
    """
    H = V.float_array("H", H, ndim=3)
    lam, eta = _rates(lam, eta)
    T = H.shape[1]
    t, tau = np.arange(T)[:, None], np.arange(T)[None, :]
    decay = np.where(tau < t, lam ** np.maximum(t - 1 - tau, 0), 0.0)  # (T, T)
    return eta * (H @ np.swapaxes(H, 1, 2)) * decay.astype(H.dtype)  # (B, T, T)

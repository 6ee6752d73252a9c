"""Reading attention weights: entropy per row and head, sink mass, offset mass.

    entropy      H_i = -sum_j P_ij log P_ij   (0 log 0 := 0),  0 <= H_i <= log n_i
    normalised   H_i / log n_i, n_i = number of keys row i may attend (0 when n_i <= 1)
    per head     the mean over rows; normalised, only rows with n_i >= 2 count
    sink mass    sum_{j < k} P_ij: the weight on the first k tokens (attention sinks,
                 Xiao et al. 2023)
    offset mass  P_{i, i + o}: e.g. o = -1 measures a previous-token head

Low entropy means a head looks at few keys (a "sharp" head); entropy near log n means
it averages. A fully masked row has no distribution: its entropy is defined as 0.

Shape legend: (...) leading axes such as (B, H) or (L, B, H), N queries, M keys.
"""

import numpy as np

from . import validate as V


def _weights_and_mask(weights, mask):
    P = V.float_array("weights", weights, min_ndim=2)
    if mask is None:
        return P, None
    V.bool_mask("mask", mask, P.shape)
    return P, np.broadcast_to(mask, P.shape)


def attention_entropy(weights, mask=None, *, normalized=False):
    """Entropy of every attention row, in nats.

    Args:
        weights: (..., N, M) attention weights, rows summing to 1 (or 0).
        mask: boolean, broadcastable to weights; False entries are excluded.
        normalized: divide by log n_i, so 0 = one-hot and 1 = uniform.

    Returns:
        (..., N) entropies; 0 for a fully masked row.
    """
    normalized = V.bool_arg("normalized", normalized)
    P, mask = _weights_and_mask(weights, mask)
    keep = P > 0 if mask is None else (P > 0) & mask  # 0 log 0 := 0
    logs = np.log(np.where(keep, P, 1.0))  # log 1 = 0 where excluded: no warning
    H = -np.sum(P * logs, axis=-1, where=keep)  # (..., N)
    if not normalized:
        return H
    n = P.shape[-1] if mask is None else mask.sum(axis=-1)  # (..., N) allowed keys
    log_n = np.log(np.maximum(n, 1)) * np.ones_like(H)  # (..., N)
    return np.divide(H, log_n, out=np.zeros_like(H), where=log_n > 0)


def _row_mean(values, rows):
    """Mean of (..., N) values over the rows where ``rows`` is True (0 if none)."""
    count = rows.sum(axis=-1)  # (...)
    total = np.sum(values, axis=-1, where=rows)  # (...)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def entropy_per_head(weights, mask=None, *, normalized=False):
    """Mean row entropy (..., ) over the queries that attend to something.

    For weights of shape (B, H, N, M) this is (B, H); average over B yourself.
    With ``normalized``, rows with fewer than 2 allowed keys are left out: their
    entropy and log n are both 0, so they say nothing about the head (a causal
    head that is uniform over its keys scores exactly 1, not (N-1)/N). A head
    with no such row scores 0. Un-normalised, every row that attends counts.
    """
    P, mask = _weights_and_mask(weights, mask)
    H = attention_entropy(P, mask, normalized=normalized)  # (..., N)
    live = (P.sum(axis=-1) > 0) if mask is None else mask.any(axis=-1)  # (..., N)
    if normalized:
        n = P.shape[-1] if mask is None else mask.sum(axis=-1)  # (..., N) allowed keys
        live = live & (n >= 2)  # a single key: 0 / log 1, no information
    return _row_mean(H, live)


def sink_mass(weights, n_sink=1):
    """(..., N) weight each query puts on the first ``n_sink`` keys."""
    P = V.float_array("weights", weights, min_ndim=2)
    n_sink = V.positive_int("n_sink", n_sink)
    return P[..., :n_sink].sum(axis=-1)  # (..., N)


def sink_mass_per_head(weights, n_sink=1, *, skip_first=True):
    """Mean sink mass over queries: (...,).

    With ``skip_first`` the first n_sink queries are left out: under a causal mask
    they can only attend to the sink tokens, which says nothing about the head.
    """
    skip_first = V.bool_arg("skip_first", skip_first)
    mass = sink_mass(weights, n_sink)  # (..., N)
    return mass[..., n_sink if skip_first else 0 :].mean(axis=-1)


def offset_mass(weights, offset):
    """(..., N) weight query i puts on key i + offset (0 where that key is absent).

    offset = -1 scores a previous-token head; with M != N, key and query positions
    are aligned bottom-right (query i sits at position i + M - N).
    """
    P = V.float_array("weights", weights, min_ndim=2)
    N, M = P.shape[-2:]
    j = np.arange(N) + (M - N) + int(offset)  # (N,) key index for each query
    valid = (j >= 0) & (j < M)
    out = np.zeros(P.shape[:-1], dtype=P.dtype)  # (..., N)
    rows = np.arange(N)[valid]
    out[..., valid] = P[..., rows, j[valid]]
    return out

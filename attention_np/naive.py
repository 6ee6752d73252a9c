"""Slow, obviously-correct loop versions: the oracles the tests compare against.

Nothing here is vectorised beyond a single dot product, and nothing is clever: each
function follows the textbook definition one row or one head at a time.
"""

import math

import numpy as np

from . import validate as V


def softmax_naive(x, mask=None):
    """Softmax over the last axis, one row at a time (masked entries get 0)."""
    x = np.asarray(x, dtype=np.float64)
    allow = np.ones(x.shape, bool) if mask is None else np.broadcast_to(mask, x.shape)
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        keys = [j for j in range(x.shape[-1]) if allow[idx][j] and x[idx][j] != -np.inf]
        if not keys:
            continue  # fully masked row: all zeros
        top = max(x[idx][j] for j in keys)
        total = sum(math.exp(x[idx][j] - top) for j in keys)
        for j in keys:
            out[idx][j] = math.exp(x[idx][j] - top) / total
    return out


def attention_naive(q, k, v, mask=None, *, causal, align="top_left", scale=None):
    """softmax(scale q k^T) v for one query row and one key at a time.

    q (..., N, d), k (..., M, d), v (..., M, d_v) with equal leading dimensions
    (or broadcastable ones); returns (out (..., N, d_v), weights (..., N, M)).
    ``causal``: key j is visible to query i when j <= i (+ M - N for
    align="bottom_right"), checked one pair at a time.
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    N, d, M, d_v = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    shift = V.causal_offset(causal, align, N, M)  # None: not causal
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
    allow = (
        np.ones(lead + (N, M), bool)
        if mask is None
        else np.broadcast_to(mask, lead + (N, M))
    )
    out = np.zeros(lead + (N, d_v))
    weights = np.zeros(lead + (N, M))
    for idx in np.ndindex(lead):
        for i in range(N):
            scores = [float(np.dot(q[idx][i], k[idx][j])) * scale for j in range(M)]
            row = np.array(allow[idx][i])
            if shift is not None:
                row &= np.arange(M) <= i + shift  # key j in the past of query i
            weights[idx][i] = softmax_naive(np.array(scores), row)
            for j in range(M):
                out[idx][i] += weights[idx][i][j] * v[idx][j]
    return out, weights


def mha_naive(x_q, x_kv, params, mask=None, *, n_heads, causal, align="top_left"):
    """Multi-head attention with an explicit loop over heads.

    Head h uses columns h*d:(h+1)*d of W_q, W_k, W_v; the head outputs are
    concatenated and projected by W_o. Returns (out (B, N, D), weights (B, H, N, M)).
    """
    D = params["W_q"].shape[1]
    d = D // n_heads
    zero = np.zeros(D)
    q = x_q @ params["W_q"] + params.get("b_q", zero)
    k = x_kv @ params["W_k"] + params.get("b_k", zero)
    v = x_kv @ params["W_v"] + params.get("b_v", zero)
    B, N, M = x_q.shape[0], x_q.shape[1], x_kv.shape[1]
    heads, weights = [], np.zeros((B, n_heads, N, M))
    for h in range(n_heads):
        cols = slice(h * d, (h + 1) * d)
        head_mask = (
            None if mask is None else np.broadcast_to(mask, (B, n_heads, N, M))[:, h]
        )
        o_h, weights[:, h] = attention_naive(
            q[..., cols],
            k[..., cols],
            v[..., cols],
            head_mask,
            causal=causal,
            align=align,
        )
        heads.append(o_h)
    concat = np.concatenate(heads, axis=-1)  # (B, N, D)
    return concat @ params["W_o"] + params.get("b_o", zero), weights

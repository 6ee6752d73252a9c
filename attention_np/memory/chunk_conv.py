"""Chunking and the chunk-local depthwise convolution of In-Place TTT.

In-Place TTT cuts a sequence into chunks of C positions. Its target is a depthwise
convolution along the positions of each chunk that never reads across a chunk
boundary (rows outside the chunk count as zero):

    out[c] = sum_k w[k] * t[c + k - K // 2]          (K odd, one weight per channel)

so with K = 5 position c mixes c-2..c+2 of its own chunk, including the next two.

Shape legend: B batch, T positions, n chunks, C chunk size, D channels, K kernel size.
"""

import numpy as np


def to_chunks(x, C):
    """(B, T, X) -> (B, n, C, X), zero rows appended so that C divides the length."""
    B, T, X = x.shape
    n = max(1, -(-T // C))
    return np.pad(x, ((0, 0), (0, n * C - T), (0, 0))).reshape(B, n, C, X)


def valid_rows(B, T, lengths, dtype):
    """(B, T, 1) 1.0 where position t < length, 0.0 on padding rows."""
    if lengths is None:
        return np.ones((B, T, 1), dtype=dtype)
    valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
    return valid[..., None].astype(dtype)


def chunk_conv_forward(t, w):
    """Depthwise conv inside each chunk: out[c] = sum_k w[k] * t[c + k - K // 2].

    Args:
        t: (B, n, C, D) chunked input; w: (K, D) kernel, K odd.

    Returns:
        out (B, n, C, D), cache for ``chunk_conv_backward``.
    """
    K, r, Cn = w.shape[0], w.shape[0] // 2, t.shape[2]
    tp = np.pad(t, ((0, 0), (0, 0), (r, r), (0, 0)))  # (B, n, C + K - 1, D)
    out = sum(w[k] * tp[:, :, k : k + Cn] for k in range(K))  # (B, n, C, D)
    return out, (tp, w)


def chunk_conv_backward(dout, cache):
    """dt (B, n, C, D) and dw (K, D) of chunk_conv_forward."""
    tp, w = cache
    K, r, Cn = w.shape[0], w.shape[0] // 2, dout.shape[2]
    dtp = np.zeros_like(tp)
    dw = np.empty_like(w)
    for k in range(K):  # forward: out[c] += w[k] * tp[c + k]
        dtp[:, :, k : k + Cn] += w[k] * dout
        dw[k] = np.sum(dout * tp[:, :, k : k + Cn], axis=(0, 1, 2))
    return dtp[:, :, r : r + Cn], dw

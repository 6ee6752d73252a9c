"""Sliding-window attention in O(N w) memory: block-banded (Longformer's "chunks").

Cut the sequence into blocks of b = max(left, right) positions, where a query may
see ``left`` keys behind and ``right`` ahead (causal: left = w - 1, right = 0;
bidirectional: left = right = w // 2). Then query block t only needs key blocks
t - 1, t, t + 1 (fewer when right or left is 0). Stack those neighbours into a
window of nw * b keys per block and run ordinary attention per block with a
relative mask: scores (..., nb, b, nw b) instead of (..., N, N).

    exact: the result equals dense attention with ``sliding_window_mask`` (ANDed
    with ``mask``); a window reaching past every key is full (causal) attention.
    memory: O(N nw b) = O(N w) scores plus O(N nw d) gathered keys and values.

``causal`` is required; ``align`` is accepted and ignored (N == M: both rules
agree). A reach beyond N - 1 is clipped, so a huge window costs no more than one
covering the sequence. The blocks are independent (batch, head, block) slices of
core attention, which runs them on ``workers`` threads. The backward is the core
attention backward on the blocks, then a scatter-add of each window's key/value
gradients back to their positions.

Shape legend: q, k (..., N, d), v (..., N, d_v); blocks (..., nb, b, .),
windows (..., nb, nw b, .), nb = ceil(N / b), nw = number of neighbour blocks.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_backward, attention_forward


class BandedCache(NamedTuple):
    """The core attention cache on the blocks and how the blocks were cut."""

    core: tuple  # AttentionCache of attention on (..., nb, b, .) blocks
    geometry: tuple  # (N, b, n_left, nw)


def _geometry(N, window, causal):
    left, right = (window - 1, 0) if causal else (window // 2, window // 2)
    # a reach beyond N - 1 adds no key: clip it, so a huge window costs O(N^2) at most
    left, right = min(left, max(N - 1, 0)), min(right, max(N - 1, 0))
    b = max(left, right, 1)
    n_left, n_right = -(-left // b), -(-right // b)  # neighbour blocks each side
    return left, right, b, n_left, n_left + 1 + n_right


def _pad(x, before, after):
    width = [(0, 0)] * (x.ndim - 2) + [(before, after), (0, 0)]
    return np.pad(x, width)


def _windows(x, b, n_left, nw, nb):
    """(..., N, w) -> (..., nb, nw b, w): for each block, its neighbours' rows."""
    after = nb * b - x.shape[-2] + (nw - 1 - n_left) * b
    xp = _pad(x, n_left * b, after)  # (..., (nb + nw - 1) b, w)
    xb = xp.reshape(xp.shape[:-2] + (nb + nw - 1, b, xp.shape[-1]))
    return np.concatenate([xb[..., o : o + nb, :, :] for o in range(nw)], axis=-2)


def _allowed(N, left, right, b, n_left, nw, nb, mask, lead):
    """(nb, b, nw b) relative band, AND the user mask gathered to the same cells."""
    i = np.arange(nb)[:, None, None] * b + np.arange(b)[None, :, None]  # (nb, b, 1)
    j = (np.arange(nb)[:, None, None] - n_left) * b + np.arange(nw * b)  # (nb, 1, nwb)
    allow = (j >= i - left) & (j <= i + right) & (j >= 0) & (j < N)  # (nb, b, nw b)
    if mask is not None:
        full = np.broadcast_to(mask, lead + (N, N))  # a view, nothing copied
        allow = allow & full[..., np.minimum(i, N - 1), np.clip(j, 0, N - 1)]
    return allow


def _check(q, k, v, mask, scale, window, causal, align):
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    window = V.positive_int("window", window)
    causal, _ = V.causal_arg(causal), V.align_arg(align)  # N == M: align is moot
    if k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"sliding-window attention needs N == M, got q{q.shape}, k{k.shape}"
        )
    return q, k, v, scale, window, causal


def sliding_window_attention_forward(
    q, k, v, mask=None, *, window, causal, align="top_left", scale=None, workers=None
):
    """Attention restricted to a sliding window, without any (N, N) array.

    Args:
        q: (..., N, d), k: (..., N, d), v: (..., N, d_v) (self-attention, M = N).
        mask: optional boolean broadcastable to (..., N, N), ANDed with the window.
        window: causal: the ``window`` most recent keys (including i);
            bidirectional: keys with |i - j| <= window // 2. A window reaching past
            every key (e.g. 2 N + 1) gives full (causal) attention.
        causal: True or False (required); see ``window``.
        align: accepted for the common signature and ignored: N == M, so both
            alignments are the same rule.
        scale: score scale, default 1/sqrt(d).
        workers: threads over the (batch, head, block) slices, None for
            ``validate.default_workers()``; the backward uses the same.

    Returns:
        out (..., N, d_v), equal to dense attention with the mask
        ``sliding_window_mask(N, window, causal=causal) & mask``, and a BandedCache.
    """
    q, k, v, scale, window, causal = _check(q, k, v, mask, scale, window, causal, align)
    N = q.shape[-2]
    left, right, b, n_left, nw = _geometry(N, window, causal)
    nb = max(1, -(-N // b))
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    qb = _pad(q, 0, nb * b - N).reshape(q.shape[:-2] + (nb, b, q.shape[-1]))
    kw, vw = (_windows(x, b, n_left, nw, nb) for x in (k, v))  # (..., nb, nw b, .)
    allow = _allowed(N, left, right, b, n_left, nw, nb, mask, lead)
    # (..., nb, b, d_v): the band is the mask; no causal rule on top of it
    out, core = attention_forward(
        qb, kw, vw, allow, causal=False, scale=scale, workers=workers
    )
    out = out.reshape(out.shape[:-3] + (nb * b, out.shape[-1]))[..., :N, :]
    return out, BandedCache(core, (N, b, n_left, nw))


def _scatter_windows(gw, b, n_left, nw, N):
    """Adjoint of _windows: add each window's rows back to their positions."""
    nb = gw.shape[-3]
    g = gw.reshape(gw.shape[:-2] + (nw, b, gw.shape[-1]))  # (..., nb, nw, b, w)
    out = np.zeros(gw.shape[:-3] + (nb + nw - 1, b, gw.shape[-1]), gw.dtype)
    for o in range(nw):
        out[..., o : o + nb, :, :] += g[..., o, :, :]
    out = out.reshape(out.shape[:-3] + (-1, out.shape[-1]))
    return out[..., n_left * b : n_left * b + N, :]  # (..., N, w)


def sliding_window_attention_backward(dout, cache):
    """Gradients of sliding_window_attention_forward: dq, dk, dv (inputs' shapes)."""
    core, (N, b, n_left, nw) = cache
    V.grad_shape("dout", dout, core.out.shape[:-3] + (N, core.out.shape[-1]))
    nb = core.out.shape[-3]
    dout_b = _pad(dout, 0, nb * b - N).reshape(core.out.shape)  # (..., nb, b, d_v)
    dqb, dkw, dvw = attention_backward(dout_b, core)
    dq = dqb.reshape(dqb.shape[:-3] + (nb * b, dqb.shape[-1]))[..., :N, :]
    dk, dv = (_scatter_windows(g, b, n_left, nw, N) for g in (dkw, dvw))
    return dq, dk, dv


def band_blocks(N, window, *, causal, align="top_left"):
    """The (rows, cols) slices the banded computation covers, for pictures and tests.

    Each block of b query rows meets its nw neighbouring key blocks; slices are cut
    to [0, N). Together they contain every pair of ``sliding_window_mask``.
    ``align`` is accepted and ignored (N queries, N keys: both rules are the same).
    """
    N, window = V.positive_int("N", N), V.positive_int("window", window)
    causal, _ = V.causal_arg(causal), V.align_arg(align)
    _, _, b, n_left, nw = _geometry(N, window, causal)
    spans = []
    for t in range(-(-N // b)):
        lo, hi = max(0, (t - n_left) * b), min(N, (t - n_left + nw) * b)
        spans.append((slice(t * b, min(N, (t + 1) * b)), slice(lo, hi)))
    return spans

"""Boolean attention masks: True = may attend.

One convention in the whole package (the PyTorch SDPA one): a mask is a boolean array
broadcastable to the scores' shape (B, H, N, M); ``mask[..., i, j]`` is True when query
i may look at key j. A row with no True entry ("fully masked") gives zero weights, a
zero output and zero gradients, never NaN.

Shape legend: B batch, H heads, N query positions, M key positions.
"""

import numpy as np

from . import validate as V

ALIGNS = V.ALIGNS


def causal_mask(N, M=None, *, align="top_left"):
    """Causal mask (N, M): query i may attend key j when j <= i (+ offset).

    Args:
        N: number of query positions.
        M: number of key positions (default N).
        align: "top_left" allows j <= i (PyTorch ``is_causal``); "bottom_right"
            allows j <= i + (M - N), so the last query sees every key: what a
            KV-cache step with N < M needs (FlashAttention >= 2.1).

    Returns:
        (N, M) boolean mask.
    """
    N = V.positive_int("N", N, allow_zero=True)
    M = N if M is None else V.positive_int("M", M, allow_zero=True)
    offset = V.causal_offset(True, align, N, M)
    i = np.arange(N)[:, None]  # (N, 1)
    j = np.arange(M)[None, :]  # (1, M)
    return j <= i + offset  # (N, M)


def padding_mask(lengths, M):
    """Key-padding mask (B, 1, 1, M): key j of sequence b is real when j < lengths[b].

    Args:
        lengths: (B,) number of real (non-padding) keys in each sequence, 0..M.
        M: padded key length.

    Returns:
        (B, 1, 1, M) boolean mask; it broadcasts over heads and queries.
    """
    M = V.positive_int("M", M, allow_zero=True)
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        if (
            arr.dtype.kind == "f"
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"lengths must be integers, got dtype {arr.dtype}: {lengths!r}"
            )
    if arr.ndim != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > M):
        raise ValueError(f"lengths must lie in [0, M={M}], got {arr.tolist()}")
    keep = np.arange(M)[None, :] < arr[:, None]  # (B, M)
    return keep[:, None, None, :]  # (B, 1, 1, M)


def combine_masks(*masks):
    """Logical AND of boolean masks (None entries are skipped); broadcasts shapes.

    Returns None when every argument is None (no masking at all).
    """
    present = [m for m in masks if m is not None]
    for idx, m in enumerate(masks):  # idx counts every argument, None included
        if m is not None and (not isinstance(m, np.ndarray) or m.dtype != np.bool_):
            got = m.dtype if isinstance(m, np.ndarray) else type(m).__name__
            raise TypeError(
                f"combine_masks: mask #{idx} must be a boolean array, got {got}"
            )
    if not present:
        return None
    try:
        shape = np.broadcast_shapes(*(m.shape for m in present))
    except ValueError:
        shapes = ", ".join(str(m.shape) for m in present)
        raise ValueError(
            f"combine_masks: mask shapes {shapes} do not broadcast"
        ) from None
    out = np.ones(shape, dtype=bool)
    for m in present:
        out &= m
    return out


def attention_mask(mask, *, causal, align="top_left", N, M):
    """The one boolean mask that ``(mask, causal, align)`` mean for N queries, M keys.

    The causal rule (``causal_mask(N, M, align=align)``) ANDed with ``mask``; None
    when there is neither (nothing masked). Every module that takes ``mask``,
    ``causal`` and ``align`` gives them this meaning. ``mask`` must be boolean and
    broadcast to (..., N, M).
    """
    N = V.positive_int("N", N, allow_zero=True)
    M = V.positive_int("M", M, allow_zero=True)
    offset = V.causal_offset(causal, align, N, M)
    if mask is not None:
        lead = np.shape(mask)[:-2]  # any leading axes, e.g. (B, H)
        V.bool_mask("mask", mask, lead + (N, M))
    if offset is None:
        return mask
    rule = causal_mask(N, M, align=align)  # (N, M)
    return rule if mask is None else combine_masks(mask, rule)

"""Sparse attention patterns as boolean masks (True = may attend), shape (N, N).

    sliding window (Longformer), causal:   i - window < j <= i
    sliding window, bidirectional:         |i - j| <= window // 2
    dilated (gap g), causal:               j = i - t g,  t = 0 .. window - 1
    strided (Sparse Transformer):          (i - j) mod stride == 0   (and j <= i)
    BigBird (on blocks of block_size):     window blocks | global blocks (whole rows
                                           and columns) | n_random random blocks

Each pattern keeps O(N w) of the N^2 pairs. Any of them can go to the core
``attention_forward`` or to ``flash_attention_forward`` (which skips the all-False
tiles, so a block-aligned pattern costs only its blocks); the sliding window also
has an O(N w) banded computation in ``banded.py``.

Every causal-capable builder takes ``causal`` (keyword-only, required) and
``align``; the masks are square (N queries, N keys), where "top_left" and
"bottom_right" are the same rule, so ``align`` is checked and ignored.

Shape legend: N sequence length (queries = keys), w window, nb = ceil(N / block).
"""

import numpy as np

from .. import validate as V


def _offsets(N):
    """(N, N) array of i - j: how far key j lies behind query i."""
    N = V.positive_int("N", N, allow_zero=True)
    return np.arange(N)[:, None] - np.arange(N)[None, :]  # (N, N)


def _causal(causal, align):
    """Validated ``causal``; ``align`` is checked and ignored (N == M: one rule)."""
    V.align_arg(align)
    return V.causal_arg(causal)


def sliding_window_mask(N, window, *, causal, align="top_left"):
    """Local attention: the last ``window`` keys (causal) or |i - j| <= window // 2.

    ``causal`` is required; ``align`` is accepted and ignored (N == M).
    """
    window = V.positive_int("window", window)
    causal = _causal(causal, align)
    gap = _offsets(N)
    if causal:
        return (gap >= 0) & (gap < window)  # (N, N) row i sees min(i + 1, w) keys
    return np.abs(gap) <= window // 2


def dilated_mask(N, window, dilation, *, causal, align="top_left"):
    """A window of ``window`` keys spaced ``dilation`` apart (receptive field w g).

    Causal: keys i, i - g, ..., i - (w - 1) g; otherwise |i - j| = t g with
    t <= window // 2. ``align`` is accepted and ignored (N == M).
    """
    window = V.positive_int("window", window)
    dilation = V.positive_int("dilation", dilation)
    causal = _causal(causal, align)
    gap = _offsets(N)
    steps = np.abs(gap) // dilation
    on_grid = gap % dilation == 0
    if causal:
        return on_grid & (gap >= 0) & (steps < window)
    return on_grid & (steps <= window // 2)


def strided_mask(N, stride, *, causal, align="top_left"):
    """Sparse Transformer "strided" head: keys a multiple of ``stride`` away
    (behind only when causal). ``align`` is accepted and ignored (N == M)."""
    stride = V.positive_int("stride", stride)
    causal = _causal(causal, align)
    gap = _offsets(N)
    allow = gap % stride == 0
    return allow & (gap >= 0) if causal else allow


def _global_blocks(global_blocks, nb):
    """Sorted distinct block indices in [0, nb) from ints in [-nb, nb)."""
    if isinstance(global_blocks, (str, bytes)) or not np.iterable(global_blocks):
        raise TypeError(
            f"global_blocks must be a sequence of ints, got {global_blocks!r}"
        )
    found = set()
    for g in global_blocks:
        if isinstance(g, (bool, np.bool_)) or not isinstance(g, (int, np.integer)):
            raise TypeError(f"global_blocks must hold ints, got {g!r}")
        if not -nb <= g < nb:
            raise ValueError(f"global_blocks: block {g} does not exist ({nb} blocks)")
        found.add(int(g) % nb)
    return sorted(found)


def _bigbird_args(nb, n_window, global_blocks, n_random):
    """Validated band width (odd), global block indices and random blocks per row."""
    n_window = V.positive_int("n_window", n_window)
    if n_window % 2 == 0:
        raise ValueError(f"n_window must be odd (self and equal sides), got {n_window}")
    n_random = V.positive_int("n_random", n_random, allow_zero=True)
    return n_window, _global_blocks(global_blocks, nb), n_random


def bigbird_layout(n_blocks, *, rng, n_window=3, global_blocks=(0, -1), n_random=3):
    """(n_blocks, n_blocks) boolean block layout of BigBird (Zaheer et al. 2020).

    Args:
        n_blocks: number of blocks.
        rng: np.random.Generator for the random blocks.
        n_window: width of the band of neighbouring blocks (odd; 3 = left, self,
            right).
        global_blocks: block indices in [-n_blocks, n_blocks) that attend to, and
            are attended by, all.
        n_random: random key blocks per query block, drawn outside the band and
            the global blocks.
    """
    nb = V.positive_int("n_blocks", n_blocks)
    V.rng_arg(rng)
    n_window, glob, n_random = _bigbird_args(nb, n_window, global_blocks, n_random)
    band = np.abs(np.arange(nb)[:, None] - np.arange(nb)[None, :]) <= n_window // 2
    layout = band.copy()  # (nb, nb)
    layout[glob, :] = True  # global rows see everything
    layout[:, glob] = True  # and everything sees the global columns
    for row in range(nb):
        if row in glob:
            continue
        free = np.flatnonzero(~band[row])
        free = np.setdiff1d(free, glob)
        picks = rng.choice(free, size=min(n_random, free.size), replace=False)
        layout[row, picks] = True
    return layout


def bigbird_mask(N, block_size, *, rng, n_window=3, global_blocks=(0, -1), n_random=3):
    """(N, N) BigBird mask: ``bigbird_layout`` expanded to tokens, cut to N."""
    block_size = V.positive_int("block_size", block_size)
    nb = max(1, -(-V.positive_int("N", N) // block_size))
    layout = bigbird_layout(
        nb, rng=rng, n_window=n_window, global_blocks=global_blocks, n_random=n_random
    )
    cells = np.ones((block_size, block_size), dtype=bool)
    return np.kron(layout, cells).astype(bool)[:N, :N]  # (N, N)

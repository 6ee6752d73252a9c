"""Beyond O(N^2): exact tiled attention, linear attention and sparse attention.

Every function that can be causal takes ``causal`` keyword-only and required
(``causal=True`` or ``causal=False``) and ``align="top_left" | "bottom_right"``
(key j visible to query i when j <= i, or j <= i + M - N); see CONTRIBUTING.md.

- ``flash``: exact attention in tiles with an online softmax (FlashAttention-2);
  ``out, cache = flash_attention_forward(q, k, v, mask, *, causal, align, block_q,
  block_k, scale, workers=None)``, ``cache.lse`` the log-sum-exp;
  ``dq, dk, dv = flash_attention_backward(dout, cache)``.
- ``flash_reference``: the same algorithm as a plain, slow double loop over tiles,
  for reading: ``out, cache = flash_attention_reference(q, k, v, mask, *, causal,
  ...)`` with ``cache.lse``; leading (batch, head) dimensions broadcast.
- ``block_attention``: one query block against one key block with (out, lse) and a
  backward from the global lse (the unit of ring attention).
- ``online_softmax``: the streaming max-and-sum recurrence on its own.
- ``linear_attention`` (+ ``feature_maps``, ``performer``, ``kernel_products``,
  ``linear_streaming``): phi(q).phi(k) instead of exp(q.k); parallel, recurrent (RNN)
  and chunkwise forms (the last two causal only; N != M follows ``align``); the
  non-causal form streams its rows in cache-sized chunks. FAVOR+ features:
  ``phi, cache = favor_forward(x, omega)``, ``dx, domega = favor_backward(dout,
  cache)``.
- ``sparse_masks``, ``banded``: sliding-window, dilated, strided and BigBird
  patterns (N == M: ``align`` is accepted and ignored); the sliding window in
  O(N w) memory with ``sliding_window_attention_forward(q, k, v, mask, *, window,
  causal)``.
- ``peak_memory``: ``peak_bytes(fn)``, the peak memory of one call (tracemalloc).
"""

from .banded import sliding_window_attention_backward, sliding_window_attention_forward
from .block_attention import (
    block_attention_backward,
    block_attention_cache,
    block_attention_forward,
)
from .flash import FlashCache, flash_attention_backward, flash_attention_forward
from .flash_reference import flash_attention_reference
from .linear_attention import (
    linear_attention_backward,
    linear_attention_forward,
    linear_attention_weights,
)
from .online_softmax import online_logsumexp, online_softmax, online_softmax_step
from .peak_memory import peak_bytes
from .performer import favor_backward, favor_forward, favor_omega
from .sparse_masks import (
    bigbird_layout,
    bigbird_mask,
    dilated_mask,
    sliding_window_mask,
    strided_mask,
)

__all__ = [
    "FlashCache",
    "bigbird_layout",
    "bigbird_mask",
    "block_attention_backward",
    "block_attention_cache",
    "block_attention_forward",
    "dilated_mask",
    "favor_backward",
    "favor_forward",
    "favor_omega",
    "flash_attention_backward",
    "flash_attention_forward",
    "flash_attention_reference",
    "linear_attention_backward",
    "linear_attention_forward",
    "linear_attention_weights",
    "online_logsumexp",
    "online_softmax",
    "online_softmax_step",
    "peak_bytes",
    "sliding_window_attention_backward",
    "sliding_window_attention_forward",
    "sliding_window_mask",
    "strided_mask",
]

"""Beyond O(N^2): exact tiled attention, linear attention and sparse attention.

- ``flash``: exact attention in tiles with an online softmax (FlashAttention-2);
  ``out, cache = flash_attention_forward(...)``, ``cache.lse`` the log-sum-exp.
- ``block_attention``: one query block against one key block with (out, lse) and a
  backward from the global lse (the unit of ring attention).
- ``online_softmax``: the streaming max-and-sum recurrence on its own.
"""

from .block_attention import block_attention_backward, block_attention_forward
from .flash import FlashCache, flash_attention_backward, flash_attention_forward
from .online_softmax import online_logsumexp, online_softmax, online_softmax_step

__all__ = [
    "FlashCache",
    "block_attention_backward",
    "block_attention_forward",
    "flash_attention_backward",
    "flash_attention_forward",
    "online_logsumexp",
    "online_softmax",
    "online_softmax_step",
]

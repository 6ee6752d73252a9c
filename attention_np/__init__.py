"""attention_np: attention mechanisms from scratch in NumPy, forward and backward.

Every layer is a pair ``out, cache = thing_forward(...)`` /
``grads = thing_backward(dout, cache)``; every backward is checked against finite
differences (``python -m attention_np gradcheck``). Masks are boolean, True = may
attend; every attention function takes ``causal=True/False`` (required, keyword-only)
and ``align="top_left" | "bottom_right"`` (CONTRIBUTING.md).

Shape legend: B batch, H heads, N query positions, M key positions, D model width,
d = D / H head width.
"""

from .attention import (
    AttentionCache,
    attention_backward,
    attention_forward,
    attention_weights,
)
from .gradcheck import (
    check_layer,
    grad_report,
    numerical_grad,
    numerical_grads,
    rel_error,
)
from .layers import (
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
)
from .linear import linear_backward, linear_forward
from .masks import causal_mask, combine_masks, padding_mask
from .multihead import (
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    split_heads,
)
from .softmax import softmax_backward, softmax_forward

__version__ = "0.1.0"

__all__ = [
    "AttentionCache",
    "attention_backward",
    "attention_forward",
    "attention_weights",
    "causal_mask",
    "check_layer",
    "combine_masks",
    "embedding_backward",
    "embedding_forward",
    "gelu_backward",
    "gelu_forward",
    "grad_report",
    "init_mha_params",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "merge_heads",
    "mha_backward",
    "mha_forward",
    "numerical_grad",
    "numerical_grads",
    "padding_mask",
    "rel_error",
    "softmax_backward",
    "softmax_forward",
    "split_heads",
]

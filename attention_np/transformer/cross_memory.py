"""Cross-attention while decoding: the encoder's keys and values, projected once.

The source does not change while the decoder writes, so each decoder layer
projects the encoder output to its cross-attention keys and values once
(``cross_memory``); every decoding step then projects only its new queries and
attends over that memory (``cross_attention_decode``), with the same numbers as
``cross_attention_forward`` on the encoder output (up to rounding). Inference only.

Shape legend: B batch, H heads, n new target positions, M source positions,
D model width, d = D / H head width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..additive import ADDITIVE_KEYS, additive_attention_forward
from ..decoding import gqa_attention_forward
from ..linear import linear_forward
from ..multihead import merge_heads
from .cross_attention import _project, check_cross_attention_params


class CrossMemory(NamedTuple):
    """An encoder output projected once for decoding: keys k, values v (B, H, M, d)."""

    k: np.ndarray
    v: np.ndarray


def _widths(params):
    """(D, D_kv) read off W_q and W_k (1 where missing: the check names them)."""
    V.instance("params", params, dict)
    W_q, W_k = params.get("W_q"), params.get("W_k")
    D = W_q.shape[0] if isinstance(W_q, np.ndarray) and W_q.ndim == 2 else 1
    D_kv = W_k.shape[0] if isinstance(W_k, np.ndarray) and W_k.ndim == 2 else 1
    return D, D_kv


def cross_memory(x_kv, params, *, n_heads, score="dot"):
    """The encoder output's keys and values, projected once: a ``CrossMemory``.

    Args:
        x_kv: (B, M, D_kv) encoder output.
        params, n_heads, score: as in ``cross_attention_forward``.
    """
    x_kv = V.float_array("x_kv", x_kv, ndim=3)
    H = V.positive_int("n_heads", n_heads)
    D, _ = _widths(params)
    has_bias, _ = check_cross_attention_params(
        params,
        D,
        x_kv.shape[-1],
        H,
        score=score,
        dtype=x_kv.dtype,
        inputs={"x_kv": x_kv.shape},
    )
    k, _ = _project(x_kv, params, "k", H, has_bias)  # (B, H, M, d)
    v, _ = _project(x_kv, params, "v", H, has_bias)  # (B, H, M, d)
    return CrossMemory(k, v)


def cross_attention_decode(x_q, memory, params, mask=None, *, n_heads, score="dot"):
    """Cross-attention of new decoder states over a ``CrossMemory`` (inference).

    The same numbers as ``cross_attention_forward`` on the encoder output the memory
    was made from, without projecting its keys and values again.

    Args:
        x_q: (B, n, D) states of the new target positions.
        memory: ``cross_memory(x_kv, params, n_heads=H, score=score)``.
        params, mask, n_heads, score: as in ``cross_attention_forward``.

    Returns:
        out (B, n, D) and the weights (B, H, n, M).
    """
    x_q = V.float_array("x_q", x_q, ndim=3)
    V.instance("memory", memory, CrossMemory)
    H = V.positive_int("n_heads", n_heads)
    k = V.float_array("memory.k", memory.k, ndim=4)
    v = V.float_array("memory.v", memory.v, ndim=4)
    (B, n, D), (_, _, M, d) = x_q.shape, k.shape
    if k.shape[:2] != (B, H) or D != H * d or v.shape != k.shape:
        raise ValueError(
            f"memory.k{k.shape} and memory.v{v.shape} must be (B, H, M, d) = "
            f"({B}, {H}, M, {D // H}) for x_q{x_q.shape} and n_heads={H}"
        )
    has_bias, _ = check_cross_attention_params(
        params, D, _widths(params)[1], H, score=score, dtype=x_q.dtype
    )
    if mask is not None:
        V.bool_mask("mask", mask, (B, H, n, M))
    q, _ = _project(x_q, params, "q", H, has_bias)  # (B, H, n, d)
    if score == "dot":
        o, c = gqa_attention_forward(q, k, v, mask, causal=False)  # (B, H, n, d)
    else:
        add = {key: params[key] for key in ADDITIVE_KEYS}
        o, c = additive_attention_forward(q, k, v, add, mask, causal=False)
    b_o = params["b_o"] if has_bias else None
    out, _ = linear_forward(merge_heads(o), params["W_o"], b_o)  # (B, n, D)
    return out, c.weights

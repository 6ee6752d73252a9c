"""An encoder-only transformer (BERT-style): the decoder-only model's layers and
parameters, with the causal rule as a switch.

    h_0 = E[ids] + P                   (B, N, D)
    h_l = block_l(h_{l-1}, causal)     causal=False: every token sees every token
    logits = LN_f(h_L) W_head + b      (B, N, V): a prediction *at* every position

Trained with masked-token prediction (Devlin et al. 2019) the output at position i
predicts the token hidden at i, so a bidirectional encoder reads both sides of the
blank. The same model with ``causal=True`` (the control) reads only the left side;
it is then exactly ``model_forward``, and its parameters are ``init_params(config)``
for a ``TransformerConfig``, so one checkpoint format serves both.

Shape legend: B batch, N positions, D width, V vocabulary, L layers, H heads.
"""

import numpy as np

from .. import validate as V
from ..linear import linear_forward
from ._params import sub
from .block import block_forward
from .layers import layernorm_forward
from .model import (
    ModelCache,
    _check_ids,
    _embed,
    check_model_params,
    model_backward,
)


def encoder_model_forward(ids, params, config, mask=None, *, causal, align="top_left"):
    """Logits at every position of an encoder over the whole sequence.

    Args:
        ids: (B, N) tokens in [0, vocab_size), N <= max_len.
        params: from ``init_params(config)``; config: a TransformerConfig.
        mask: boolean, broadcastable to (B, H, N, N), True = may attend (e.g. key
            padding), ANDed with the causal rule.
        causal: False for a bidirectional encoder, True for the left-to-right
            control (then equal to ``model_forward``); align: as everywhere.

    Returns:
        logits (B, N, V) and a cache (``cache.weights`` is (L, B, H, N, N)).
    """
    check_model_params(params, config)
    causal = V.causal_arg(causal)
    ids, _ = _check_ids(ids, config, 0)
    x, emb_cache = _embed(ids, params, config, 0)  # (B, N, D)
    positions = np.arange(x.shape[1]) if config.pos == "rope" else None
    kw = dict(n_heads=config.n_heads, n_kv_heads=config.n_kv_heads, align=align)
    kw.update(causal=causal, positions=positions)
    block_caches = []
    for layer in range(config.n_layers):
        x, c = block_forward(x, sub(params, f"block{layer}"), mask, **kw)
        block_caches.append(c)
    h, ln_cache = layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
    logits, head_cache = linear_forward(h, params["head.W"], params.get("head.b"))
    return logits, ModelCache(
        emb_cache, block_caches, ln_cache, head_cache, config, 0, False
    )


def encoder_model_backward(dout, cache):
    """Gradients of encoder_model_forward: one dict keyed like params."""
    return model_backward(dout, cache)  # the same layers, the same chain rule

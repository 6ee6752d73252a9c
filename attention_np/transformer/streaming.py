"""Streaming generation past the training length: a KV cache that evicts tokens.

A decoder-only model with RoPE (``TransformerConfig(pos="rope")``) reads a stream
one token at a time. Its per-layer cache holds at most ``n_sink + window`` tokens:

    window-only   (n_sink = 0)  the ``window`` most recent tokens
    StreamingLLM  (n_sink > 0)  the first ``n_sink`` tokens ("attention sinks",
                                Xiao et al. 2023) and the ``window`` most recent
    dense         (window None) every token: nothing is evicted

As in StreamingLLM, positions are assigned by place *in the cache*, not in the
stream: the cache stores keys before rotation and rotates them by 0 .. t-1 at every
step, so no query ever sees a distance larger than the cache (with window None the
positions are the stream's own). Each layer's cached keys and values were computed
when the token arrived and are never recomputed, as in an inference engine.

Shape legend: B batch, T stream length, D width, H heads, G key/value heads,
d head width, C cached tokens (<= n_sink + window), V vocabulary.
"""

import numpy as np

from .. import validate as V
from ..attention import attention_forward
from ..decoding import repeat_kv
from ..linear import linear_forward
from ..multihead import merge_heads, split_heads
from ..positional import rope_forward
from ._params import sub
from .config import TransformerConfig
from .layers import embedding_forward, layernorm_forward, mlp_forward
from .model import check_model_params


class EvictingCache:
    """Un-rotated keys and values of one layer: (B, G, C, d), with eviction.

    Args:
        n_sink: first tokens kept for ever (0 = window-only).
        window: most recent tokens kept (None = keep everything).
    """

    def __init__(self, *, n_sink, window):
        self.n_sink = V.positive_int("n_sink", n_sink, allow_zero=True)
        self.window = None if window is None else V.positive_int("window", window)
        self.k = self.v = None  # (B, G, C, d) once the first token arrived

    @property
    def length(self):
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k_new, v_new):
        """Store one token's (B, G, 1, d) key and value, evict, return the cache."""
        if self.k is None:
            self.k, self.v = k_new, v_new
        else:
            self.k = np.concatenate([self.k, k_new], axis=2)  # (B, G, C + 1, d)
            self.v = np.concatenate([self.v, v_new], axis=2)
        if self.window is not None and self.length > self.n_sink + self.window:
            keep = np.r_[0 : self.n_sink, self.length - self.window : self.length]
            self.k, self.v = self.k[:, :, keep], self.v[:, :, keep]
        return self.k, self.v


def _attend(h, params, config, cache, position):
    """Self-attention of one new token over its layer's evicting cache."""
    H, G = config.n_heads, config.n_kv_heads
    has_bias = "b_q" in params
    proj = lambda name, heads: split_heads(
        linear_forward(h, params[f"W_{name}"], params.get(f"b_{name}"))[0], heads
    )  # (B, heads, 1, d)
    q, k_new, v_new = proj("q", H), proj("k", G), proj("v", G)
    k, v = cache.append(k_new, v_new)  # (B, G, C, d) un-rotated
    C = k.shape[2]
    dense = cache.window is None
    q_pos = np.array([position if dense else C - 1])  # place in the cache
    k_pos = np.arange(position - C + 1, position + 1) if dense else np.arange(C)
    q, _ = rope_forward(q, q_pos)
    k, _ = rope_forward(k, k_pos)
    o, c = attention_forward(q, repeat_kv(k, H), repeat_kv(v, H), causal=False)
    b_o = params["b_o"] if has_bias else None
    out, _ = linear_forward(merge_heads(o), params["W_o"], b_o)  # (B, 1, D)
    return out, c.weights  # (B, H, 1, C)


def read_stream(ids, params, config, *, n_sink, window):
    """Next-token logits of a stream read one token at a time through an evicting
    cache (inference).

    Args:
        ids: (B, T) tokens; T may exceed config.max_len (RoPE has no table).
        params, config: a decoder-only model with ``pos="rope"``.
        n_sink, window: the cache policy (see the module docstring).

    Returns:
        logits (B, T, V) and the attention weights of the last token, a list of L
        (B, H, 1, C) arrays.
    """
    check_model_params(params, config)
    V.instance("config", config, TransformerConfig)
    if config.pos != "rope":
        raise ValueError(f"read_stream needs config.pos='rope', got {config.pos!r}")
    ids = V.token_ids("ids", ids, config.vocab_size, ndim=2)
    if 0 in ids.shape:
        raise ValueError(f"ids{ids.shape} must hold at least one token per row")
    caches = [
        EvictingCache(n_sink=n_sink, window=window) for _ in range(config.n_layers)
    ]
    logits = []
    for t in range(ids.shape[1]):
        x, _ = embedding_forward(ids[:, t : t + 1], params["embed.W"])  # (B, 1, D)
        weights = []
        for layer, cache in enumerate(caches):
            p = sub(params, f"block{layer}")
            h, _ = layernorm_forward(x, p["ln1.gamma"], p["ln1.beta"])
            a, w = _attend(h, sub(p, "attn"), config, cache, t)
            x = x + a
            h2, _ = layernorm_forward(x, p["ln2.gamma"], p["ln2.beta"])
            x = x + mlp_forward(h2, sub(p, "mlp"))[0]
            weights.append(w)
        h, _ = layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
        logits.append(linear_forward(h, params["head.W"], params.get("head.b"))[0])
    return np.concatenate(logits, axis=1), weights

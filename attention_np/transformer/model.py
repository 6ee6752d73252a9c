"""A decoder-only transformer: embed, add positions, L pre-norm blocks, LN, project.

    h_0 = E[ids] + P[positions]            (P learned or sinusoidal; none with RoPE)
    h_l = block_l(h_{l-1}),  l = 1..L      (causal self-attention + MLP)
    logits = LN_f(h_L) W_head + b_head     (B, N, V)

Parameter keys: ``embed.W`` (V, D), ``pos.W`` (T, D) when positions are learned,
``block{l}.<block key>`` (see block.py), ``ln_f.gamma``, ``ln_f.beta``,
``head.W`` (D, V), ``head.b`` (V,). The gradients come back with the same keys.

Shape legend: B batch, N positions, D model width, V vocabulary size, T max_len,
L layers, H heads.
"""

import dataclasses
import functools
import json
from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..decoding import KVCache
from ..linear import linear_backward, linear_forward
from ..positional import sinusoidal_encoding
from ..validate import check_keys
from ._params import prefixed, sub
from .block import block_backward, block_forward, init_block_params
from .layers import (
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
)

POSITIONS = ("learned", "sinusoidal", "rope")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Sizes of a decoder-only transformer.

    pos: "learned" (a trained table added to the embeddings), "sinusoidal" (a fixed
    table added) or "rope" (queries and keys rotated inside attention).
    d_mlp defaults to 4 * d_model; n_kv_heads to n_heads (G < H: grouped queries).
    """

    vocab_size: int
    max_len: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_mlp: int | None = None
    n_kv_heads: int | None = None
    pos: str = "learned"

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "n_heads", "n_layers"):
            V.positive_int(name, getattr(self, name))
        if self.d_mlp is None:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        D, H, G = self.d_model, self.n_heads, self.n_kv_heads
        if D % H or H % V.positive_int("n_kv_heads", G):
            raise ValueError(f"need n_heads={H} | d_model={D} and n_kv_heads={G} | {H}")
        if self.pos not in POSITIONS:
            raise ValueError(f"pos must be one of {POSITIONS}, got {self.pos!r}")
        if self.pos == "rope" and (D // H) % 2:
            raise ValueError(f"RoPE needs an even head width, got {D // H}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


def init_params(config, *, rng, dtype=np.float64):
    """Flat dict of every parameter; weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1)."""
    c = config
    D, V_ = c.d_model, c.vocab_size
    V.rng_arg(rng)
    params = {"embed.W": rng.standard_normal((V_, D)).astype(dtype)}
    if c.pos == "learned":
        params["pos.W"] = (0.1 * rng.standard_normal((c.max_len, D))).astype(dtype)
    for layer in range(c.n_layers):
        block = init_block_params(
            D, c.n_heads, c.d_mlp, c.n_kv_heads, rng=rng, dtype=dtype
        )
        params.update(prefixed(block, f"block{layer}"))
    params["ln_f.gamma"], params["ln_f.beta"] = np.ones(D, dtype), np.zeros(D, dtype)
    params["head.W"] = (rng.standard_normal((D, V_)) / np.sqrt(D)).astype(dtype)
    params["head.b"] = np.zeros(V_, dtype=dtype)
    return params


@functools.lru_cache(maxsize=16)
def param_shapes(config):
    """{key: shape} of ``init_params(config)``: what a checkpoint must contain."""
    params = init_params(config, rng=np.random.default_rng(0), dtype=np.float32)
    return {k: v.shape for k, v in params.items()}


class ModelCache(NamedTuple):
    """What ``model_backward`` needs; ``.weights`` is (L, B, H, N, M)."""

    emb_cache: tuple
    block_caches: list
    ln_cache: tuple
    head_cache: tuple
    config: TransformerConfig
    start: int

    @property
    def weights(self):
        return np.stack([c[1].weights for c in self.block_caches])


def _embed(ids, params, config, start):
    """Token embeddings plus absolute positions start .. start + N - 1."""
    if np.ndim(ids) != 2:
        raise ValueError(f"ids must be (B, N), got shape {np.shape(ids)}")
    x, emb_cache = embedding_forward(ids, params["embed.W"])  # (B, N, D)
    N = x.shape[1]
    if start + N > config.max_len:
        raise ValueError(f"positions up to {start + N} exceed max_len={config.max_len}")
    if config.pos == "learned":
        x = x + params["pos.W"][start : start + N]  # (B, N, D)
    elif config.pos == "sinusoidal":
        x = x + sinusoidal_encoding(start + N, config.d_model)[start:].astype(x.dtype)
    return x, emb_cache


def _check_caches(kv_caches, config, start):
    """One cache per layer, each holding exactly the ``start`` earlier tokens."""
    if kv_caches is None:
        return [None] * config.n_layers
    lengths = [c.length for c in kv_caches]
    if len(lengths) != config.n_layers or any(n != start for n in lengths):
        raise ValueError(
            f"kv_caches must be {config.n_layers} caches holding start={start} "
            f"tokens each, got lengths {lengths}"
        )
    return kv_caches


def model_forward(ids, params, config, *, kv_caches=None, start=0):
    """Logits of the next token at every position.

    Args:
        ids: (B, N) integer tokens.
        params: dict from ``init_params(config)``.
        config: a TransformerConfig.
        kv_caches: list of L ``KVCache`` (from ``new_kv_caches``) for generation;
            the N tokens then sit at positions start .. start + N - 1.
        start: position of the first token (the number of cached tokens).

    Returns:
        logits (B, N, V) and a cache (no backward when kv_caches is given).
    """
    check_keys(params, param_shapes(config))
    caches = _check_caches(kv_caches, config, start)
    x, emb_cache = _embed(ids, params, config, start)  # (B, N, D)
    N = x.shape[1]
    positions = np.arange(start, start + N) if config.pos == "rope" else None
    H, G = config.n_heads, config.n_kv_heads
    block_caches = []
    for layer, kv in enumerate(caches):
        block = sub(params, f"block{layer}")
        # with a cache the N new queries are the last of start + N keys: bottom-right
        x, c = block_forward(
            x,
            block,
            n_heads=H,
            n_kv_heads=G,
            causal=True,
            align="bottom_right",
            positions=positions,
            kv_cache=kv,
        )
        block_caches.append(c)
    h, ln_cache = layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
    logits, head_cache = linear_forward(h, params["head.W"], params["head.b"])
    return logits, ModelCache(
        emb_cache, block_caches, ln_cache, head_cache, config, start
    )


def model_backward(dlogits, cache):
    """Gradients of model_forward for every parameter, keyed like params."""
    emb_cache, block_caches, ln_cache, head_cache, config, start = cache
    V.grad_shape("dlogits", dlogits, ln_cache[0].shape[:-1] + (config.vocab_size,))
    dh, dW_head, db_head = linear_backward(dlogits, head_cache)
    dx, dgamma, dbeta = layernorm_backward(dh, ln_cache)
    grads = {"head.W": dW_head, "head.b": db_head}
    grads.update({"ln_f.gamma": dgamma, "ln_f.beta": dbeta})
    for layer in reversed(range(config.n_layers)):
        dx, g = block_backward(dx, block_caches[layer])
        grads.update(prefixed(g, f"block{layer}"))
    if config.pos == "learned":  # forward: x = E[ids] + P[start : start + N]
        dpos = np.zeros((config.max_len, config.d_model), dtype=dx.dtype)  # (T, D)
        dpos[start : start + dx.shape[1]] = dx.sum(axis=0)  # summed over the batch
        grads["pos.W"] = dpos
    grads["embed.W"] = embedding_backward(dx, emb_cache)
    return grads


def new_kv_caches(config, batch, capacity=None, *, dtype=np.float64):
    """One empty KVCache per layer, holding up to ``capacity`` (default max_len)."""
    d = config.d_model // config.n_heads
    T = config.max_len if capacity is None else capacity
    return [
        KVCache(batch, config.n_kv_heads, d, T, dtype=dtype)
        for _ in range(config.n_layers)
    ]

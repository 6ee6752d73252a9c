"""A decoder-only transformer: embed, add positions, L pre-norm blocks, LN, project.

    h_0 = E[ids] + P[positions]            (P learned or sinusoidal; none with RoPE)
    h_l = block_l(h_{l-1}),  l = 1..L      (causal self-attention + MLP)
    logits = LN_f(h_L) W_head + b_head     (B, N, V)

The parameter keys are listed in config.py; the gradients come back with the same
keys. Shape legend: B batch, N positions, D model width, V vocabulary size,
T max_len, L layers, H heads, G key/value heads, d = D / H head width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..decoding import KVCache
from ..linear import linear_backward, linear_forward
from ..positional import sinusoidal_encoding
from ._params import prefixed, sub
from .block import block_backward, block_forward, init_block_params
from .config import TransformerConfig, param_shapes
from .layers import (
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
)


def init_params(config, *, rng, dtype=np.float64):
    """Flat dict of every parameter; weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1).

    Biases (attention, MLP, head) start at 0 and are left out when config.bias is
    False; layer norms start as the identity.
    """
    c = V.instance("config", config, TransformerConfig)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    D, V_ = c.d_model, c.vocab_size
    params = {"embed.W": rng.standard_normal((V_, D)).astype(dtype)}
    if c.pos == "learned":
        params["pos.W"] = (0.1 * rng.standard_normal((c.max_len, D))).astype(dtype)
    kw = dict(n_kv_heads=c.n_kv_heads, rng=rng, dtype=dtype, bias=c.bias)
    for layer in range(c.n_layers):
        block = init_block_params(D, c.n_heads, c.d_mlp, **kw)
        params.update(prefixed(block, f"block{layer}"))
    params["ln_f.gamma"], params["ln_f.beta"] = np.ones(D, dtype), np.zeros(D, dtype)
    params["head.W"] = (rng.standard_normal((D, V_)) / np.sqrt(D)).astype(dtype)
    if c.bias:
        params["head.b"] = np.zeros(V_, dtype=dtype)
    return params


def check_model_params(params, config):
    """Raise unless ``params`` has exactly the keys and shapes of ``config`` in one
    float dtype; return that dtype."""
    V.instance("params", params, dict)
    V.instance("config", config, TransformerConfig)
    embed = params.get("embed.W")
    dtype = embed.dtype if isinstance(embed, np.ndarray) else None
    V.check_params(params, param_shapes(config), dtype=dtype)
    return dtype


class ModelCache(NamedTuple):
    """What ``model_backward`` needs; ``.weights`` is (L, B, H, N, M)."""

    emb_cache: tuple
    block_caches: list
    ln_cache: tuple
    head_cache: tuple
    config: TransformerConfig
    start: int
    cached: bool  # the forward appended to KV caches: inference only

    @property
    def weights(self):
        return np.stack([c[1].weights for c in self.block_caches])


def _check_ids(ids, config, start):
    """(B, N) ids in [0, V), start >= 0, positions start .. start + N - 1 < T."""
    ids = V.token_ids("ids", ids, config.vocab_size, ndim=2)
    if 0 in ids.shape:
        raise ValueError(f"ids{ids.shape} must hold at least one token per row")
    start = V.positive_int("start", start, allow_zero=True)
    if start + ids.shape[1] > config.max_len:
        raise ValueError(
            f"positions start={start} .. {start + ids.shape[1] - 1} of ids"
            f"{ids.shape} exceed max_len={config.max_len}"
        )
    return ids, start


def _check_caches(kv_caches, config, ids, start, dtype):
    """One distinct, fitting cache per layer, each holding exactly ``start`` tokens.

    Checked before any cache is written, so a refused call leaves them all intact.
    """
    L = config.n_layers
    if kv_caches is None:
        return [None] * L
    if not isinstance(kv_caches, (list, tuple)) or len(kv_caches) != L:
        raise ValueError(f"kv_caches must be a list of {L} KVCache (one per layer)")
    for i, c in enumerate(kv_caches):
        V.instance(f"kv_caches[{i}]", c, KVCache)
    if len({id(c) for c in kv_caches}) != L:
        raise ValueError("kv_caches must be distinct caches, one per layer")
    lengths = [c.length for c in kv_caches]
    if any(n != start for n in lengths):
        raise ValueError(
            f"kv_caches must be {L} caches holding start={start} "
            f"tokens each, got lengths {lengths}"
        )
    for i, c in enumerate(kv_caches):
        _check_cache_fits(i, c, config, ids.shape, start, dtype)
    return list(kv_caches)


def _check_cache_fits(i, cache, config, shape, start, dtype):
    """Cache i stores (B, G, T, d) keys in ``dtype`` with room for the N new ones."""
    (B, N), d = shape, config.d_model // config.n_heads
    want = (B, config.n_kv_heads, d, d)
    got = (*cache.k.shape[:2], cache.k.shape[3], cache.v.shape[3])
    if got != want or cache.capacity < start + N:
        raise ValueError(
            f"kv_caches[{i}] holds (B, G, d, d_v) = {got} and {cache.capacity} "
            f"tokens; this call needs {want} and {start + N}"
        )
    if cache.k.dtype != dtype:
        raise TypeError(f"kv_caches[{i}] stores {cache.k.dtype}, params are {dtype}")


def _embed(ids, params, config, start):
    """Token embeddings plus absolute positions start .. start + N - 1."""
    x, emb_cache = embedding_forward(ids, params["embed.W"])  # (B, N, D)
    N = x.shape[1]
    if config.pos == "learned":
        x = x + params["pos.W"][start : start + N]  # (B, N, D)
    elif config.pos == "sinusoidal":
        x = x + sinusoidal_encoding(start + N, config.d_model)[start:].astype(x.dtype)
    return x, emb_cache


def _blocks(x, params, config, positions, caches):
    """The L blocks in order: (B, N, D) -> (B, N, D), with their caches."""
    block_caches = []
    for layer, kv in enumerate(caches):
        # with a cache the N new queries are the last of start + N keys: bottom-right
        x, c = block_forward(
            x,
            sub(params, f"block{layer}"),
            n_heads=config.n_heads,
            n_kv_heads=config.n_kv_heads,
            causal=True,
            align="bottom_right",
            positions=positions,
            kv_cache=kv,
        )
        block_caches.append(c)
    return x, block_caches


def model_forward(ids, params, config, *, kv_caches=None, start=0):
    """Logits of the next token at every position.

    Args:
        ids: (B, N) integer tokens in [0, vocab_size).
        params: dict from ``init_params(config)`` (any one float dtype).
        config: a TransformerConfig.
        kv_caches: list of L ``KVCache`` (from ``new_kv_caches``) for generation;
            each must hold exactly the ``start`` earlier tokens.
        start: int >= 0, position of the first token; start + N <= max_len.

    Returns:
        logits (B, N, V) and a cache (no backward when kv_caches is given).
    """
    dtype = check_model_params(params, config)
    ids, start = _check_ids(ids, config, start)
    caches = _check_caches(kv_caches, config, ids, start, dtype)
    x, emb_cache = _embed(ids, params, config, start)  # (B, N, D)
    N = x.shape[1]
    positions = np.arange(start, start + N) if config.pos == "rope" else None
    x, block_caches = _blocks(x, params, config, positions, caches)
    h, ln_cache = layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
    logits, head_cache = linear_forward(h, params["head.W"], params.get("head.b"))
    cached = kv_caches is not None
    return logits, ModelCache(
        emb_cache, block_caches, ln_cache, head_cache, config, start, cached
    )


def model_backward(dout, cache):
    """Gradients of model_forward: one dict keyed like params (ids get none)."""
    emb_cache, block_caches, ln_cache, head_cache, config, start, cached = cache
    if cached:
        raise ValueError(
            "model_backward: the forward appended to KV caches (inference only); "
            "run model_forward without kv_caches to train"
        )
    V.grad_shape("dout", dout, ln_cache[0].shape[:-1] + (config.vocab_size,))
    dh, dW_head, db_head = linear_backward(dout, head_cache)
    dx, dgamma, dbeta = layernorm_backward(dh, ln_cache)
    grads = {"head.W": dW_head, "ln_f.gamma": dgamma, "ln_f.beta": dbeta}
    if db_head is not None:
        grads["head.b"] = db_head
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
    V.instance("config", config, TransformerConfig)
    T = config.max_len if capacity is None else V.positive_int("capacity", capacity)
    d = config.d_model // config.n_heads
    return [
        KVCache(batch, config.n_kv_heads, d, T, dtype=dtype)
        for _ in range(config.n_layers)
    ]

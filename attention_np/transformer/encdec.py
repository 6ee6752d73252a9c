"""An encoder-decoder transformer: a bidirectional encoder, a causal decoder that
cross-attends to it, trained by hand (Vaswani et al. 2017, pre-norm).

    e_0 = E_src[src] + P_src                    (B, M, D) source tokens
    e_l = block_l(e_{l-1}, causal=False)        bidirectional, source padding masked
    enc = LN_enc(e_L)
    h_0 = E_tgt[tgt] + P_tgt                    (B, N, D) target tokens (shifted right)
    h_l = decoder_block_l(h_{l-1}, enc)         causal self-attention, cross-attention
    logits = LN_f(h_L) W_head + b_head          (B, N, V_tgt)

The encoder blocks are the decoder-only model's ``block_forward`` with
``causal=False``. Backward: the decoder first, summing every layer's gradient of the
encoder output ``enc`` (each decoder layer reads it), then the encoder.

Shape legend: B batch, M source positions, N target positions, D model width,
V_tgt target vocabulary, L layers, H heads.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..linear import linear_backward, linear_forward
from ..masks import padding_mask
from ..positional import sinusoidal_encoding
from ._params import prefixed, sub
from .block import block_backward, block_forward, init_block_params
from .decoder_block import (
    decoder_block_backward,
    decoder_block_forward,
    init_decoder_block_params,
)
from .encdec_config import EncDecConfig, encdec_param_shapes
from .layers import (
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
)


def init_encdec_params(config, *, rng, dtype=np.float64):
    """Flat dict of every parameter; weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1)."""
    c = V.instance("config", config, EncDecConfig)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    D, H, F = c.d_model, c.n_heads, c.d_mlp
    kw, ones = dict(rng=rng, dtype=dtype, bias=c.bias), np.ones(D, dtype)
    params = {"src_embed.W": rng.standard_normal((c.src_vocab, D)).astype(dtype)}
    params["tgt_embed.W"] = rng.standard_normal((c.tgt_vocab, D)).astype(dtype)
    if c.pos == "learned":
        for side, T in (("src", c.max_src_len), ("tgt", c.max_tgt_len)):
            params[f"{side}_pos.W"] = (0.1 * rng.standard_normal((T, D))).astype(dtype)
    for layer in range(c.n_enc_layers):
        params.update(prefixed(init_block_params(D, H, F, **kw), f"enc{layer}"))
    for layer in range(c.n_dec_layers):
        dec = init_decoder_block_params(D, H, F, score=c.score, d_attn=c.d_attn, **kw)
        params.update(prefixed(dec, f"dec{layer}"))
    for ln in ("enc_ln", "ln_f"):  # layer norms start as the identity
        params[f"{ln}.gamma"], params[f"{ln}.beta"] = ones.copy(), np.zeros_like(ones)
    head = rng.standard_normal((D, c.tgt_vocab)) / np.sqrt(D)
    params["head.W"] = head.astype(dtype)
    if c.bias:
        params["head.b"] = np.zeros(c.tgt_vocab, dtype=dtype)
    return params


def check_encdec_params(params, config):
    """Raise unless ``params`` has exactly the keys and shapes of ``config`` in one
    float dtype; return that dtype."""
    V.instance("params", params, dict)
    V.instance("config", config, EncDecConfig)
    embed = params.get("src_embed.W")
    dtype = embed.dtype if isinstance(embed, np.ndarray) else None
    V.check_params(params, encdec_param_shapes(config), dtype=dtype)
    return dtype


def check_tokens(name, ids, vocab, max_len):
    """(B, n) int ids in [0, vocab) with 1 <= n <= max_len."""
    ids = V.token_ids(name, ids, vocab, ndim=2)
    if 0 in ids.shape or ids.shape[1] > max_len:
        raise ValueError(
            f"{name}{ids.shape} must hold 1 .. {max_len} tokens per row and a "
            "batch of at least 1"
        )
    return ids


def source_mask(src_lengths, src_shape):
    """(B, 1, 1, M) key-padding mask of the source (all True when lengths is None)."""
    B, M = src_shape
    if src_lengths is None:
        return np.ones((B, 1, 1, M), dtype=bool)
    lengths = np.asarray(src_lengths)
    if lengths.shape != (B,):
        raise ValueError(f"src_lengths{lengths.shape} must be (B,) = ({B},)")
    try:
        return padding_mask(lengths, M)  # checks ints in [0, M]
    except (TypeError, ValueError) as err:  # name the caller's argument, not ours
        raise type(err)(f"src_lengths: {err}") from None


def _embed(ids, params, config, side, start=0):
    """Token embeddings plus the positions start .. start + n - 1 of one side."""
    x, cache = embedding_forward(ids, params[f"{side}_embed.W"])  # (B, n, D)
    n = x.shape[1]
    if config.pos == "learned":
        x = x + params[f"{side}_pos.W"][start : start + n]
    else:
        table = sinusoidal_encoding(start + n, config.d_model)[start:]  # (n, D)
        x = x + table.astype(x.dtype)
    return x, cache


def encoder_forward(src, params, config, mask):
    """The encoder stack on checked inputs: enc (B, M, D) and its caches."""
    x, emb_cache = _embed(src, params, config, "src")  # (B, M, D)
    caches = []
    for layer in range(config.n_enc_layers):
        x, c = block_forward(
            x, sub(params, f"enc{layer}"), mask, n_heads=config.n_heads, causal=False
        )
        caches.append(c)
    enc, ln_cache = layernorm_forward(x, params["enc_ln.gamma"], params["enc_ln.beta"])
    return enc, (emb_cache, caches, ln_cache)


class EncDecCache(NamedTuple):
    """What ``encdec_backward`` needs, and every attention map of the forward."""

    enc_caches: tuple  # (embedding, blocks, final layer norm) of the encoder
    dec_emb_cache: tuple
    dec_caches: list
    ln_cache: tuple
    head_cache: tuple
    config: EncDecConfig

    @property
    def enc_weights(self):
        """(L_enc, B, H, M, M) encoder self-attention."""
        return np.stack([c[1].weights for c in self.enc_caches[1]])

    @property
    def self_weights(self):
        """(L_dec, B, H, N, N) decoder self-attention."""
        return np.stack([c[1].weights for c in self.dec_caches])

    @property
    def cross_weights(self):
        """(L_dec, B, H, N, M) cross-attention: target queries, source keys."""
        return np.stack([c[3].weights for c in self.dec_caches])


def encdec_forward(src, tgt, params, config, *, src_lengths=None):
    """Logits of the next target token at every target position.

    Args:
        src: (B, M) source token ids in [0, src_vocab), M <= max_src_len.
        tgt: (B, N) target ids fed to the decoder (the answer shifted right, e.g.
            BOS y_0 .. y_{N-2}), N <= max_tgt_len.
        params: from ``init_encdec_params(config)``; config: an EncDecConfig.
        src_lengths: (B,) real source tokens per row (the rest is padding, which no
            query attends to); default: no padding.

    Returns:
        logits (B, N, V_tgt) and an ``EncDecCache``.
    """
    check_encdec_params(params, config)
    src = check_tokens("src", src, config.src_vocab, config.max_src_len)
    tgt = check_tokens("tgt", tgt, config.tgt_vocab, config.max_tgt_len)
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(f"src{src.shape} and tgt{tgt.shape} must share B")
    mask = source_mask(src_lengths, src.shape)  # (B, 1, 1, M)
    enc, enc_caches = encoder_forward(src, params, config, mask)
    y, dec_emb_cache = _embed(tgt, params, config, "tgt")  # (B, N, D)
    dec_caches = []
    kw = dict(n_heads=config.n_heads, causal=True, score=config.score)
    for layer in range(config.n_dec_layers):
        y, c = decoder_block_forward(y, enc, sub(params, f"dec{layer}"), mask, **kw)
        dec_caches.append(c)
    h, ln_cache = layernorm_forward(y, params["ln_f.gamma"], params["ln_f.beta"])
    logits, head_cache = linear_forward(h, params["head.W"], params.get("head.b"))
    cache = EncDecCache(
        enc_caches, dec_emb_cache, dec_caches, ln_cache, head_cache, config
    )
    return logits, cache


def _embedding_grads(dx, emb_cache, config, side):
    """Gradients of the token table (and the learned position table) of one side."""
    grads = {f"{side}_embed.W": embedding_backward(dx, emb_cache)}
    if config.pos == "learned":  # forward: x = E[ids] + P[:n]
        T = config.max_src_len if side == "src" else config.max_tgt_len
        dpos = np.zeros((T, config.d_model), dtype=dx.dtype)  # (T, D)
        dpos[: dx.shape[1]] = dx.sum(axis=0)  # summed over the batch
        grads[f"{side}_pos.W"] = dpos
    return grads


def encdec_backward(dout, cache):
    """Gradients of encdec_forward: one dict keyed like params (ids get none)."""
    enc_caches, dec_emb_cache, dec_caches, ln_cache, head_cache, config = cache
    V.grad_shape("dout", dout, ln_cache[0].shape[:-1] + (config.tgt_vocab,))
    dh, dW_head, db_head = linear_backward(dout, head_cache)
    dy, dgamma, dbeta = layernorm_backward(dh, ln_cache)
    grads = {"head.W": dW_head, "ln_f.gamma": dgamma, "ln_f.beta": dbeta}
    if db_head is not None:
        grads["head.b"] = db_head
    denc = 0.0  # every decoder layer reads enc: its gradients add up
    for layer in reversed(range(config.n_dec_layers)):
        dy, denc_l, g = decoder_block_backward(dy, dec_caches[layer])
        denc = denc + denc_l
        grads.update(prefixed(g, f"dec{layer}"))
    grads.update(_embedding_grads(dy, dec_emb_cache, config, "tgt"))
    emb_cache, block_caches, enc_ln_cache = enc_caches
    dx, grads["enc_ln.gamma"], grads["enc_ln.beta"] = layernorm_backward(
        denc, enc_ln_cache
    )
    for layer in reversed(range(config.n_enc_layers)):
        dx, g = block_backward(dx, block_caches[layer])
        grads.update(prefixed(g, f"enc{layer}"))
    grads.update(_embedding_grads(dx, emb_cache, config, "src"))
    return grads

"""Generating with the encoder-decoder: greedy and beam search, with caches.

The source is encoded once; each decoder layer projects the encoder output to its
cross-attention keys and values once (``cross_memory``); the decoder's
self-attention keeps a ``KVCache`` per layer, so each step pushes only the new
token through the decoder:

    state = start_decoding(src, ...)          encoder + memories, empty caches
    logits, _ = decode_step(tokens, state)    the next token's logits, cache grows

Greedy decoding takes the most likely token at every step. Beam search keeps the
``beam_width`` most likely prefixes (sum of log-probabilities); a finished prefix
(it emitted ``eos``) keeps its score and is extended only by padding. With width 1
it is greedy decoding.

Shape legend: B batch, K beams, M source positions, t tokens decoded so far,
V target vocabulary, L decoder layers, H heads.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..decoding import KVCache
from ..linear import linear_forward
from ._params import sub
from .cross_memory import CrossMemory, cross_memory
from .decoder_block import decoder_block_step
from .encdec import (
    _embed,
    check_encdec_params,
    check_tokens,
    encoder_forward,
    source_mask,
)
from .encdec_config import EncDecConfig
from .layers import layernorm_forward
from .loss import _log_softmax


class DecodeState(NamedTuple):
    """The encoder's per-layer cross-attention memories, the source mask and one
    self-attention KVCache per decoder layer (they grow in place)."""

    memories: list
    mask: np.ndarray  # (B, 1, 1, M)
    kv_caches: list

    @property
    def length(self):
        """Target tokens decoded so far."""
        return self.kv_caches[0].length


class Decoded(NamedTuple):
    """tokens (B, T) generated after ``bos`` (``pad`` after ``eos``); logprob (B,)."""

    tokens: np.ndarray
    logprob: np.ndarray


def start_decoding(src, params, config, *, src_lengths=None, capacity=None):
    """Encode ``src`` once and prepare empty caches: a ``DecodeState``.

    Args:
        src, params, config, src_lengths: as in ``encdec_forward``.
        capacity: target tokens the caches hold (default config.max_tgt_len).
    """
    dtype = check_encdec_params(params, config)
    src = check_tokens("src", src, config.src_vocab, config.max_src_len)
    T = config.max_tgt_len if capacity is None else V.positive_int("capacity", capacity)
    mask = source_mask(src_lengths, src.shape)  # (B, 1, 1, M)
    enc, _ = encoder_forward(src, params, config, mask)  # (B, M, D)
    kw = dict(n_heads=config.n_heads, score=config.score)
    memories = [
        cross_memory(enc, sub(params, f"dec{layer}.cross"), **kw)
        for layer in range(config.n_dec_layers)
    ]
    caches = [_new_cache(len(src), config, T, dtype) for _ in memories]
    return DecodeState(memories, mask, caches)


def _new_cache(batch, config, capacity, dtype):
    return KVCache(batch, config.n_heads, config.d_head, capacity, dtype=dtype)


def _check_state(state, config, n):
    """One fitting memory and cache per layer, every cache at the same length, room
    for n more tokens: checked before any cache is written."""
    V.instance("state", state, DecodeState)
    L = config.n_dec_layers
    if len(state.memories) != L or len(state.kv_caches) != L:
        raise ValueError(f"state must hold {L} memories and {L} caches (one a layer)")
    for i, (m, c) in enumerate(zip(state.memories, state.kv_caches, strict=True)):
        V.instance(f"state.memories[{i}]", m, CrossMemory)
        V.instance(f"state.kv_caches[{i}]", c, KVCache)
    t = state.length
    if any(c.length != t for c in state.kv_caches) or t + n > config.max_tgt_len:
        lengths = [c.length for c in state.kv_caches]
        raise ValueError(
            f"state caches hold {lengths} tokens; they must agree, and {n} more "
            f"must fit in max_tgt_len={config.max_tgt_len}"
        )
    return t


def decode_step(tgt, state, params, config):
    """Logits of the tokens after ``tgt``, the new target tokens (inference).

    Args:
        tgt: (B, n) new target ids; they take positions state.length .. + n - 1.
        state: from ``start_decoding``; its caches grow by n.
        params, config: as in ``encdec_forward``.

    Returns:
        logits (B, n, V) and the weights (self (L, B, H, n, t + n),
        cross (L, B, H, n, M)).
    """
    check_encdec_params(params, config)
    tgt = check_tokens("tgt", tgt, config.tgt_vocab, config.max_tgt_len)
    t = _check_state(state, config, tgt.shape[1])
    y, _ = _embed(tgt, params, config, "tgt", start=t)  # (B, n, D)
    kw = dict(n_heads=config.n_heads, score=config.score)
    weights = []
    for layer in range(config.n_dec_layers):
        memory, kv, p = (
            state.memories[layer],
            state.kv_caches[layer],
            sub(params, f"dec{layer}"),
        )
        y, w = decoder_block_step(y, memory, p, state.mask, kv_cache=kv, **kw)
        weights.append(w)
    h, _ = layernorm_forward(y, params["ln_f.gamma"], params["ln_f.beta"])
    logits, _ = linear_forward(h, params["head.W"], params.get("head.b"))
    self_w, cross_w = (np.stack(w) for w in zip(*weights, strict=True))
    return logits, (self_w, cross_w)


def _check_special(config, bos, eos, pad, max_len):
    V.instance("config", config, EncDecConfig)
    for name, value in (("bos", bos), ("eos", eos), ("pad", pad)):
        V.token_ids(name, np.asarray(value), config.tgt_vocab, ndim=0)
    T = config.max_tgt_len if max_len is None else V.positive_int("max_len", max_len)
    if T > config.max_tgt_len:
        raise ValueError(f"max_len={T} exceeds max_tgt_len={config.max_tgt_len}")
    return T


def greedy_decode(
    src, params, config, *, bos, eos, pad=0, max_len=None, src_lengths=None
):
    """The most likely token at every step, until every row emitted ``eos``.

    Args:
        src, params, config, src_lengths: as in ``encdec_forward``.
        bos, eos, pad: target ids of the start token, the end token, the padding.
        max_len: tokens to generate at most (default config.max_tgt_len).

    Returns:
        ``Decoded(tokens (B, T), logprob (B,))``, T <= max_len.
    """
    T = _check_special(config, bos, eos, pad, max_len)
    state = start_decoding(src, params, config, src_lengths=src_lengths)
    B = len(state.mask)
    tokens = np.full((B, T), pad)  # (B, T)
    logprob, done = np.zeros(B), np.zeros(B, dtype=bool)
    prev = np.full((B, 1), bos)  # (B, 1) the token fed next
    for t in range(T):
        logits, _ = decode_step(prev, state, params, config)  # (B, 1, V)
        logp = _log_softmax(logits[:, -1])  # (B, V)
        best = np.where(done, pad, logp.argmax(axis=-1))  # (B,) pad once finished
        logprob += np.where(done, 0.0, logp[np.arange(B), best])
        tokens[:, t], done = best, done | (best == eos)
        if done.all():
            break
        prev = best[:, None]
    return Decoded(tokens[:, : t + 1], logprob)


def beam_search(
    src,
    params,
    config,
    *,
    beam_width,
    bos,
    eos,
    pad=0,
    max_len=None,
    src_lengths=None,
):
    """The ``beam_width`` most likely prefixes at every step; the best one at the end.

    Arguments as in ``greedy_decode``; beam_width: K >= 1 (1 is greedy decoding).
    Prefixes are scored by their summed log-probability (no length penalty); the
    search stops when the K best prefixes have all emitted ``eos``.

    Returns:
        ``Decoded(tokens (B, T), logprob (B,))`` of the best prefix of every row.
    """
    K = V.positive_int("beam_width", beam_width)
    T = _check_special(config, bos, eos, pad, max_len)
    state = _expand(start_decoding(src, params, config, src_lengths=src_lengths), K)
    B, Vt = len(state.mask) // K, config.tgt_vocab
    score = np.tile(np.r_[0.0, np.full(K - 1, -np.inf)], (B, 1))  # (B, K) beam 0 only
    hist, done = np.full((B, K, T), pad), np.zeros((B, K), dtype=bool)
    # a finished beam continues with pad, at no cost
    finished = np.where(np.arange(Vt) == pad, 0.0, -np.inf)  # (V,)
    prev, rows_b = np.full((B * K, 1), bos), np.arange(B)[:, None]
    for t in range(T):
        logits, _ = decode_step(prev, state, params, config)  # (B K, 1, V)
        logp = _log_softmax(logits[:, -1]).reshape(B, K, Vt)  # (B, K, V)
        logp = np.where(done[..., None], finished, logp)
        cand = (score[..., None] + logp).reshape(B, K * Vt)  # (B, K V)
        # stable: among equal scores the lowest (beam, token) wins, as argmax does
        best = np.argsort(-cand, axis=1, kind="stable")[:, :K]  # (B, K)
        beam, tok = np.divmod(best, Vt)  # (B, K) each
        score = np.take_along_axis(cand, best, axis=1)
        hist, done = hist[rows_b, beam], done[rows_b, beam] | (tok == eos)
        hist[:, :, t] = tok
        _reorder(state, (rows_b * K + beam).reshape(-1))
        if done.all():
            break
        prev = tok.reshape(-1, 1)
    return Decoded(hist[:, 0, : t + 1], score[:, 0])


def _expand(state, K):
    """Each row of the state repeated K times (beams of one sentence adjacent)."""
    memories = [
        CrossMemory(*(np.repeat(a, K, axis=0) for a in m)) for m in state.memories
    ]
    caches = []
    for c in state.kv_caches:
        B, G, T, d = c.k.shape
        caches.append(KVCache(B * K, G, d, T, dtype=c.k.dtype))
    return DecodeState(memories, np.repeat(state.mask, K, axis=0), caches)


def _reorder(state, rows):
    """Beams continue from the cache rows ``rows`` (B K,): copy them in place."""
    for c in state.kv_caches:
        c.k[:] = c.k[rows]
        c.v[:] = c.v[rows]

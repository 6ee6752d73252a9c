"""Decoding-time attention: grouped-query attention (GQA / MQA) and a KV cache.

    GQA: H query heads share G key/value heads; query head h reads group h // (H/G).
         G = H is multi-head attention, G = 1 is multi-query attention (Shazeer 2019),
         1 < G < H is grouped-query attention (Ainslie et al. 2023).
    KV cache: when tokens are generated one at a time, the keys and values of the
         earlier tokens never change, so they are stored and only the new token's
         k_t, v_t are computed:  o_t = softmax(s q_t K_{<=t}^T) V_{<=t}.

Shape legend: B batch, H query heads, G key/value heads (groups), N query positions,
M key positions, d head width, T cache capacity.

Backward of GQA: a shared key feeds H/G heads, so its gradient is the sum of the
gradients of those heads (``attention_backward`` already sums over a broadcast axis).
"""

from typing import NamedTuple

import numpy as np

from . import validate as V
from .attention import attention_backward, attention_forward


def _check_groups(q, k, v):
    q = V.float_array("q", q, ndim=4)
    k = V.float_array("k", k, ndim=4)
    v = V.float_array("v", v, ndim=4)
    H, G = q.shape[1], k.shape[1]
    if v.shape[1] != G or G == 0 or H % G:
        raise ValueError(
            f"k{k.shape} and v{v.shape} need G heads (axis 1) dividing the H heads "
            f"of q{q.shape}"
        )
    if q.shape[0] != k.shape[0] or k.shape[0] != v.shape[0]:
        raise ValueError(f"q{q.shape}, k{k.shape}, v{v.shape} must share B (axis 0)")
    return q, k, v


def repeat_kv(x, n_heads):
    """(B, G, M, d) -> (B, H, M, d): copy each key/value head to its H/G query heads.

    Head h gets group h // (H/G) (``torch.repeat_interleave``, SDPA ``enable_gqa``).
    """
    x = V.float_array("x", x, ndim=4)
    n_heads = V.positive_int("n_heads", n_heads)
    G = x.shape[1]
    if G == 0 or n_heads % G:
        raise ValueError(f"n_heads={n_heads} must be a multiple of G={G} of x{x.shape}")
    return np.repeat(x, n_heads // G, axis=1)  # (B, H, M, d)


def _group_mask(mask, B, H, G, N, M):
    """A mask broadcastable to (B, H, N, M), reshaped to (B, G, H/G, N, M)."""
    if mask is None:
        return None
    V.bool_mask("mask", mask, (B, H, N, M))
    full = np.broadcast_to(mask, (B, H, N, M))  # (B, H, N, M), a view
    return full.reshape(B, G, H // G, N, M)  # (B, G, H/G, N, M)


class GQACache(NamedTuple):
    """What ``gqa_attention_backward`` needs; ``.weights`` is (B, H, N, M)."""

    attn_cache: tuple
    shape_q: tuple
    shape_kv: tuple

    @property
    def weights(self):
        B, H, N, _ = self.shape_q
        return self.attn_cache.weights.reshape(B, H, N, self.shape_kv[2])


def gqa_attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    causal,
    align="top_left",
    scale=None,
    dropout_p=0.0,
    rng=None,
):
    """Attention of H query heads over G shared key/value heads.

    Args:
        q: (B, H, N, d) queries.
        k: (B, G, M, d) keys, G divides H (G = 1: multi-query attention).
        v: (B, G, M, d_v) values.
        mask: boolean, broadcastable to (B, H, N, M); True = may attend.
        causal, align, scale, dropout_p, rng: as in ``attention_forward``.

    Returns:
        out (B, H, N, d_v) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    q, k, v = _check_groups(q, k, v)
    (B, H, N, d), (G, M) = q.shape, k.shape[1:3]
    qg = q.reshape(B, G, H // G, N, d)  # (B, G, H/G, N, d): heads of a group together
    kg, vg = k[:, :, None], v[:, :, None]  # (B, G, 1, M, d): broadcast over the group
    mask = _group_mask(mask, B, H, G, N, M)  # (B, G, H/G, N, M) or None
    out, attn_cache = attention_forward(
        qg,
        kg,
        vg,
        mask,
        causal=causal,
        align=align,
        scale=scale,
        dropout_p=dropout_p,
        rng=rng,
    )
    out = out.reshape(B, H, N, v.shape[-1])  # (B, H, N, d_v)
    return out, GQACache(attn_cache, q.shape, k.shape)


def gqa_attention_backward(dout, cache):
    """Gradients of gqa_attention_forward: dq (B, H, N, d), dk, dv (B, G, M, d).

    dk of group g is the sum over its H/G query heads (the broadcast axis).
    """
    attn_cache, (B, H, N, d), (_, G, M, _) = cache
    V.grad_shape("dout", dout, (B, H, N, attn_cache.out.shape[-1]))
    dout_g = dout.reshape(B, G, H // G, N, dout.shape[-1])  # (B, G, H/G, N, d_v)
    dq, dk, dv = attention_backward(dout_g, attn_cache)  # dk (B, G, 1, M, d): summed
    return dq.reshape(B, H, N, d), dk[:, :, 0], dv[:, :, 0]


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer.

    Preallocated to a capacity T (like real inference engines); ``append`` writes the
    new tokens' k, v and returns views of everything cached so far.

    Args:
        batch: B.
        n_kv_heads: G (the cache stores key/value heads, not query heads).
        d_head: d, width of the keys.
        capacity: T, the longest sequence the cache can hold.
        d_v: width of the values (default d).
        dtype: of the stored arrays.
    """

    def __init__(
        self, batch, n_kv_heads, d_head, capacity, *, d_v=None, dtype=np.float64
    ):
        B = V.positive_int("batch", batch)
        G = V.positive_int("n_kv_heads", n_kv_heads)
        T = V.positive_int("capacity", capacity)
        d = V.positive_int("d_head", d_head)
        d_v = d if d_v is None else V.positive_int("d_v", d_v)
        dtype = V.dtype_arg(dtype)  # an int cache would truncate the keys
        self.k = np.zeros((B, G, T, d), dtype=dtype)  # (B, G, T, d)
        self.v = np.zeros((B, G, T, d_v), dtype=dtype)  # (B, G, T, d_v)
        self.length = 0

    @property
    def capacity(self):
        return self.k.shape[2]

    @property
    def nbytes(self):
        """Bytes of the whole preallocated cache (keys and values)."""
        return self.k.nbytes + self.v.nbytes

    def check(self, k_new, v_new):
        """Validated (k_new, v_new) that ``append`` would store; changes nothing."""
        k_new = V.float_array("k_new", k_new, ndim=4)
        v_new = V.float_array("v_new", v_new, ndim=4)
        (B, G, _, d), n = self.k.shape, k_new.shape[2]
        d_v = self.v.shape[3]
        if k_new.shape != (B, G, n, d) or v_new.shape != (B, G, n, d_v):
            raise ValueError(
                f"k_new{k_new.shape} and v_new{v_new.shape} must be (B, G, n, d) = "
                f"({B}, {G}, n, {d}) and (B, G, n, d_v) = ({B}, {G}, n, {d_v})"
            )
        if self.length + n > self.capacity:
            raise ValueError(
                f"cache full: {self.length} + {n} tokens > capacity {self.capacity}"
            )
        if k_new.dtype != self.k.dtype or v_new.dtype != self.k.dtype:
            raise TypeError(
                f"k_new and v_new have dtypes {k_new.dtype}, {v_new.dtype} but the "
                f"cache stores {self.k.dtype}"
            )
        return k_new, v_new

    def append(self, k_new, v_new):
        """Store (B, G, n, d) keys, (B, G, n, d_v) values; return the cache so far.

        Everything is checked before anything is written: a failed call leaves the
        cache as it was.
        """
        k_new, v_new = self.check(k_new, v_new)
        n = k_new.shape[2]
        t = self.length + n
        self.k[:, :, self.length : t] = k_new
        self.v[:, :, self.length : t] = v_new
        self.length = t
        return self.k[:, :, :t], self.v[:, :, :t]  # (B, G, t, d), (B, G, t, d_v) views


def cached_attention(q_new, k_new, v_new, cache, mask=None, *, causal, scale=None):
    """Append n new tokens to ``cache`` and attend over everything cached.

    Args:
        q_new: (B, H, n, d) queries of the new tokens.
        k_new, v_new: (B, G, n, d), (B, G, n, d_v) their keys and values.
        cache: a KVCache; the new tokens take positions t0 .. t0 + n - 1.
        mask: boolean, broadcastable to (B, H, n, t0 + n); True = may attend.
        causal: True for generation: new token t0 + i sees the keys at positions
            <= t0 + i (its absolute position). False: every new query sees every
            cached and new key.
        scale: score scale, default 1/sqrt(d).

    Returns:
        (B, H, n, d_v) outputs. A prefill passes all prompt tokens at once (n > 1);
        a decode step passes one. Everything is checked before the cache changes.
    """
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache, got {type(cache).__name__}")
    causal = V.causal_arg(causal)
    k_new, v_new = cache.check(k_new, v_new)
    q_new = V.float_array("q_new", q_new, ndim=4)
    V.same_dtype(q_new=q_new, k_new=k_new)
    (B, H, n, d), G = q_new.shape, k_new.shape[1]
    if (B, n, d) != (k_new.shape[0],) + k_new.shape[2:] or H % G:
        raise ValueError(
            f"q_new{q_new.shape} must be (B, H, n, d) with H a multiple of G for "
            f"k_new{k_new.shape}: one query per new key"
        )
    V.scale_arg(scale, d)
    if mask is not None:
        V.bool_mask("mask", mask, (B, H, n, cache.length + n))
    k_all, v_all = cache.append(k_new, v_new)  # (B, G, t, d)
    out, _ = gqa_attention_forward(  # the new queries are the last n positions
        q_new, k_all, v_all, mask, causal=causal, align="bottom_right", scale=scale
    )
    return out


def kv_cache_bytes(n_layers, n_kv_heads, d_head, seq_len, batch=1, *, bytes_per_elem=2):
    """2 * layers * G * d * T * B * bytes: keys and values of every layer.

    bytes_per_elem is 2 for float16/bfloat16 (the usual inference dtype).
    """
    names = ("n_layers", "n_kv_heads", "d_head", "seq_len", "batch", "bytes_per_elem")
    values = (n_layers, n_kv_heads, d_head, seq_len, batch, bytes_per_elem)
    total = 2  # keys and values
    for name, value in zip(names, values, strict=True):
        total *= V.positive_int(name, value, allow_zero=True)
    return total

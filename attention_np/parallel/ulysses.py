"""Ulysses sequence parallelism: two all-to-alls swap a sequence split for a head split.

Rank p starts with a contiguous slice of the queries (and of the keys and values)
for all H heads. An all-to-all sends each rank the heads it is responsible for:
afterwards rank g holds the WHOLE sequence for H / P heads, runs ordinary attention
on them (any mask, causal or not, N != M), and a second all-to-all returns every
token's output to the rank that owns the token.

    (..., H, c, d) per rank  --all-to-all-->  (..., H/P, N, d)  --attention-->
    (..., H/P, N, d_v)       --all-to-all-->  (..., H, c, d_v) per rank

The backward pass runs the same exchanges in reverse order. P must divide H; the
simulation also accepts lengths that P does not divide (slices as in
``np.array_split``: the first ranks hold one token more). The exchange itself is
pure index shuffling: ``alltoall`` simulates it with lists, ``ulysses_mpi`` uses
MPI's Alltoall on the same packed buffers.

Shape legend: H heads, N queries, M keys, c tokens on one rank, d head width; the
head axis is -3 (layout (..., H, N, d)).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_backward, attention_forward


def check_heads(n_heads, n_ranks):
    """Raise unless P divides H (each rank takes H / P whole heads)."""
    H, P = V.positive_int("n_heads", n_heads), V.positive_int("n_ranks", n_ranks)
    if H % P:
        raise ValueError(
            f"Ulysses needs the number of ranks to divide the number of heads: "
            f"n_ranks={P} does not divide H={H} (each rank takes H / P "
            "whole heads; use a divisor of H, or ring attention)"
        )


def pack_heads(x, n_ranks):
    """(..., H, c, d) -> (P, ..., H/P, c, d): message g = the heads for rank g."""
    *lead, H, c, d = x.shape
    x = x.reshape(*lead, n_ranks, H // n_ranks, c, d)  # (..., P, H/P, c, d)
    return np.ascontiguousarray(np.moveaxis(x, -4, 0))  # (P, ..., H/P, c, d)


def unpack_sequence(recv):
    """P messages (..., H/P, c_p, d) from every rank -> (..., H/P, sum c_p, d)."""
    return np.concatenate(list(recv), axis=-2)  # sequence shards in rank order


def pack_sequence(x, n_ranks):
    """(..., H/P, N, d) -> P messages (..., H/P, c_s, d): message s = rank s's tokens
    (``np.array_split`` slices, like the forward's split)."""
    return [np.ascontiguousarray(a) for a in np.array_split(x, n_ranks, axis=-2)]


def unpack_heads(recv):
    """P messages (..., H/P, c, d) received from every rank -> (..., H, c, d)."""
    return np.concatenate(list(recv), axis=-3)  # head groups in rank order


def alltoall(sendbufs):
    """Simulated all-to-all: rank g receives message g of every rank, in rank order.

    sendbufs: P sequences of P messages (rank p's message to g is sendbufs[p][g]).
    Returns P lists of P messages, recvbufs[g][p] = sendbufs[p][g].
    """
    if not isinstance(sendbufs, (list, tuple)):
        raise TypeError(f"sendbufs must be a list, got {type(sendbufs).__name__}")
    P = len(sendbufs)
    for p, buf in enumerate(sendbufs):
        if len(buf) != P:
            raise ValueError(
                f"sendbufs[{p}] holds {len(buf)} messages: every rank sends one "
                f"message to each of the P = {P} ranks"
            )
    return [[buf[g] for buf in sendbufs] for g in range(len(sendbufs))]


class UlyssesCache(NamedTuple):
    caches: list  # per rank: AttentionCache of its H/P heads over the full sequence
    n_ranks: int
    shape: tuple  # (..., H, N, d_v) of the output


def _heads_to_seq(x, P):
    """Split x (..., H, L, d) into P sequence slices, exchange: P (..., H/P, L, d)."""
    shards = np.array_split(x, P, axis=-2)
    return [unpack_sequence(r) for r in alltoall([pack_heads(s, P) for s in shards])]


def _seq_to_heads(parts, P):
    """Exchange P (..., H/P, L, d) back and join the slices: (..., H, L, d)."""
    back = [unpack_heads(r) for r in alltoall([pack_sequence(x, P) for x in parts])]
    return np.concatenate(back, axis=-2)


def check_ulysses(q, k, v, mask, scale, n_ranks):
    """Validated (q, k, v, scale) with a head axis that P divides."""
    q, k, v, scale = V.check_qkv(q, k, v, mask, scale)
    if q.ndim < 3 or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(
            f"Ulysses splits a head axis: q{q.shape}, k{k.shape}, v{v.shape} must "
            "share their leading axes (..., H, :, :)"
        )
    check_heads(q.shape[-3], n_ranks)
    return q, k, v, scale


def group_mask(mask, lead, N, M, P, g):
    """Rank g's heads of a mask broadcastable to lead + (N, M): (..., H/P, N, M)."""
    if mask is None:
        return None
    full = np.broadcast_to(mask, lead + (N, M))  # a view, no copy
    size = lead[-1] // P
    return full[..., g * size : (g + 1) * size, :, :]


def ulysses_attention_forward(
    q, k, v, mask=None, *, n_ranks, causal, align="top_left", scale=None
):
    """Exact attention by simulated Ulysses sequence parallelism over P ranks.

    Args:
        q: (..., H, N, d), k: (..., H, M, d), v: (..., H, M, d_v) full arrays;
            rank p holds the p-th ``np.array_split`` slice of each sequence.
        mask: boolean, broadcastable to (..., H, N, M); True = may attend.
        n_ranks: P, a divisor of H.
        causal, align, scale: as in ``attention_forward``.

    Returns:
        out (..., H, N, d_v) and a UlyssesCache.
    """
    q, k, v, scale = check_ulysses(q, k, v, mask, scale, n_ranks)
    V.causal_offset(causal, align, q.shape[-2], k.shape[-2])  # validates both
    P, lead = n_ranks, q.shape[:-2]
    full = [_heads_to_seq(x, P) for x in (q, k, v)]  # per rank (..., H/P, N|M, :)
    options = {"causal": causal, "align": align, "scale": scale}
    results = [  # each rank: H/P heads over the whole sequence
        attention_forward(
            *qkv, group_mask(mask, lead, q.shape[-2], k.shape[-2], P, g), **options
        )
        for g, qkv in enumerate(zip(*full, strict=True))
    ]
    out = _seq_to_heads([o for o, _ in results], P)  # (..., H, N, d_v)
    return out, UlyssesCache([c for _, c in results], P, out.shape)


def ulysses_attention_backward(dout, cache):
    """Gradients of ulysses_attention_forward: the exchanges run in reverse.

    Returns dq (..., H, N, d), dk (..., H, M, d), dv (..., H, M, d_v).
    """
    V.grad_shape("dout", dout, cache.shape)
    P = cache.n_ranks
    douts = _heads_to_seq(np.asarray(dout), P)  # per rank (..., H/P, N, d_v)
    grads = [attention_backward(g, c) for g, c in zip(douts, cache.caches, strict=True)]
    return tuple(_seq_to_heads(list(g), P) for g in zip(*grads, strict=True))

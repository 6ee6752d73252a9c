"""Ulysses sequence parallelism: two all-to-alls swap a sequence split for a head split.

Rank p starts with a contiguous slice of c = N / P tokens for all H heads. An
all-to-all sends each rank the heads it is responsible for: afterwards rank g holds
the WHOLE sequence for H / P heads, runs ordinary (any-mask) attention on them, and a
second all-to-all returns every token's output to the rank that owns the token.

    (..., H, c, d) per rank  --all-to-all-->  (..., H/P, N, d)  --attention-->
    (..., H/P, N, d_v)       --all-to-all-->  (..., H, c, d_v) per rank

The backward pass runs the same exchanges in reverse order. P must divide H.
The exchange itself is pure index shuffling: ``alltoall`` simulates it with lists,
``ulysses_mpi_*`` uses MPI's Alltoall on the same packed buffers.

Shape legend: H heads, N tokens, c = N / P tokens per rank, d head width; the head
axis is -3 (layout (..., H, N, d)).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_backward, attention_forward
from ..masks import causal_mask
from .layouts import check_split


def check_heads(n_heads, n_ranks):
    """Raise unless P divides H (each rank takes H / P whole heads)."""
    if n_heads % n_ranks:
        raise ValueError(
            f"Ulysses needs the number of ranks to divide the number of heads: "
            f"n_ranks={n_ranks} does not divide H={n_heads} (each rank takes H / P "
            "whole heads; use a divisor of H, or ring attention)"
        )


def pack_heads(x, n_ranks):
    """(..., H, c, d) -> (P, ..., H/P, c, d): message g = the heads for rank g."""
    *lead, H, c, d = x.shape
    x = x.reshape(*lead, n_ranks, H // n_ranks, c, d)  # (..., P, H/P, c, d)
    return np.ascontiguousarray(np.moveaxis(x, -4, 0))  # (P, ..., H/P, c, d)


def unpack_sequence(recv):
    """(P, ..., H/P, c, d) received from every rank -> (..., H/P, P c, d)."""
    return np.concatenate(list(recv), axis=-2)  # sequence shards in rank order


def pack_sequence(x, n_ranks):
    """(..., H/P, N, d) -> (P, ..., H/P, c, d): message s = the tokens of rank s."""
    return np.ascontiguousarray(np.stack(np.split(x, n_ranks, axis=-2)))


def unpack_heads(recv):
    """(P, ..., H/P, c, d) received from every rank -> (..., H, c, d)."""
    return np.concatenate(list(recv), axis=-3)  # head groups in rank order


def alltoall(sendbufs):
    """Simulated all-to-all: rank g receives message g of every rank, in rank order.

    sendbufs: P arrays (P, ...) (rank p's message to g is sendbufs[p][g]).
    Returns P arrays (P, ...), recvbufs[g][p] = sendbufs[p][g].
    """
    return [np.stack([buf[g] for buf in sendbufs]) for g in range(len(sendbufs))]


class UlyssesCache(NamedTuple):
    caches: list  # per rank: AttentionCache of its H/P heads over the full sequence
    n_ranks: int
    shape: tuple  # (..., H, N, d_v) of the output


def _heads_to_seq(shards, P):
    """The exchange seq-split -> head-split for a list of P (..., H, c, d) shards."""
    return [unpack_sequence(r) for r in alltoall([pack_heads(x, P) for x in shards])]


def _seq_to_heads(parts, P):
    """The exchange head-split -> seq-split for a list of P (..., H/P, N, d)."""
    return [unpack_heads(r) for r in alltoall([pack_sequence(x, P) for x in parts])]


def ulysses_attention_forward(q, k, v, *, n_ranks, causal=True, scale=None):
    """Exact attention by simulated Ulysses sequence parallelism over P ranks.

    Args:
        q: (..., H, N, d), k: (..., H, N, d), v: (..., H, N, d_v) full arrays;
            rank p holds tokens [p c, (p + 1) c) of each.
        n_ranks: P, a divisor of H (and of N).
        causal, scale: as in ``attention_forward`` (causal: key j <= query i).

    Returns:
        out (..., H, N, d_v) and a UlyssesCache.
    """
    q, k, v, scale = V.check_qkv(q, k, v, None, scale)
    if q.ndim < 3 or not q.shape[:-1] == k.shape[:-1] == v.shape[:-1]:
        raise ValueError(
            f"Ulysses needs self-attention with a head axis: q{q.shape}, k{k.shape}, "
            f"v{v.shape} must share the shape (..., H, N, :)"
        )
    P, N = n_ranks, q.shape[-2]
    check_split("contiguous", N, P)
    check_heads(q.shape[-3], P)
    causal = V.bool_arg("causal", causal)
    full = [_heads_to_seq(np.split(x, P, axis=-2), P) for x in (q, k, v)]
    mask = causal_mask(N) if causal else None
    results = [  # each rank: H/P heads over the whole sequence
        attention_forward(*qkv, mask, scale=scale) for qkv in zip(*full, strict=True)
    ]
    out_shards = _seq_to_heads([o for o, _ in results], P)  # P (..., H, c, d_v)
    out = np.concatenate(out_shards, axis=-2)  # (..., H, N, d_v)
    return out, UlyssesCache([c for _, c in results], P, out.shape)


def ulysses_attention_backward(dout, cache):
    """Gradients of ulysses_attention_forward: the exchanges run in reverse.

    Returns dq (..., H, N, d), dk (..., H, N, d), dv (..., H, N, d_v).
    """
    V.grad_shape("dout", dout, cache.shape)
    P = cache.n_ranks
    douts = _heads_to_seq(np.split(np.asarray(dout), P, axis=-2), P)
    grads = [attention_backward(g, c) for g, c in zip(douts, cache.caches, strict=True)]
    return tuple(  # each of dq, dk, dv: back to token shards, then concatenated
        np.concatenate(_seq_to_heads(list(g), P), axis=-2)
        for g in zip(*grads, strict=True)
    )


def _mpi_exchange(comm, x, pack, unpack, sent):
    """One MPI Alltoall of the packed buffer; counts the bytes leaving this rank."""
    P = comm.Get_size()
    send = pack(x, P)  # (P, ...) message g goes to rank g
    recv = np.empty_like(send)
    comm.Alltoall(send, recv)
    sent[0] += send.nbytes * (P - 1) // P  # message g == rank stays home
    return unpack(recv)


def ulysses_mpi_forward(q, k, v, comm, *, causal=True, scale=None):
    """This rank's Ulysses attention over MPI: (out, cache, bytes_sent).

    Args:
        q: (..., H, c, d), k: (..., H, c, d), v: (..., H, c, d_v) this rank's
            contiguous slice of c = N / P tokens; P = comm size must divide H.
        comm: an mpi4py communicator.

    Returns:
        out (..., H, c, d_v) for this rank's tokens, a cache for
        ``ulysses_mpi_backward`` and the bytes this rank sent.
    """
    check_heads(q.shape[-3], comm.Get_size())
    causal = V.bool_arg("causal", causal)
    sent = [0]
    full = [
        _mpi_exchange(comm, x, pack_heads, unpack_sequence, sent) for x in (q, k, v)
    ]
    mask = causal_mask(full[0].shape[-2]) if causal else None
    out, cache = attention_forward(*full, mask, scale=scale)  # (..., H/P, N, d_v)
    out = _mpi_exchange(comm, out, pack_sequence, unpack_heads, sent)
    return out, cache, sent[0]


def ulysses_mpi_backward(dout, cache, comm):
    """This rank's (dq, dk, dv, bytes_sent), each (..., H, c, :), over MPI."""
    P, shape = comm.Get_size(), cache.out.shape  # (..., H/P, N, d_v) on this rank
    V.grad_shape("dout", dout, shape[:-3] + (shape[-3] * P, shape[-2] // P, shape[-1]))
    sent = [0]
    dout = _mpi_exchange(comm, dout, pack_heads, unpack_sequence, sent)
    grads = attention_backward(dout, cache)  # (..., H/P, N, :) each
    grads = [_mpi_exchange(comm, g, pack_sequence, unpack_heads, sent) for g in grads]
    return (*grads, sent[0])

"""Ulysses over MPI: the same exchanges as ``ulysses`` with MPI's Alltoall.

Every rank calls these functions with its contiguous slice of c = N / P queries
and c_k = M / P keys and values (every rank the same c, c_k: Alltoall sends
equal messages) and an mpi4py communicator (a one-rank stand-in with ``Alltoall``,
``Get_size`` and ``Get_rank`` works too: mpi4py is never imported here).

Shape legend: q (..., H, c, d), k (..., H, c_k, d), v (..., H, c_k, d_v) this
rank's slices; after the first exchange (..., H/P, N, d) over the whole sequence.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_backward, attention_forward
from .stats import CommStats, GradsWithStats, Meter, check_comm
from .ulysses import (
    check_ulysses,
    group_mask,
    pack_heads,
    pack_sequence,
    unpack_heads,
    unpack_sequence,
)


class UlyssesMPICache(NamedTuple):
    """What ``ulysses_mpi_backward`` needs, and the forward's statistics."""

    cache: object  # AttentionCache of this rank's H/P heads over the whole sequence
    comm: object
    shape: tuple  # (..., H, c, d_v) of this rank's output
    stats: CommStats


def _exchange(comm, x, pack, unpack, meter):
    """One MPI Alltoall of the packed buffer; counts the bytes leaving this rank."""
    P = comm.Get_size()
    send = np.ascontiguousarray(np.stack(list(pack(x, P))))  # (P, ...) g -> rank g
    recv = np.empty_like(send)
    meter.lap("compute_s")
    comm.Alltoall(send, recv)
    meter.lap("wait_s")
    meter.sent += send.nbytes * (P - 1) // P  # message g == rank stays home
    return unpack(recv)


def _pairs(N, M, causal, align):
    """(query, key) pairs the causal rule allows in one head's (N, M) scores."""
    offset = V.causal_offset(causal, align, N, M)
    if offset is None:
        return N * M
    return int(np.clip(np.arange(N) + offset + 1, 0, M).sum())


def ulysses_mpi_forward(
    q, k, v, mask=None, *, comm, causal, align="top_left", scale=None
):
    """This rank's Ulysses attention over MPI: (out, UlyssesMPICache).

    Args:
        q: (..., H, c, d), k: (..., H, c_k, d), v: (..., H, c_k, d_v) this rank's
            contiguous slices (N = c P queries, M = c_k P keys); P must divide H.
        mask: the GLOBAL boolean mask, broadcastable to (..., H, N, M), or None.
        comm: an mpi4py communicator. causal, align, scale: as in attention_forward.

    Returns:
        out (..., H, c, d_v) for this rank's tokens and a cache; ``cache.stats``
        is the forward's CommStats.
    """
    P, rank = check_comm(comm)
    q, k, v, scale = check_ulysses(q, k, v, None, scale, P)
    N, M, lead = q.shape[-2] * P, k.shape[-2] * P, q.shape[:-2]
    if mask is not None:
        V.bool_mask("mask", mask, lead + (N, M))
    V.causal_offset(causal, align, N, M)  # validates both
    meter = Meter()
    full = [_exchange(comm, x, pack_heads, unpack_sequence, meter) for x in (q, k, v)]
    mask_g = group_mask(mask, lead, N, M, P, rank)  # (..., H/P, N, M) or None
    options = {"causal": causal, "align": align, "scale": scale}
    out, cache = attention_forward(*full, mask_g, **options)  # (..., H/P, N, d_v)
    meter.pairs.append(_pairs(N, M, causal, align))
    out = _exchange(comm, out, pack_sequence, unpack_heads, meter)
    meter.lap("compute_s")
    return out, UlyssesMPICache(cache, comm, out.shape, meter.stats())


def ulysses_mpi_backward(dout, cache):
    """This rank's gradients over MPI: GradsWithStats (dq, dk, dv) with ``.stats``.

    Args:
        dout: (..., H, c, d_v) upstream gradient of this rank's output.
        cache: from ``ulysses_mpi_forward`` (its communicator included).

    Returns:
        dq (..., H, c, d), dk (..., H, c_k, d), dv (..., H, c_k, d_v) and ``.stats``.
    """
    attention_cache, comm, shape, _ = cache
    V.grad_shape("dout", dout, shape)
    meter = Meter()
    dout = _exchange(comm, np.asarray(dout), pack_heads, unpack_sequence, meter)
    grads = attention_backward(dout, attention_cache)  # (..., H/P, N|M, :) each
    meter.pairs.append(cache.stats.pairs[0])
    grads = [_exchange(comm, g, pack_sequence, unpack_heads, meter) for g in grads]
    meter.lap("compute_s")
    return GradsWithStats(tuple(grads), meter.stats())

"""Ring attention over real processes with mpi4py (an optional dependency).

Every rank calls these functions with its own shards (``layouts.shard``) and an
mpi4py communicator. At each step a rank posts a non-blocking receive of the next
key/value block from rank r - 1 and a non-blocking send of its current block to
rank r + 1 *before* computing, and waits for both afterwards, so the transfer
can overlap the compute: whether it does depends on the MPI library moving the
bytes while the rank computes (a NIC's DMA, or a progress thread; MPICH on one
machine, by default, copies them inside the MPI calls, i.e. in the wait). The
backward pass sends K and V the same way and passes the dK, dV accumulators on
after each step's compute (their transfer can overlap the next step). Both call
the same per-step functions as the simulated ring (``ring_step``), in the same
order, so the results are bit-identical to it.

mpi4py's upper-case methods (Isend, Irecv) send NumPy buffers without pickling;
the buffers must be C-contiguous and must not be touched until the wait.

``out, cache = ring_attention_mpi_forward(q, k, v, mask, comm=..., causal=...)``
gives this rank's output and a cache whose ``stats`` are the forward's CommStats;
``ring_attention_mpi_backward(dout, cache)`` returns GradsWithStats (dq, dk, dv)
with ``.stats``. With one rank no message is sent and mpi4py is never imported.
``stats.events`` logs each step's post, compute and wait (``stats.Event``), so a
timeline of the ranks shows whether the transfers overlapped the compute.

Shape legend: q (..., c, d), k (..., c_k, d), v (..., c_k, d_v) this rank's shards
(c = N / P, c_k = M / P).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..efficient.flash import BLOCK_K, BLOCK_Q
from .ring_step import (
    add_into,
    backward_step,
    empty_partial,
    forward_step,
    make_plan,
    mask_rows,
)
from .stats import CommStats, GradsWithStats, Meter, check_comm


class RingMPICache(NamedTuple):
    """What ``ring_attention_mpi_backward`` needs, and the forward's statistics."""

    q: np.ndarray  # (..., c, d) this rank's shards
    k: np.ndarray  # (..., c_k, d)
    v: np.ndarray  # (..., c_k, d_v)
    mask: np.ndarray | None  # (..., c, M) this rank's rows of the mask
    out: np.ndarray  # (..., c, d_v) final output of this rank's queries
    lse: np.ndarray  # (..., c)
    plan: object  # ring_step.RingPlan
    comm: object
    stats: CommStats


def _waitall(requests):
    """MPI Waitall; with no request (one rank) mpi4py is not even imported."""
    if requests:
        from mpi4py import MPI  # optional dependency: imported only here

        MPI.Request.Waitall(requests)


def _exchange(comm, send, t, kind, meter):
    """Post Irecv (from r - 1) and Isend (to r + 1) of each array in ``send``.

    Returns the receive buffers and (receive requests, send requests).
    """
    r, P = comm.Get_rank(), comm.Get_size()
    recv = [np.empty_like(a) for a in send]
    recvs, sends = [], []
    for i, (a, b) in enumerate(zip(send, recv, strict=True)):
        tag = 4 * t + 2 * kind + i  # kind 0: k, v; kind 1: dk, dv
        recvs.append(comm.Irecv(b, source=(r - 1) % P, tag=tag))
        sends.append(comm.Isend(a, dest=(r + 1) % P, tag=tag))
        meter.sent += a.nbytes
    return recv, recvs, sends


def _pass_kv(comm, held, t, plan, meter):
    """Post the transfer of the held k, v to rank r + 1 (none after the last step).

    Returns the arrays to hold at step t + 1 and the requests to wait for first.
    """
    if t == plan.n_ranks - 1:
        return held, []
    incoming, recvs, sends = _exchange(comm, held, t, 0, meter)
    return incoming, recvs + sends


def _check(q, k, v, mask, comm, options):
    P, rank = check_comm(comm)
    q, k, v, scale = V.check_qkv(q, k, v, None, options.pop("scale"))
    N, M = q.shape[-2] * P, k.shape[-2] * P  # global lengths
    if mask is not None:
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        V.bool_mask("mask", mask, lead + (N, M))
    plan = make_plan(options.pop("layout"), N, P, kv_len=M, scale=scale, **options)
    return q, k, v, mask_rows(mask, plan, rank), plan, rank


def ring_attention_mpi_forward(
    q,
    k,
    v,
    mask=None,
    *,
    comm,
    causal,
    align="top_left",
    layout="zigzag",
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
):
    """This rank's share of ring attention over MPI: (out, RingMPICache).

    Args:
        q: (..., c, d), k: (..., c_k, d), v: (..., c_k, d_v) this rank's shards, in
            the local order of ``layouts.layout_positions(layout, N, P)[rank]`` (and
            of M for k, v).
        mask: the GLOBAL boolean mask, broadcastable to (..., N, M), or None.
        comm: an mpi4py communicator (e.g. ``MPI.COMM_WORLD``), P = its size.
        causal, align, layout, scale, block_q, block_k: as in
            ``ring_attention_forward``.

    Returns:
        out (..., c, d_v) for this rank's queries, and a cache with ``.lse`` (..., c)
        and ``.stats`` (CommStats of the forward).
    """
    options = {"layout": layout, "causal": causal, "align": align, "scale": scale}
    options.update(block_q=block_q, block_k=block_k)
    q, k, v, rows, plan, rank = _check(q, k, v, mask, comm, options)
    out, lse = empty_partial(q, k, v)  # (..., c, d_v), (..., c)
    held, meter = [np.ascontiguousarray(k), np.ascontiguousarray(v)], Meter()
    for t in range(plan.n_ranks):
        incoming, reqs = _pass_kv(comm, held, t, plan, meter)  # post the transfer ...
        meter.lap("wait_s", "post", t)
        work = plan.step(rank, t)  # ... compute while it may fly ...
        meter.pairs.append(forward_step(q, *held, rows, (out, lse), work, plan))
        meter.lap("compute_s", "compute", t)
        _waitall(reqs)  # ... and only then wait for it
        meter.lap("wait_s", "wait", t)
        held = incoming
    return out, RingMPICache(q, k, v, rows, out, lse, plan, comm, meter.stats())


def ring_attention_mpi_backward(dout, cache):
    """This rank's gradients from its FINAL out and lse, by the ring over MPI.

    Args:
        dout: (..., c, d_v) upstream gradient of this rank's output.
        cache: from ``ring_attention_mpi_forward`` (its communicator included).

    Returns:
        GradsWithStats: dq (..., c, d), dk (..., c_k, d), dv (..., c_k, d_v) of this
        rank's tokens, and ``.stats`` (CommStats of the backward).
    """
    q, k, v, rows, out, lse, plan, comm, _ = cache
    V.grad_shape("dout", dout, out.shape)
    dout = np.asarray(dout, dtype=out.dtype)
    dq, rank = np.zeros_like(q), comm.Get_rank()  # (..., c, d) stays home
    held, meter = [np.ascontiguousarray(k), np.ascontiguousarray(v)], Meter()
    acc, acc_recvs, in_flight = None, [], []
    for t in range(plan.n_ranks):
        incoming, kv_reqs = _pass_kv(comm, held, t, plan, meter)
        meter.lap("wait_s", "post", t)
        parts = [dq, np.zeros_like(held[0]), np.zeros_like(held[1])]
        work = plan.step(rank, t)
        pairs = backward_step(dout, q, *held, rows, (out, lse), work, plan, parts)
        meter.pairs.append(pairs)
        meter.lap("compute_s", "compute", t)
        _waitall(acc_recvs)  # this block's accumulators have arrived
        acc = add_into(acc, parts[1:])
        if plan.n_ranks > 1:  # (one rank: the accumulators never leave home)
            acc, acc_recvs, sends = _exchange(comm, acc, t, 1, meter)
            in_flight += sends  # (the sent arrays stay alive in their requests)
        _waitall(kv_reqs)
        if t == plan.n_ranks - 1:
            _waitall(acc_recvs + in_flight)  # after P hops dK, dV are home
        meter.lap("wait_s", "wait", t)  # (includes posting dK, dV)
        held = incoming
    return GradsWithStats((dq, acc[0], acc[1]), meter.stats())

"""Ring attention over real processes with mpi4py (an optional dependency).

Every rank calls these functions with its own shards (``layouts.shard``) and an
mpi4py communicator. At each step a rank posts a non-blocking receive of the next
key/value block from rank r - 1 and a non-blocking send of its current block to
rank r + 1 *before* computing, and waits for both afterwards, so the transfer
overlaps the compute. The backward pass sends K and V the same way and passes the
dK, dV accumulators on after each step's compute (their transfer overlaps the next
step). Both call the same per-step functions as the simulated ring
(``ring_step``), in the same order, so the results are bit-identical to it.

mpi4py's upper-case methods (Isend, Irecv) send NumPy buffers without pickling;
the buffers must be C-contiguous and must not be touched until the wait.

Shape legend: q (..., c, d), k (..., c, d), v (..., c, d_v) this rank's shards.
"""

import time
from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..efficient.flash import BLOCK_K, BLOCK_Q
from .ring_step import add_into, backward_step, empty_partial, forward_step, make_plan


class RankStats(NamedTuple):
    """One rank's account of a pass: useful work, traffic and where time went."""

    pairs: list  # unmasked (query, key) pairs computed at each step
    bytes_sent: int
    compute_s: float  # seconds inside the attention kernels
    wait_s: float  # seconds blocked in Waitall (communication not hidden)


class _Meter:
    """Running totals for RankStats: bytes sent, compute and waiting time."""

    def __init__(self):
        self.pairs, self.sent, self.compute_s, self.wait_s = [], 0, 0.0, 0.0
        self.clock = time.perf_counter()

    def lap(self, what):
        """Charge the time since the last lap to "compute" or "wait"."""
        now = time.perf_counter()
        setattr(self, what, getattr(self, what) + now - self.clock)
        self.clock = now

    def stats(self):
        return RankStats(self.pairs, self.sent, self.compute_s, self.wait_s)


def _plan(comm, q, layout, causal, scale, block_q, block_k):
    """The RingPlan of this communicator's ring, with c = q's local length."""
    P = comm.Get_size()
    options = {"scale": scale, "block_q": block_q, "block_k": block_k}
    return make_plan(layout, q.shape[-2] * P, P, causal=causal, **options)


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


def ring_attention_mpi_forward(
    q,
    k,
    v,
    comm,
    *,
    layout="zigzag",
    causal=True,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
):
    """This rank's share of ring attention: (out, lse, RankStats).

    Args:
        q: (..., c, d), k: (..., c, d), v: (..., c, d_v) this rank's shards, in the
            local order of ``layouts.layout_positions(layout, c * P, P)[rank]``.
        comm: an mpi4py communicator (e.g. ``MPI.COMM_WORLD``), P = its size.
        layout, causal, scale, block_q, block_k: as in ``ring_attention_forward``.

    Returns:
        out (..., c, d_v), lse (..., c) for this rank's queries, and RankStats.
    """
    from mpi4py import MPI  # optional dependency: imported only here

    plan = _plan(comm, q, layout, causal, scale, block_q, block_k)
    out, lse = empty_partial(q, v)  # (..., c, d_v), (..., c)
    held, meter = [np.ascontiguousarray(k), np.ascontiguousarray(v)], _Meter()
    for t in range(plan.n_ranks):
        incoming, reqs = _pass_kv(comm, held, t, plan, meter)  # post the transfer ...
        meter.lap("wait_s")
        _, tiles = plan.tiles(comm.Get_rank(), t)  # ... compute while it flies ...
        meter.pairs.append(forward_step(q, *held, out, lse, tiles, plan))
        meter.lap("compute_s")
        MPI.Request.Waitall(reqs)  # ... and only then wait for it
        held = incoming
    meter.lap("wait_s")
    return out, lse, meter.stats()


def ring_attention_mpi_backward(
    dout,
    q,
    k,
    v,
    out,
    lse,
    comm,
    *,
    layout="zigzag",
    causal=True,
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
):
    """This rank's gradients (dq, dk, dv, RankStats) from its FINAL out and lse.

    Args:
        dout: (..., c, d_v) upstream gradient of this rank's output.
        q, k, v, comm, options: as in ``ring_attention_mpi_forward``.
        out: (..., c, d_v), lse: (..., c) that function's results.

    Returns:
        dq (..., c, d), dk (..., c, d), dv (..., c, d_v) for this rank's tokens.
    """
    V.grad_shape("dout", dout, np.shape(out))
    from mpi4py import MPI

    plan = _plan(comm, q, layout, causal, scale, block_q, block_k)
    dq = np.zeros_like(q)  # (..., c, d) stays home
    held, meter = [np.ascontiguousarray(k), np.ascontiguousarray(v)], _Meter()
    acc, acc_recvs, in_flight = None, [], []
    for t in range(plan.n_ranks):
        incoming, kv_reqs = _pass_kv(comm, held, t, plan, meter)
        meter.lap("wait_s")
        _, tiles = plan.tiles(comm.Get_rank(), t)
        parts = [dq, np.zeros_like(held[0]), np.zeros_like(held[1])]
        meter.pairs.append(backward_step(dout, q, *held, out, lse, tiles, plan, parts))
        meter.lap("compute_s")
        MPI.Request.Waitall(acc_recvs)  # this block's accumulators have arrived
        acc = add_into(acc, parts[1:])
        if plan.n_ranks > 1:  # (one rank: the accumulators never leave home)
            acc, acc_recvs, sends = _exchange(comm, acc, t, 1, meter)
            in_flight += sends  # (the sent arrays stay alive in their requests)
        MPI.Request.Waitall(kv_reqs)
        held = incoming
    MPI.Request.Waitall(acc_recvs + in_flight)  # after P hops dK, dV are home
    meter.lap("wait_s")
    return dq, acc[0], acc[1], meter.stats()

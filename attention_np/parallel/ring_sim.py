"""Ring attention simulated in one process: P rank states with explicit message buffers.

Each rank keeps its own queries and, at step t, the key/value block of rank
(r - t) mod P. A step is three phases, the same as on real processes:

1. post: every rank copies the block it holds into its send buffer, addressed to
   rank r + 1 (a non-blocking send: the copy is what travels);
2. compute: every rank merges attention against the held block into its running
   (out, lse) (``ring_step.forward_step``);
3. deliver: each send buffer lands in the next rank's receive buffer, which becomes
   the held block (the wait of the non-blocking receive).

The backward pass circulates K and V again, together with accumulators dK and dV:
each rank adds the gradient of the held block into the accumulator and passes it on,
and after P hops every accumulator is back with the block's owner.
``RingCache.trace`` / ``ring_backward_trace`` record, per step and rank, the block
held, the tiles computed with their number of unmasked pairs, and the messages sent.

Queries are split over N and keys/values over M by the same layout; a ``mask``
(..., N, M) is split by rows (each rank keeps its queries' rows).

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v); P ranks, c = N / P.
"""

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..efficient.flash import BLOCK_K, BLOCK_Q
from .layouts import shard, unshard
from .ring_state import (
    RankStep,
    StepRecord,
    check_plan,
    deliver,
    init_states,
    post,
)
from .ring_step import add_into, backward_step, forward_step, make_plan


class RingCache(NamedTuple):
    out: np.ndarray  # (..., N, d_v)
    lse: np.ndarray  # (..., N)
    states: list  # P ring_state.RankState after the forward
    plan: object  # ring_step.RingPlan
    positions: np.ndarray  # (P, c) query positions (= plan.q_positions)
    trace: list  # P StepRecord


def _check(q, k, v, mask, n_ranks, options):
    q, k, v, scale = V.check_qkv(q, k, v, mask, options.pop("scale"))
    N, M = q.shape[-2], k.shape[-2]
    plan = make_plan(
        options.pop("layout"), N, n_ranks, kv_len=M, scale=scale, **options
    )
    return q, k, v, plan


def forward_steps(states, plan):
    """Run the forward ring on ``states``, yielding each step's StepRecord.

    The generator pauses after the compute phase and before delivery: the send
    buffers of the paused step are still full, so every step can be inspected.
    """
    P = check_plan(plan).n_ranks
    if not isinstance(states, list) or len(states) != P:
        raise ValueError(f"states must be a list of P = {P} RankState (init_states)")
    for t in range(P):
        messages = post(states, t, ("k", "v"), "kv", plan) if t < P - 1 else []
        records = []
        for s in states:
            work = plan.step(s.rank, t)
            assert work.src == s.held_block  # the ring delivered the expected block
            kv = s.held["k"], s.held["v"]
            pairs = forward_step(s.q, *kv, s.mask, (s.out, s.lse), work, plan)
            records.append(RankStep(s.rank, t, work.src, work.tiles, pairs))
        yield StepRecord(t, records, messages)
        deliver(states, messages)


def ring_attention_forward(
    q,
    k,
    v,
    mask=None,
    *,
    n_ranks,
    causal,
    align="top_left",
    layout="zigzag",
    scale=None,
    block_q=BLOCK_Q,
    block_k=BLOCK_K,
):
    """Exact attention computed by a simulated ring of ``n_ranks`` ranks.

    Args:
        q: (..., N, d), k: (..., M, d), v: (..., M, d_v) full (unsharded) arrays.
        mask: boolean, broadcastable to (..., N, M); True = may attend.
        n_ranks: P; N and M must split evenly (2P chunks for ``zigzag``).
        causal: apply the causal rule by global positions (ANDed with ``mask``).
        align: "top_left" (j <= i) or "bottom_right" (j <= i + M - N).
        layout: "contiguous", "zigzag" or "striped" (see ``layouts``).
        scale, block_q, block_k: as in ``efficient.block_attention_forward``.

    Returns:
        out (..., N, d_v) and a RingCache (``.lse`` (..., N), ``.trace``).
    """
    options = {"layout": layout, "causal": causal, "align": align, "scale": scale}
    options.update(block_q=block_q, block_k=block_k)
    q, k, v, plan = _check(q, k, v, mask, n_ranks, options)
    states = init_states(q, k, v, mask, plan=plan)
    trace = list(forward_steps(states, plan))
    positions = plan.q_positions
    out = unshard([s.out for s in states], positions)  # (..., N, d_v)
    lse = unshard([s.lse for s in states], positions, axis=-1)  # (..., N)
    return out, RingCache(out, lse, states, plan, positions, trace)


def _backward_step(states, douts, t, plan):
    """One backward step on every rank: kv posted first, dk/dv after the compute."""
    P = plan.n_ranks
    messages = post(states, t, ("k", "v"), "kv", plan) if t < P - 1 else []
    records = []
    for s, dout in zip(states, douts, strict=True):
        work = plan.step(s.rank, t)
        parts = [s.dq, np.zeros_like(s.k), np.zeros_like(s.v)]  # (..., c, d) ...
        kv = s.held["k"], s.held["v"]
        final = s.out, s.lse
        pairs = backward_step(dout, s.q, *kv, s.mask, final, work, plan, parts)
        arrived = (s.held["dk"], s.held["dv"]) if t > 0 else None
        s.held["dk"], s.held["dv"] = add_into(arrived, parts[1:])
        records.append(RankStep(s.rank, t, work.src, work.tiles, pairs))
    if P > 1:  # (one rank: the accumulators are already home)
        messages += post(states, t, ("dk", "dv"), "dkv", plan)
    deliver(states, messages)
    return StepRecord(t, records, messages)


def ring_backward_trace(dout, cache):
    """Like ``ring_attention_backward``, also returning the backward's P StepRecords."""
    V.grad_shape("dout", dout, cache.out.shape)
    plan = cache.plan
    douts = shard(np.asarray(dout, dtype=cache.out.dtype), plan.q_positions)
    states = [  # fresh copies: the cache is not modified
        replace(s, held={"k": s.k, "v": s.v}, held_block=s.rank, dq=np.zeros_like(s.q))
        for s in cache.states
    ]
    trace = [_backward_step(states, douts, t, plan) for t in range(plan.n_ranks)]
    assert all(s.held_block == s.rank for s in states)  # accumulators are home
    q_pos, k_pos = plan.q_positions, plan.k_positions
    dq = unshard([s.dq for s in states], q_pos)  # (..., N, d)
    dk = unshard([s.held["dk"] for s in states], k_pos)  # (..., M, d)
    dv = unshard([s.held["dv"] for s in states], k_pos)  # (..., M, d_v)
    return (dq, dk, dv), trace


def ring_attention_backward(dout, cache):
    """Gradients of ring_attention_forward, by the simulated ring's backward pass.

    Each rank recomputes its tiles with P = exp(S - lse) from its FINAL lse and
    D = rowsum(dout * out); dq stays home, dK and dV accumulators travel the ring.

    Args:
        dout: (..., N, d_v) upstream gradient.
        cache: from ``ring_attention_forward``.

    Returns:
        dq (..., N, d), dk (..., M, d), dv (..., M, d_v).
    """
    return ring_backward_trace(dout, cache)[0]  # (which checks dout's shape)

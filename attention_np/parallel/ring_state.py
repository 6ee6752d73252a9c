"""The simulated ring's state: ranks with message buffers, and the messages.

A ``RankState`` is one simulated rank: its shards, the block it holds and its send
and receive buffers. ``post`` (phase 1 of a step) copies what each rank passes on
into its send buffer; ``deliver`` (phase 3) moves every send buffer into the next
rank's receive buffer, which becomes the held block. ``init_states`` builds the P
ranks of a ``ring_step.RingPlan`` from the full arrays.

Shape legend: q (..., c, d), k (..., c_k, d), v (..., c_k, d_v) on one rank.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .. import validate as V
from .layouts import shard
from .ring_step import RingPlan, empty_partial, mask_rows


class Message(NamedTuple):
    """One point-to-point message: who sent what to whom (no payload kept)."""

    step: int
    sender: int
    receiver: int
    block: int  # owner of the key/value block the message carries
    kind: str  # "kv" (keys and values) or "dkv" (their gradient accumulators)
    nbytes: int


class RankStep(NamedTuple):
    """What one rank did at one step."""

    rank: int
    step: int
    block: int  # whose key/value block it held
    tiles: tuple  # layouts.Tile rectangles of its local (c, c) score block
    pairs: int  # unmasked (query, key) pairs in them


class StepRecord(NamedTuple):
    step: int
    ranks: list  # P RankStep
    messages: list  # Message, sent during this step


@dataclass
class RankState:
    """One simulated rank: its shards, the block it holds, its message buffers."""

    rank: int
    positions: np.ndarray  # (c,) global positions of its queries
    q: np.ndarray  # (..., c, d)
    k: np.ndarray  # (..., c_k, d)
    v: np.ndarray  # (..., c_k, d_v)
    mask: np.ndarray | None = None  # (..., c, M) its queries' rows of the mask
    held_block: int = -1
    held: dict = field(default_factory=dict)  # travelling arrays now on this rank
    send_buf: dict | None = None
    recv_buf: dict | None = None
    out: np.ndarray | None = None  # (..., c, d_v) running output
    lse: np.ndarray | None = None  # (..., c) running log-sum-exp
    dq: np.ndarray | None = None  # (..., c, d) backward: stays on this rank


def post(states, t, names, kind, plan):
    """Phase 1: copy each rank's travelling arrays into its send buffer -> messages."""
    messages = []
    for s in states:
        s.send_buf = {**(s.send_buf or {}), **{n: s.held[n].copy() for n in names}}
        nbytes = sum(s.held[n].nbytes for n in names)
        receiver = (s.rank + 1) % plan.n_ranks
        messages.append(Message(t, s.rank, receiver, s.held_block, kind, nbytes))
    return messages


def deliver(states, messages):
    """Phase 3: send buffers land in receive buffers; then each rank "waits" and
    holds what it received (only that: a rank passes on everything it held)."""
    for msg in messages:
        states[msg.receiver].recv_buf = states[msg.sender].send_buf
    for msg in messages:
        states[msg.sender].send_buf = None
        receiver = states[msg.receiver]
        if receiver.recv_buf is not None:
            receiver.held, receiver.recv_buf = dict(receiver.recv_buf), None
            receiver.held_block = msg.block


def check_plan(plan):
    """Raise TypeError unless ``plan`` is a RingPlan."""
    if not isinstance(plan, RingPlan):
        raise TypeError(
            f"plan must be a RingPlan (from make_plan), got {type(plan).__name__}"
        )
    return plan


def _check_states_args(q, k, v, mask, plan):
    q, k, v, _ = V.check_qkv(q, k, v, mask, check_plan(plan).scale)
    lengths = (plan.q_positions.size, plan.k_positions.size)
    if (q.shape[-2], k.shape[-2]) != lengths:
        raise ValueError(
            f"q{q.shape} and k{k.shape} must have the plan's lengths (N, M) = {lengths}"
        )
    return q, k, v


def init_states(q, k, v, mask=None, *, plan):
    """One RankState per rank, holding its own key/value block (step 0).

    q, k, v, mask: the full arrays (validated, as in ``ring_attention_forward``);
    plan: a ``ring_step.RingPlan`` (``make_plan``) for their lengths N and M.
    """
    q, k, v = _check_states_args(q, k, v, mask, plan)
    qs = shard(q, plan.q_positions)  # P (..., c, d)
    ks, vs = shard(k, plan.k_positions), shard(v, plan.k_positions)  # P (..., c_k, :)
    states = []
    for r, (q_r, k_r, v_r) in enumerate(zip(qs, ks, vs, strict=True)):
        held = {"k": k_r, "v": v_r}
        m_r = mask_rows(mask, plan, r)  # (..., c, M) or None
        s = RankState(r, plan.q_positions[r], q_r, k_r, v_r, m_r, r, held)
        s.out, s.lse = empty_partial(q_r, k_r, v_r)
        states.append(s)
    return states

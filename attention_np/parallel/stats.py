"""One rank's account of an MPI pass (ring or Ulysses), and gradients that carry it.

A forward's statistics are ``cache.stats``; a backward returns ``GradsWithStats``:
a tuple (dq, dk, dv) that unpacks like any tuple, with a ``.stats`` attribute.

The ring also logs when each phase of each step ran (``CommStats.events``: one
``Event`` per post, compute and wait). Times are ``time.perf_counter()`` values in
seconds: on Linux that clock (CLOCK_MONOTONIC) is shared by every process of a
machine, so the logs of the ranks of one machine line up on one timeline (not the
logs of different machines).
"""

import time
from typing import NamedTuple


class Event(NamedTuple):
    """One phase of one step on one rank: [start, end] in perf_counter seconds."""

    step: int
    phase: str  # "post" (Isend/Irecv posted), "compute" or "wait" (Waitall)
    start: float
    end: float


class CommStats(NamedTuple):
    """One rank's account of a pass: useful work, traffic and where time went."""

    pairs: list  # (query, key) pairs the causal rule allows, per step (per head)
    bytes_sent: int
    compute_s: float  # seconds inside the attention kernels
    wait_s: float  # seconds in communication that the compute did not hide
    events: tuple = ()  # Event per phase and step, in time order (ring only)


class GradsWithStats(tuple):
    """(dq, dk, dv) of an MPI backward, with the pass's CommStats as ``.stats``."""

    def __new__(cls, grads, stats):
        self = super().__new__(cls, grads)
        self.stats = stats
        return self


class Meter:
    """Running totals for CommStats: pairs, bytes sent, compute and waiting time."""

    def __init__(self):
        self.pairs, self.sent, self.compute_s, self.wait_s = [], 0, 0.0, 0.0
        self.events = []
        self.clock = time.perf_counter()

    def lap(self, what, phase=None, step=None):
        """Charge the time since the last lap to "compute_s" or "wait_s"; with a
        ``phase``, also log it as an Event of ``step``."""
        now = time.perf_counter()
        setattr(self, what, getattr(self, what) + now - self.clock)
        if phase is not None:
            self.events.append(Event(step, phase, self.clock, now))
        self.clock = now

    def stats(self):
        return CommStats(
            list(self.pairs), self.sent, self.compute_s, self.wait_s, tuple(self.events)
        )


def check_comm(comm):
    """Raise TypeError unless ``comm`` looks like an mpi4py communicator."""
    if not all(hasattr(comm, name) for name in ("Get_size", "Get_rank")):
        raise TypeError(
            "comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
            f"{type(comm).__name__}"
        )
    return comm.Get_size(), comm.Get_rank()

"""Read a ring's trace: who held which block, who computed which pairs, what was sent.

A trace is the list of ``ring_sim.StepRecord`` of a forward (``RingCache.trace``) or
backward (``ring_backward_trace``) pass. These helpers turn it into small tables
(step x rank) and (N, N) maps of the score matrix for plots and tests.

Shape legend: P ranks, N tokens; tables are (P steps, P ranks).
"""

from typing import NamedTuple

import numpy as np


class Coverage(NamedTuple):
    """Which rank computed each (query, key) pair, and at which step."""

    rank: np.ndarray  # (N, N) int, -1 where no rank computed the pair
    step: np.ndarray  # (N, N) int, -1 likewise
    count: np.ndarray  # (N, N) int, how many times the pair was computed


def check_trace(trace):
    """Raise unless ``trace`` is a non-empty list of StepRecord-like records."""
    if not isinstance(trace, (list, tuple)) or not trace:
        raise TypeError(
            "trace must be a non-empty list of StepRecord (RingCache.trace or "
            f"ring_backward_trace's), got {type(trace).__name__}"
        )
    for rec in trace:
        if not all(hasattr(rec, name) for name in ("step", "ranks", "messages")):
            raise TypeError(f"trace must hold StepRecord, got {type(rec).__name__}")
    return trace


def holder_table(trace):
    """(P, P) int [t, r]: the rank whose key/value block rank r holds at step t."""
    check_trace(trace)
    return np.array([[rs.block for rs in rec.ranks] for rec in trace])


def work_table(trace):
    """(P, P) int [t, r]: unmasked (query, key) pairs rank r computed at step t."""
    check_trace(trace)
    return np.array([[rs.pairs for rs in rec.ranks] for rec in trace])


def bytes_sent(trace):
    """(P,) int: bytes each rank sent over the whole pass."""
    check_trace(trace)
    n_ranks = len(trace[0].ranks)
    sent = np.zeros(n_ranks, dtype=np.int64)
    for rec in trace:
        for msg in rec.messages:
            sent[msg.sender] += msg.nbytes
    return sent


def _tile_allowed(tile):
    """(rows, cols) boolean: the pairs of a tile that may attend."""
    i = np.arange(tile.rows.stop - tile.rows.start)[:, None]  # (rows, 1)
    j = np.arange(tile.cols.stop - tile.cols.start)[None, :]  # (1, cols)
    if tile.offset is None:
        return np.ones((i.size, j.size), dtype=bool)
    return j <= i + tile.offset  # (rows, cols)


def coverage(trace, positions):
    """Coverage of the (N, N) score matrix by the tiles of a trace.

    Args:
        trace: list of StepRecord.
        positions: (P, c) global positions per rank (``layouts.layout_positions``).

    Self-attention traces only (N == M: one positions array for both sides).
    """
    check_trace(trace)
    n_ranks = len(trace[0].ranks)
    if not isinstance(positions, np.ndarray) or positions.dtype.kind not in "iu":
        raise TypeError("positions must be a (P, c) integer array")
    if positions.ndim != 2 or positions.shape[0] != n_ranks:
        raise ValueError(
            f"positions{positions.shape} must be (P, c) with P = {n_ranks} ranks"
        )
    N = positions.size
    rank = np.full((N, N), -1)
    step = np.full((N, N), -1)
    count = np.zeros((N, N), dtype=int)
    for rec in trace:
        for rs in rec.ranks:
            for tile in rs.tiles:
                rows = positions[rs.rank][tile.rows]  # global query positions
                cols = positions[rs.block][tile.cols]  # global key positions
                allowed = _tile_allowed(tile)  # (rows, cols)
                qi, kj = np.nonzero(allowed)
                rank[rows[qi], cols[kj]] = rs.rank
                step[rows[qi], cols[kj]] = rec.step
                np.add.at(count, (rows[qi], cols[kj]), 1)
    return Coverage(rank, step, count)

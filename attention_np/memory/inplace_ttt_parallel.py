"""In-Place TTT with context parallelism: each rank holds a run of whole chunks.

Chunk updates only add up, so rank r needs one thing from the ranks before it: the
sum of their updates,

    P_r = sum_{r' < r} sum_{i on rank r'} dW_i        (F, D)

an exclusive prefix sum over ranks, which MPI computes in one collective
(``Exscan``, one F x D message per layer). Each rank then runs the parallel form
locally from W_down + P_r. The conv never crosses a chunk boundary, so the ranks
exchange no halo rows. ``inplace_ttt_context_parallel`` simulates the ranks in one
process; ``inplace_ttt_mpi_forward`` is the same computation over mpi4py (optional,
imported only inside that function), and

    mpiexec -n 2 python -m attention_np.memory.inplace_ttt_cp

checks it against the single-process layer.

Shape legend: B batch, T positions (T_r on rank r), C chunk size, D model width,
F hidden width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .chunk_conv import valid_rows
from .inplace_ttt import (
    check_inputs,
    chunk_updates,
    cumulative_weights,
    hidden_and_target,
)


def shard_positions(T, *, chunk_size, n_ranks):
    """Split positions 0..T-1 into n_ranks contiguous runs of whole chunks.

    Returns:
        a list of n_ranks (start, stop) pairs; chunks are spread as evenly as possible.
    """
    T = V.positive_int("T", T)
    chunk_size = V.positive_int("chunk_size", chunk_size)
    n_ranks = V.positive_int("n_ranks", n_ranks)
    n_chunks = -(-T // chunk_size)
    if not 1 <= n_ranks <= n_chunks:
        raise ValueError(f"n_ranks={n_ranks} must lie in [1, {n_chunks} chunks]")
    counts = [n_chunks // n_ranks + (r < n_chunks % n_ranks) for r in range(n_ranks)]
    stops = np.cumsum(counts) * chunk_size
    starts = stops - np.asarray(counts) * chunk_size
    return [(int(a), int(min(b, T))) for a, b in zip(starts, stops, strict=True)]


def local_updates(x, params, *, chunk_size, lr, target=None):
    """One rank's hidden rows Z (B, n_r, C, F) and chunk updates dW (B, n_r, F, D)."""
    keep = valid_rows(*x.shape[:2], None, x.dtype)
    Z, V_hat, _ = hidden_and_target(x, params, target, keep, chunk_size)
    return Z, chunk_updates(Z, V_hat, lr)


def local_outputs(Z, delta, W_start, T_local):
    """One rank's outputs (B, T_r, D) from its first weights W_start (B, F, D)."""
    W_chunk = cumulative_weights(W_start[:, None], delta)  # (B, n_r, F, D)
    out = Z @ W_chunk  # (B, n_r, C, D)
    return out.reshape(out.shape[0], -1, out.shape[-1])[:, :T_local]


def exclusive_scan(values):
    """[0, v_0, v_0 + v_1, ...]: what MPI's Exscan gives each rank (0 on rank 0)."""
    out, total = [], np.zeros_like(values[0])
    for v in values:
        out.append(total)
        total = total + v
    return out


def inplace_ttt_context_parallel(x, params, target=None, *, chunk_size, lr, n_ranks):
    """In-Place TTT with the sequence split over ``n_ranks`` simulated ranks.

    Args:
        x: (B, T, D); params, target, chunk_size, lr as in ``inplace_ttt_forward``.
        n_ranks: number of ranks >= 1, at most the number of chunks.

    Returns:
        out (B, T, D), equal to the single-process layer; shards, the (start, stop)
        positions of every rank.
    """
    x, p, target, _, lr = check_inputs(x, params, target, None, chunk_size, lr)
    shards = shard_positions(x.shape[1], chunk_size=chunk_size, n_ranks=n_ranks)
    local = [
        local_updates(
            x[:, a:b],
            p,
            chunk_size=chunk_size,
            lr=lr,
            target=None if target is None else target[:, a:b],
        )
        for a, b in shards
    ]
    prefixes = exclusive_scan([delta.sum(axis=1) for _, delta in local])  # (B, F, D)
    outs = [
        local_outputs(Z, delta, p["W_down"] + P, b - a)
        for (Z, delta), P, (a, b) in zip(local, prefixes, shards, strict=True)
    ]
    return np.concatenate(outs, axis=1), shards


class MPIForwardCache(NamedTuple):
    prefix: np.ndarray  # (B, F, D) P_r, the other ranks' updates this rank started from


def inplace_ttt_mpi_forward(x_local, params, target=None, *, comm, chunk_size, lr):
    """This rank's outputs, with the other ranks' updates combined by ``Exscan``.

    Args:
        x_local: (B, T_r, D) this rank's positions; T_r a multiple of chunk_size on
            every rank but the last.
        params, chunk_size, lr: as in ``inplace_ttt_forward``.
        target: (B, T_r, D) this rank's target rows, default x_local.
        comm: an mpi4py communicator (e.g. MPI.COMM_WORLD).

    Returns:
        out_local (B, T_r, D), cache (``cache.prefix`` is P_r (B, F, D)).
    """
    x, p, target, _, lr = check_inputs(x_local, params, target, None, chunk_size, lr)
    for method in ("Exscan", "Get_rank"):
        if not callable(getattr(comm, method, None)):
            raise TypeError(f"comm must be an mpi4py communicator, got {comm!r}")
    from mpi4py import MPI  # optional dependency: imported only here

    Z, delta = local_updates(x, p, chunk_size=chunk_size, lr=lr, target=target)
    local_sum = np.ascontiguousarray(delta.sum(axis=1))  # (B, F, D)
    prefix = np.zeros_like(local_sum)
    comm.Exscan(local_sum, prefix, op=MPI.SUM)
    if comm.Get_rank() == 0:
        prefix[...] = 0.0  # MPI leaves rank 0's Exscan result undefined
    out = local_outputs(Z, delta, p["W_down"] + prefix, x.shape[1])
    return out, MPIForwardCache(prefix)

"""Check In-Place TTT's context parallelism over MPI against one process.

    mpiexec -n 2 python -m attention_np.memory.inplace_ttt_cp

Every rank builds the same small seeded layer and input, runs its run of chunks with
``inplace_ttt_mpi_forward`` (one ``Exscan`` of the chunk updates), and rank 0 compares
the gathered output with ``inplace_ttt_forward``; the exit code is 0 on a match.
Needs mpi4py and an MPI (``pip install mpi4py mpich``). The package does not import
this module, so ``python -m`` runs it without a warning; the functions live in
``inplace_ttt_parallel``.
"""

import sys

import numpy as np

from .inplace_ttt import init_inplace_ttt_params, inplace_ttt_forward
from .inplace_ttt_parallel import inplace_ttt_mpi_forward, shard_positions


def _demo_problem(n_ranks, rng):
    """A small seeded layer and input, identical on every rank."""
    B, D, F, C = 2, 6, 10, 4
    T = 3 * n_ranks * C - 1  # the last chunk is partial
    params = init_inplace_ttt_params(D, F, rng=rng)
    params["conv"] = 0.5 * rng.standard_normal(params["conv"].shape)
    return rng.standard_normal((B, T, D)), params, C


def main():
    """Under mpiexec: each rank computes its shard; rank 0 compares with one process."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x, params, C = _demo_problem(size, np.random.default_rng(0))
    a, b = shard_positions(x.shape[1], C, size)[rank]
    out, prefix = inplace_ttt_mpi_forward(x[:, a:b], params, comm, chunk_size=C, lr=0.5)
    norm = np.linalg.norm(prefix)
    report = f"rank {rank}: positions {a}..{b - 1}, |P_r| = {norm:.3f}"
    pieces, reports = comm.gather(out, root=0), comm.gather(report, root=0)
    ok = True
    if rank == 0:
        ref, _ = inplace_ttt_forward(x, params, chunk_size=C, lr=0.5)
        err = float(np.max(np.abs(np.concatenate(pieces, axis=1) - ref)))
        ok = err < 1e-12
        ranks = f"{size} rank{'s' * (size > 1)}"
        print(f"In-Place TTT over MPI: {ranks}, T = {x.shape[1]}, chunk {C}")
        print("\n".join(reports))
        print(f"max |MPI - single process| = {err:.1e}  ({'ok' if ok else 'MISMATCH'})")
    return 0 if comm.bcast(ok, root=0) else 1


if __name__ == "__main__":
    sys.exit(main())

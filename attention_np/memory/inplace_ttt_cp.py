"""Check In-Place TTT's context parallelism over MPI against one process.

    mpiexec -n 2 python -m attention_np.memory.inplace_ttt_cp [--seed S]
        [--chunk-size C] [--lr LR]

Every rank builds the same small seeded layer and input, runs its run of chunks with
``inplace_ttt_mpi_forward`` (one ``Exscan`` of the chunk updates), and rank 0 compares
the gathered output with ``inplace_ttt_forward``; the exit code is 0 on a match. A bad
flag ends with ``error: ...`` and exit status 2 before MPI is touched.
Needs mpi4py and an MPI (``pip install mpi4py mpich``). The package does not import
this module, so ``python -m`` runs it without a warning; the functions live in
``inplace_ttt_parallel``.
"""

import argparse
import importlib.util
import sys

import numpy as np

from .. import validate as V
from .inplace_ttt import init_inplace_ttt_params, inplace_ttt_forward
from .inplace_ttt_parallel import inplace_ttt_mpi_forward, shard_positions


def parse_args(argv=None):
    """The command line; bad values end with ``error: ...`` and exit status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m attention_np.memory.inplace_ttt_cp",
        description="Check In-Place TTT over MPI (run under mpiexec).",
    )
    parser.add_argument("--seed", type=V.cli_int(0), default=0, help="seed >= 0")
    parser.add_argument("--chunk-size", type=V.cli_int(1), default=4, help="C >= 1")
    parser.add_argument(
        "--lr", type=V.cli_float(0), default=0.5, help="fast-weight rate >= 0"
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("mpi4py") is None:
        parser.error("mpi4py is not installed (pip install mpi4py mpich)")
    return args


def _demo_problem(n_ranks, chunk_size, rng):
    """A small seeded layer and input, identical on every rank."""
    B, D, F = 2, 6, 10
    T = 3 * n_ranks * chunk_size - 1  # the last chunk is partial (when C > 1)
    params = init_inplace_ttt_params(D, F, rng=rng)
    params["conv"] = 0.5 * rng.standard_normal(params["conv"].shape)
    return rng.standard_normal((B, T, D)), params


def main(argv=None):
    """Under mpiexec: each rank computes its shard; rank 0 compares with one process."""
    args = parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    C, lr = args.chunk_size, args.lr
    x, params = _demo_problem(size, C, np.random.default_rng(args.seed))
    a, b = shard_positions(x.shape[1], chunk_size=C, n_ranks=size)[rank]
    out, cache = inplace_ttt_mpi_forward(
        x[:, a:b], params, comm=comm, chunk_size=C, lr=lr
    )
    norm = np.linalg.norm(cache.prefix)
    report = f"rank {rank}: positions {a}..{b - 1}, |P_r| = {norm:.3f}"
    pieces, reports = comm.gather(out, root=0), comm.gather(report, root=0)
    ok = True
    if rank == 0:
        ref, _ = inplace_ttt_forward(x, params, chunk_size=C, lr=lr)
        err = float(np.max(np.abs(np.concatenate(pieces, axis=1) - ref)))
        ok = err < 1e-12 * max(1.0, float(np.max(np.abs(ref))))
        ranks = f"{size} rank{'s' * (size > 1)}"
        print(f"In-Place TTT over MPI: {ranks}, T = {x.shape[1]}, chunk {C}")
        print("\n".join(reports))
        print(f"max |MPI - single process| = {err:.1e}  ({'ok' if ok else 'MISMATCH'})")
    return 0 if comm.bcast(ok, root=0) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run ring attention (or Ulysses) over MPI processes and check it on rank 0.

    mpiexec -n 4 python -m attention_np.parallel.ring --seq-len 4096 --layout zigzag

Every rank builds the same random q, k, v, dout from ``--seed`` and keeps its own
shard (a real model would only ever hold the shard), runs the forward and backward
pass over the ring with non-blocking neighbour sends, and rank 0 gathers the results
and compares them with single-process attention (``attention_forward`` and
``attention_backward``; see ``ring_check``). It prints per-rank work, bytes sent and
time, and the max abs error; the exit code is 0 for a match within ``--tol``, 1
otherwise, 2 for bad arguments. Needs mpi4py and an MPI (``pip install mpi4py
mpich``). On several machines only the launcher changes (a host file), not this code.
"""

import argparse
import os
import sys
import time
import traceback

import numpy as np

from .. import validate as V
from .layouts import LAYOUTS, check_split, layout_positions, unshard
from .ring_check import check, ring_options
from .ring_mpi import ring_attention_mpi_backward, ring_attention_mpi_forward
from .ulysses import check_heads
from .ulysses_mpi import ulysses_mpi_backward, ulysses_mpi_forward

PROG = "python -m attention_np.parallel.ring"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Ring attention (or Ulysses) over MPI, checked against one "
        "process. Run it as: mpiexec -n 4 python -m attention_np.parallel.ring",
    )
    _sizes(p)
    p.add_argument("--layout", choices=LAYOUTS, default="zigzag")
    p.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--algorithm", choices=("ring", "ulysses"), default="ring")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=V.cli_int(0), default=0)
    p.add_argument(
        "--tol", type=V.cli_float(0), default=None, help="default 1e-12 (float64)"
    )
    p.add_argument(
        "--compare-sim",
        action="store_true",
        help="rank 0 also runs the one-process simulation (expect bit-identical)",
    )
    args = p.parse_args(argv)
    if args.tol is None:  # (an explicit --tol 0 asks for bit-identical results)
        args.tol = 1e-12 if args.dtype == "float64" else 1e-4
    return args


def _sizes(p):
    """The size flags: each a positive int, checked by argparse itself."""
    p.add_argument(
        "--seq-len", type=V.cli_int(1), default=4096, help="N (default 4096)"
    )
    p.add_argument("--heads", type=V.cli_int(1), default=4, help="H (default 4)")
    p.add_argument("--head-dim", type=V.cli_int(1), default=32, help="d (default 32)")
    p.add_argument("--batch", type=V.cli_int(1), default=1, help="B (default 1)")
    p.add_argument("--block-q", type=V.cli_int(1), default=256, help="tile rows")
    p.add_argument("--block-k", type=V.cli_int(1), default=512, help="tile columns")
    p.add_argument(
        "--blas-threads",
        type=V.cli_int(1),
        default=1,
        help="BLAS threads per rank (default 1: P ranks already share the cores)",
    )


def make_inputs(args):
    """q, k, v, dout (B, H, N, d), the same on every rank (seeded)."""
    rng = np.random.default_rng(args.seed)
    shape = (args.batch, args.heads, args.seq_len, args.head_dim)
    return [rng.standard_normal(shape).astype(args.dtype) for _ in range(4)]


def check_args(args, n_ranks):
    """The ValueError message for arguments this many ranks cannot run, or None."""
    try:
        layout = "contiguous" if args.algorithm == "ulysses" else args.layout
        check_split(layout, args.seq_len, n_ranks, "--seq-len")
        if args.algorithm == "ulysses":
            check_heads(args.heads, n_ranks)
    except ValueError as err:
        return str(err)
    return None


def _totals(fwd, bwd):
    """The report's dict from the forward's and the backward's CommStats."""
    return {
        "pairs": fwd.pairs,
        "sent": fwd.bytes_sent + bwd.bytes_sent,
        "compute": fwd.compute_s + bwd.compute_s,
        "wait": fwd.wait_s + bwd.wait_s,
    }


def run_ring(comm, args, q, k, v, dout):
    """This rank's (out, dq, dk, dv) and a stats dict."""
    out, cache = ring_attention_mpi_forward(q, k, v, comm=comm, **ring_options(args))
    grads = ring_attention_mpi_backward(dout, cache)
    return (out, *grads), _totals(cache.stats, grads.stats)


def run_ulysses(comm, args, q, k, v, dout):
    """This rank's (out, dq, dk, dv) and a stats dict, by Ulysses."""
    out, cache = ulysses_mpi_forward(q, k, v, comm=comm, causal=args.causal)
    grads = ulysses_mpi_backward(dout, cache)
    return (out, *grads), _totals(cache.stats, grads.stats)


def gather(comm, x, positions):
    """Rank 0: the full array from every rank's shard (MPI Gather); others: None."""
    x = np.ascontiguousarray(x)
    recv = np.empty((comm.Get_size(),) + x.shape, x.dtype) if comm.rank == 0 else None
    comm.Gather(x, recv, root=0)
    return None if recv is None else unshard(list(recv), positions)


MISSING_MPI = (
    "this program needs mpi4py and an MPI library: pip install mpi4py mpich "
    "(or pip install -e '.[mpi]'); then run it with "
    "mpiexec -n 4 python -m attention_np.parallel.ring"
)


def main(argv=None):
    args = parse_args(argv)
    try:
        from mpi4py import MPI
    except ImportError:
        print(MISSING_MPI, file=sys.stderr)
        return 2
    comm = MPI.COMM_WORLD
    args.n_ranks = comm.Get_size()
    problem = check_args(args, args.n_ranks)  # every rank decides the same way
    if problem:
        if comm.rank == 0:  # argparse's format, without its exit
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    try:
        return run_and_check(comm, args)
    except Exception:  # one failing rank must not leave the others waiting forever
        traceback.print_exc()
        sys.stdout.flush()  # Abort kills the process: get the traceback out first
        sys.stderr.flush()
        comm.Abort(1)


def run_and_check(comm, args):
    """Every rank: run on its shard; rank 0 checks. Returns the exit code."""
    inputs = make_inputs(args)
    layout = args.layout if args.algorithm == "ring" else "contiguous"
    positions = layout_positions(layout, args.seq_len, args.n_ranks)  # (P, c)
    mine = [np.ascontiguousarray(x[..., positions[comm.rank], :]) for x in inputs]
    run = run_ring if args.algorithm == "ring" else run_ulysses
    comm.Barrier()  # start the clocks together
    start = time.perf_counter()
    results, stats = run(comm, args, *mine)
    stats["seconds"] = time.perf_counter() - start
    full = [gather(comm, x, positions) for x in results]
    stats = comm.gather(stats, root=0)  # small dicts: pickled
    ok = check(args, inputs, full, stats) if comm.rank == 0 else None
    return 0 if comm.bcast(ok, root=0) else 1


BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(argv):
    """Restart this program with ``--blas-threads`` BLAS threads per rank.

    NumPy's BLAS fixes its thread count when it loads, so the count is set in the
    environment and the process replaced (before MPI starts). Otherwise every rank
    starts one BLAS thread per core: P ranks x cores threads fight for the cores
    (about 30x slower with 4 ranks on 2 cores).
    """
    n = str(parse_args(argv).blas_threads)
    if os.name == "nt" or all(os.environ.get(name) == n for name in BLAS_THREADS):
        return  # (Windows has no exec that keeps the process: set the variables)
    env = {**os.environ, **dict.fromkeys(BLAS_THREADS, n)}
    os.execve(sys.executable, [sys.executable, "-m", __spec__.name, *argv], env)


if __name__ == "__main__":
    limit_blas_threads(sys.argv[1:])
    sys.exit(main())

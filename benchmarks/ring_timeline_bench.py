"""Ring attention over real MPI processes: when each rank posted, computed and waited,
whether the transfers overlapped the compute, and peak memory per rank against N.

    python benchmarks/ring_timeline_bench.py            # full run, about a minute
    python benchmarks/ring_timeline_bench.py --quick    # smoke test, seconds
    make bench-ring                                     # the full run

Writes benchmarks/results/ring_timeline.json (lesson 17 loads it; the times in it
are this machine's, on the day it ran, and change from run to run). Needs mpi4py and
an MPI library (``pip install mpi4py mpich``); ``mpiexec`` is looked up next to this
Python first. Every rank runs with one BLAS thread.

The driver starts ``mpiexec -n P python ring_timeline_bench.py --worker TASK`` runs:

- timeline: the forward of ``ring_attention_mpi_forward`` (zigzag, causal), a few
  repeats; every rank's event log (``CommStats.events``: post, compute and wait of
  each step) on one clock (``time.perf_counter``, shared by the processes of one
  Linux machine), zero = the earliest rank leaving the barrier before the ring.
  Rank 0 also checks the result against one-process attention and the simulation.
  Run twice: MPICH's defaults, then with ``MPIR_CVAR_ASYNC_PROGRESS=1`` (a progress
  thread per rank that moves bytes while the rank computes).
- probe: one ring step's exchange alone. Each rank fills its receive buffers with
  NaN, posts Irecv/Isend of its K, V block, runs one step's compute (the ring's own
  ``forward_step``), then *looks* at the receive buffers (the fraction of elements
  no longer NaN = the share of the bytes that arrived during the compute; MPI
  promises nothing about a receive buffer before the wait, so this is an
  observation only), then waits. Also the same exchange with no compute between
  post and wait (its wait = the transfer time). Both MPI modes.
- memory: peak bytes of one forward on each rank, by tracemalloc (NumPy reports its
  allocations to it; the inputs exist before it starts), for several N and
  P = 1, 2, 4; with P = 1 also one-process ``attention_forward``. After a warm-up
  call (first calls allocate a few kB of Python objects once), measured twice; the
  NumPy arrays are the same every time, the two measurements differ only by a few
  bytes of Python objects (the lesson checks they agree within 1 KiB).
"""

import argparse
import datetime
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "ring_timeline.json"
BLAS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MODES = {"default": {}, "async_progress": {"MPIR_CVAR_ASYNC_PROGRESS": "1"}}
FULL = {"seq_len": 4096, "heads": 4, "head_dim": 32, "n_ranks": 4, "repeats": 3}
QUICK = {"seq_len": 64, "heads": 2, "head_dim": 8, "n_ranks": 2, "repeats": 1}
MEMORY = {"sizes": [1024, 2048, 4096, 8192], "dense_max": 4096, "ranks": [1, 2, 4]}
MEMORY_QUICK = {"sizes": [64, 128], "dense_max": 128, "ranks": [1, 2]}
LAYOUT = "zigzag"


# ---------------------------------------------------------------- worker side


def _inputs(seq_len, heads, head_dim, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (1, heads, seq_len, head_dim)  # (B, H, N, d)
    return [rng.standard_normal(shape) for _ in range(3)]


def _shards(comm, arrays, seq_len):
    import numpy as np

    from attention_np.parallel import layout_positions

    rows = layout_positions(LAYOUT, seq_len, comm.Get_size())[comm.Get_rank()]
    return [np.ascontiguousarray(x[..., rows, :]) for x in arrays]


def task_timeline(comm, cfg):
    """Every rank's event log of a few forward passes; rank 0 checks the result."""
    import numpy as np

    from attention_np import attention_forward
    from attention_np.parallel import (
        layout_positions,
        ring_attention_forward,
        ring_attention_mpi_forward,
        unshard,
    )

    P, N = comm.Get_size(), cfg["seq_len"]
    q, k, v = _inputs(N, cfg["heads"], cfg["head_dim"])
    mine = _shards(comm, (q, k, v), N)
    runs = []
    for _ in range(cfg["repeats"]):
        comm.Barrier()
        start = time.perf_counter()  # the clock every process of this machine shares
        out, cache = ring_attention_mpi_forward(*mine, comm=comm, causal=True)
        logs = comm.gather((start, cache.stats), root=0)
        if comm.Get_rank() == 0:
            runs.append(_run_record(logs, mine[1].nbytes + mine[2].nbytes, P))
    outs = comm.gather(out, root=0)
    if comm.Get_rank() != 0:
        return None
    full = unshard(outs, layout_positions(LAYOUT, N, P))
    ref, _ = attention_forward(q, k, v, causal=True)
    sim, _ = ring_attention_forward(q, k, v, n_ranks=P, causal=True, layout=LAYOUT)
    return {
        "runs": runs,
        "max_abs_error_vs_one_process": float(np.abs(full - ref).max()),
        "bit_identical_to_simulation": bool(np.array_equal(full, sim)),
    }


def _run_record(logs, block_bytes, P):
    """Per rank and step: block held, pairs, bytes sent, [start, end] of each phase
    (seconds after the earliest rank left the barrier)."""
    zero = min(start for start, _ in logs)
    ranks = []
    for r, (_, stats) in enumerate(logs):
        steps = []
        for t in range(P):
            step = {"step": t, "block": (r - t) % P, "pairs_per_head": stats.pairs[t]}
            step["bytes_sent"] = block_bytes if t < P - 1 else 0
            for e in stats.events:
                if e.step == t:
                    step[e.phase] = [round(e.start - zero, 6), round(e.end - zero, 6)]
            steps.append(step)
        left = round(logs[r][0] - zero, 6)  # when this rank left the barrier
        ranks.append({"rank": r, "left_barrier": left, "steps": steps})
    return {"ranks": ranks}


def task_probe(comm, cfg):
    """Did one step's K, V arrive while the rank computed? (see the module doc)"""
    import numpy as np
    from mpi4py import MPI

    from attention_np.parallel.ring_step import (
        empty_partial,
        forward_step,
        make_plan,
        step_pairs,
    )

    P, r = comm.Get_size(), comm.Get_rank()
    q, k, v = _shards(
        comm, _inputs(cfg["seq_len"], cfg["heads"], cfg["head_dim"]), cfg["seq_len"]
    )
    plan = make_plan(LAYOUT, cfg["seq_len"], P, causal=True)
    work = plan.step(r, 1)  # the tiles of a step after the first (half a block)
    rows = []
    for compute in (True, False) * cfg["repeats"]:
        recv = [np.full_like(k, np.nan), np.full_like(v, np.nan)]
        comm.Barrier()
        t0 = time.perf_counter()
        reqs = []
        for i, (a, b) in enumerate(zip((k, v), recv, strict=True)):
            reqs.append(comm.Irecv(b, source=(r - 1) % P, tag=i))
            reqs.append(comm.Isend(a, dest=(r + 1) % P, tag=i))
        t1 = time.perf_counter()
        if compute:
            forward_step(q, k, v, None, empty_partial(q, k, v), work, plan)
        t2 = time.perf_counter()
        arrived = sum(np.count_nonzero(~np.isnan(b)) for b in recv) / (k.size + v.size)
        t3 = time.perf_counter()
        MPI.Request.Waitall(reqs)
        t4 = time.perf_counter()
        rows.append(
            {
                "compute": compute,
                "post_s": round(t1 - t0, 6),
                "compute_s": round(t2 - t1, 6),
                "arrived_before_wait": arrived,
                "wait_s": round(t4 - t3, 6),
                "pairs_per_head": step_pairs(plan, work) if compute else 0,
            }
        )
    gathered = comm.gather(rows, root=0)
    return None if r else {"bytes_per_step": k.nbytes + v.nbytes, "ranks": gathered}


def task_memory(comm, cfg):
    """Peak bytes of one forward on each rank (tracemalloc), twice, for each N."""
    from attention_np import attention_forward
    from attention_np.efficient import peak_bytes
    from attention_np.parallel import ring_attention_mpi_forward

    P, out = comm.Get_size(), []
    for N in cfg["sizes"]:
        q, k, v = _inputs(N, 1, cfg["head_dim"])
        mine = _shards(comm, (q, k, v), N)
        run = functools.partial(
            ring_attention_mpi_forward, *mine, comm=comm, causal=True
        )
        ring = []
        for _ in range(3):  # a warm-up (first-call allocations), then two measured
            comm.Barrier()
            ring.append(comm.gather(peak_bytes(run), root=0))
        row = {"seq_len": N, "ring_peak_bytes": ring[1:]}
        if P == 1 and N <= cfg["dense_max"]:
            dense = functools.partial(attention_forward, q, k, v, causal=True)
            peaks = [peak_bytes(dense) for _ in range(3)]
            row["one_process_attention_peak_bytes"] = peaks[1:]
        out.append(row)
    return None if comm.Get_rank() else out


def worker(args):
    from mpi4py import MPI

    cfg = json.loads(args.config)
    task = {"timeline": task_timeline, "probe": task_probe, "memory": task_memory}
    result = task[args.worker](MPI.COMM_WORLD, cfg)
    if MPI.COMM_WORLD.Get_rank() == 0:
        Path(args.out).write_text(json.dumps(result))


# ---------------------------------------------------------------- driver side


def find_mpiexec():
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return shutil.which("mpiexec", path=search)


def launch(mpiexec, n_ranks, task, cfg, extra_env):
    """Run one worker task under mpiexec; rank 0's result and the load around it."""
    env = {**os.environ, **dict.fromkeys(BLAS, "1"), **extra_env}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            mpiexec,
            "-n",
            str(n_ranks),
            sys.executable,
            str(Path(__file__)),
            "--worker",
            task,
            "--config",
            json.dumps(cfg),
            "--out",
            str(out),
        ]
        before = os.getloadavg()[0]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{task} failed:\n{done.stdout}\n{done.stderr}")
        after = os.getloadavg()[0]
        result = json.loads(out.read_text())
    return result, {"before": round(before, 2), "after": round(after, 2)}


def describe_machine():
    import mpi4py
    import numpy as np
    from mpi4py import MPI

    cpu = platform.processor() or platform.machine()
    with_cpu = Path("/proc/cpuinfo")
    if with_cpu.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in with_cpu.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "cores_usable": usable,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mpi4py": mpi4py.__version__,
        "mpi_library": MPI.Get_library_version().splitlines()[0].strip(),
        "blas_threads_per_rank": 1,
        "transport": "one machine: MPICH shared memory (no network)",
    }


def dumps(result):
    """JSON with one line per list of numbers (an interval, a list of peaks)."""
    text = json.dumps(result, indent=1)
    flat = lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
    return re.sub(r"\[\s*([-+0-9.e,\s]+?)\s*\]", flat, text) + "\n"


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--out", default=str(RESULT), help="JSON file to write")
    p.add_argument(
        "--worker", choices=("timeline", "probe", "memory"), help=argparse.SUPPRESS
    )
    p.add_argument("--config", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.worker:
        return worker(args)
    mpiexec = find_mpiexec()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        mpiexec = None
    if mpiexec is None:
        print(
            "error: needs mpi4py and mpiexec: pip install mpi4py mpich", file=sys.stderr
        )
        return 2
    cfg, mem = (QUICK, MEMORY_QUICK) if args.quick else (FULL, MEMORY)
    result = {
        "about": __doc__.split("\n\n")[0].replace("\n", " "),
        "command": "python benchmarks/ring_timeline_bench.py"
        + (" --quick" if args.quick else ""),
        "date": datetime.date.today().isoformat(),
        "machine": describe_machine(),
        "config": {
            **cfg,
            "layout": LAYOUT,
            "causal": True,
            "dtype": "float64",
            "batch": 1,
        },
        "modes": {name: {"env": env} for name, env in MODES.items()},
    }
    for name, env in MODES.items():
        for task in ("timeline", "probe"):
            print(f"{task}, {name} ...", flush=True)
            data, load = launch(mpiexec, cfg["n_ranks"], task, cfg, env)
            result["modes"][name][task] = {**data, "load_1min": load}
    mem_cfg = {**mem, "head_dim": 64, "heads": 1}
    result["memory"] = {
        "config": {
            **mem_cfg,
            "layout": LAYOUT,
            "causal": True,
            "dtype": "float64",
            "batch": 1,
        },
        "ranks": {},
    }
    for P in mem["ranks"]:
        print(f"memory, {P} rank(s) ...", flush=True)
        data, load = launch(mpiexec, P, "memory", mem_cfg, {})
        result["memory"]["ranks"][str(P)] = {"rows": data, "load_1min": load}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

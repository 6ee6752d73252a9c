"""Attention against its matrix-product floor and PyTorch SDPA, on 1, 2 and all cores.

    python benchmarks/attention_bench.py [--sizes 256 512 1024 2048] [--repeats 7]
                                         [--cores 1 2 all] [--quick] [--no-torch]

B=1, H=8, d=64, float32 and float64, full and causal (``causal=True``), N in
--sizes, for each core count c (workers=c; "all" is validate.default_workers()):

- ours: attention_forward and forward + backward;
- floor: just the matrix products the computation needs (forward q k^T and P v;
  backward P^T dO, dO v^T, dS k, dS^T q) on arrays of the same shapes: the faster of
  whole arrays on c BLAS threads and one head per thread on c threads;
- torch: torch SDPA on c threads (when torch is importable); tiled: the forward of
  flash_attention_forward with its default tiles;
- where the time goes: attention_breakdown.py replays ours step by step (matmuls,
  exp, reductions, masking, element-wise, copies, other), as tables and the stacked
  bars of <out-dir>/bench_breakdown.png (float32);
- the targets of issue 20 (float32, the largest c), each with ok or MISSED.

Medians of --repeats, all from this one run. Printed with them: the 1-minute load
average before and after (this run's own threads count in the second one), and the
cores other processes kept busy during the run (Linux: /proc/stat minus this
process's CPU time); on a busy machine the numbers mean little.
"""

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attention_breakdown as bd  # noqa: E402
import bench_report as report  # noqa: E402

from attention_np import attention_backward, attention_forward, threads  # noqa: E402
from attention_np.efficient import flash_attention_forward  # noqa: E402
from attention_np.validate import default_workers  # noqa: E402

B, H, D = 1, 8, 64
BLAS = []  # a threadpoolctl controller, made on first use


def median_time(fn, repeats):
    fn()  # warm-up: first-touch page faults, thread start-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def floor_products(q, k, v, dout, workers):
    """(forward, forward + backward) of the products alone, per head on threads."""

    def forward(h):
        s = q[h] @ k[h].T  # (N, M)
        return s, s @ v[h]

    def backward(h):
        s, _ = forward(h)
        s.T @ dout[h]  # dv
        dp = dout[h] @ v[h].T  # (N, M)
        dp @ k[h]  # dq
        dp.T @ q[h]  # dk

    lead = q.shape[:-2]
    return (
        lambda: threads.run_slices(lead, forward, workers),
        lambda: threads.run_slices(lead, backward, workers),
    )


def floor_whole(q, k, v, dout):
    """(forward, forward + backward) of the products on whole arrays (BLAS threads)."""
    kt, vt = np.swapaxes(k, -1, -2), np.swapaxes(v, -1, -2)

    def forward():
        s = q @ kt  # (B, H, N, M)
        return s, s @ v

    def both():
        s = q @ kt
        s @ v
        np.swapaxes(s, -1, -2) @ dout
        dp = dout @ vt
        dp @ k
        np.swapaxes(dp, -1, -2) @ q

    return forward, both


def blas_on(cores):
    """Context: BLAS on exactly ``cores`` threads (threadpoolctl; else unchanged)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    if not BLAS:
        BLAS.append(ThreadpoolController())  # scans the loaded libraries once
    return BLAS[0].limit(limits=cores, user_api="blas")


def ours(q, k, v, dout, causal, workers):
    def forward():
        return attention_forward(q, k, v, causal=causal, workers=workers)

    def both():
        _, cache = attention_forward(q, k, v, causal=causal, workers=workers)
        attention_backward(dout, cache)

    return forward, both


def torch_sdpa(torch, q, k, v, dout, causal):
    tq, tk, tv, tdo = (torch.from_numpy(a.copy()) for a in (q, k, v, dout))
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(tq, tk, tv, is_causal=causal)

    def both():
        a, b, c = (t.detach().requires_grad_() for t in (tq, tk, tv))
        sdpa(a, b, c, is_causal=causal).backward(tdo)

    return forward, both


def measure_floor(arrays, workers, repeats):
    """{"fwd_floor", "fb_floor"}: the faster of the two ways to run the products."""
    per_head = [median_time(f, repeats) for f in floor_products(*arrays, workers)]
    with blas_on(workers):
        whole = [median_time(f, repeats) for f in floor_whole(*arrays)]
    return {
        "fwd_floor": min(per_head[0], whole[0]),
        "fb_floor": min(per_head[1], whole[1]),
    }


def measure_row(arrays, causal, workers, args, torch):
    """One table row: ours, tiled, torch and the breakdown for one configuration."""
    q, k, v, _ = arrays
    f, fb = ours(*arrays, causal, workers)
    row = {"fwd": median_time(f, args.repeats), "fb": median_time(fb, args.repeats)}
    tiled = lambda: flash_attention_forward(q, k, v, causal=causal, workers=workers)  # noqa: E731
    row["tiled"] = median_time(tiled, args.repeats)
    if torch is not None:
        torch.set_num_threads(workers)
        f, fb = torch_sdpa(torch, *arrays, causal)
        row["fwd_torch"] = median_time(f, args.repeats)
        row["fb_torch"] = median_time(fb, args.repeats)
    row["parts_fwd"], row["parts_fb"] = bd.breakdown(
        *arrays, causal, workers, args.repeats
    )
    return row


def run(args, torch):
    rng = np.random.default_rng(0)
    rows = []
    for workers in args.cores:
        for dtype in args.dtypes:
            for N in args.sizes:
                shape = (B, H, N, D)
                arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(4)]
                floor = measure_floor(arrays, workers, args.repeats)
                for causal in (False, True):
                    row = measure_row(arrays, causal, workers, args, torch)
                    key = dict(cores=workers, dtype=np.dtype(dtype).name)
                    rows.append({**key, "causal": causal, "N": N, **floor, **row})
    return rows


def busy_seconds():
    """(CPU seconds the whole machine was busy, CPU seconds of this process), Linux."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:]]
    except OSError:
        return None
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cores", nargs="+", default=["1", "2", "all"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out-dir", default=None, help="figures folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = [64, 128], 1
    cores = [
        default_workers() if c == "all" else _positive(parser, c) for c in args.cores
    ]
    args.cores = sorted(set(cores))
    return args


def _positive(parser, text):
    if not text.isdigit() or int(text) < 1:
        parser.error(f"--cores takes positive ints or 'all', got {text!r}")
    return int(text)


def watched(fn):
    """fn() and (1-min load before, after, seconds, cores other processes used)."""
    load_before, busy_before = os.getloadavg()[0], busy_seconds()
    t0 = time.perf_counter()
    result = fn()
    seconds, busy_after = time.perf_counter() - t0, busy_seconds()
    others = None
    if busy_before and busy_after:
        machine = busy_after[0] - busy_before[0]
        own = busy_after[1] - busy_before[1]
        others = max(machine - own, 0.0) / seconds
    return result, (load_before, os.getloadavg()[0], seconds, others)


def main(argv=None):
    args = parse(argv)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    rows, load = watched(lambda: run(args, torch))
    setup = (
        f"B={B}, H={H}, d={D}; medians of {args.repeats} repeats; times in ms; numpy "
        f"{np.__version__}; {platform.machine()}, {os.cpu_count()} cores "
        f"(all = {default_workers()}); torch {torch.__version__ if torch else 'absent'}"
    )
    report.print_all(rows, setup, load, args.quick)
    report.plot_breakdown(rows, args.out_dir)
    return rows


if __name__ == "__main__":
    main()

"""Time and peak memory against N: naive, tiled (flash), linear and sliding-window.

    python benchmarks/efficiency_bench.py            # full run (a few minutes)
    python benchmarks/efficiency_bench.py --quick    # smoke test, seconds

Forward passes only. Time: B=1, H=8, d=64 float32, the best of a few runs (other
programs only ever add time), on --threads cores (default: validate.default_workers(),
which is also the default ``workers`` of every method here; torch and BLAS get the
same number of threads). Peak
memory: B=H=1, measured with tracemalloc (NumPy reports its allocations to it; the
inputs are allocated before it starts). Naive attention is skipped where its (N, N)
arrays would pass --mem-cap; its memory there is extrapolated from the measured
sizes (N^2 fit) and marked "~". Every ratio printed comes from this one run.
torch SDPA is a reference line when torch is importable. Figures:
<out-dir>/bench_time_vs_n.png and bench_memory_vs_n.png (log-log, fitted slopes in
the legend; default out-dir: the repository's figures/).
"""

import argparse
import contextlib
import os
import platform
import sys
import time

import numpy as np

from attention_np import attention_forward
from attention_np.efficient import (
    flash_attention_forward,
    linear_attention_forward,
    peak_bytes,
    sliding_window_attention_forward,
)
from attention_np.validate import default_workers

MiB = 2**20
MARKERS = "osD^v<>PX*"  # one shape per series: lines that coincide stay visible


def methods(window, block_q, block_k, workers=None, torch=None):
    """name -> (function(q, k, v) running one forward, bytes of (N, N) it needs).

    Every method runs on ``workers`` threads (None: the default of the package);
    "tiled, 1 worker" is the serial loop on one core.
    """
    quad = lambda q: q.shape[0] * q.shape[1] * q.shape[2] ** 2 * q.itemsize
    none = lambda q: 0
    tiled = dict(block_q=block_q, block_k=block_k)

    def run(fn, **options):
        return lambda q, k, v: fn(q, k, v, **{"workers": workers, **options})

    table = {
        "naive": (run(attention_forward, causal=False), quad),
        "naive causal": (run(attention_forward, causal=True), quad),
        "tiled": (run(flash_attention_forward, causal=False, **tiled), none),
        "tiled causal": (run(flash_attention_forward, causal=True, **tiled), none),
        "tiled, 1 worker": (
            run(flash_attention_forward, causal=False, **tiled, workers=1),
            none,
        ),
        "linear": (run(linear_attention_forward, causal=False), none),
        "linear causal": (
            run(linear_attention_forward, causal=True, form="chunkwise", chunk_size=64),
            none,
        ),
        f"sliding w={window}": (
            run(sliding_window_attention_forward, window=window, causal=True),
            none,
        ),
    }
    if torch is not None:
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def run_torch(causal):
            def run(q, k, v):
                with torch.no_grad():
                    sdpa(*map(torch.from_numpy, (q, k, v)), is_causal=causal)

            return run

        table["torch SDPA"] = (run_torch(False), none)
        table["torch SDPA causal"] = (run_torch(True), none)
    return table


def best_time(fn, max_repeats, budget=1.0):
    """Best wall time of a few runs after a warm-up; as many as ~budget s allows."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    repeats = int(min(max_repeats, max(1, budget // max(first, 1e-9))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def inputs(rng, heads, N, d=64):
    return [rng.standard_normal((1, heads, N, d)).astype(np.float32) for _ in "qkv"]


def measure(table, sizes, heads, cap, run):
    """{name: {N: value}} of ``run(fn)`` for every method and size under the cap."""
    rng = np.random.default_rng(0)
    results = {name: {} for name in table}
    for N in sizes:
        q, k, v = inputs(rng, heads, N)
        for name, (fn, need) in table.items():
            if need(q) <= cap:
                results[name][N] = run(lambda fn=fn, a=(q, k, v): fn(*a))
    return results


def slope(points, n_min):
    """Fitted exponent of value ~ N^slope over the points with N >= n_min."""
    xs = [n for n in sorted(points) if n >= n_min] or sorted(points)
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs), np.log([points[n] for n in xs]), 1)[0])


def extrapolate_quadratic(points, sizes):
    """Fill missing sizes with a * N^2 fitted to the largest measured size (marked)."""
    if not points:
        return {}
    n0 = max(points)
    return {N: points[N] if N in points else points[n0] * (N / n0) ** 2 for N in sizes}


def crossover(fast, slow):
    """Smallest N where ``fast`` beats ``slow``, interpolated log-log; None if never."""
    common = sorted(set(fast) & set(slow))
    for a, b in zip(common, common[1:], strict=False):
        ra, rb = np.log(fast[a] / slow[a]), np.log(fast[b] / slow[b])
        if ra >= 0 > rb:
            x = np.log(a) + ra / (ra - rb) * (np.log(b) - np.log(a))
            return float(np.exp(x))
    if common and fast[common[0]] < slow[common[0]]:
        return float(common[0])
    return None


def print_table(title, results, sizes, unit, scale, marked=()):
    names = list(results)
    print(f"\n{title}\n")
    print("| N | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for N in sizes:
        cells = []
        for name in names:
            value = results[name].get(N)
            mark = "~" if (name, N) in marked else ""
            cells.append("-" if value is None else f"{mark}{value * scale:.1f}")
        print(f"| {N} | " + " | ".join(cells) + " |")
    print(f"({unit}; '-' = not run, '~' = extrapolated, not measured)")


def ratio_lines(times, memory, n_ref, n_lo, n_hi, mem_n, marked=()):
    """(text, value, target, ok) lines for the brief's targets, from this run."""
    return (
        _speedups(times, n_ref)
        + _growth(times, n_lo, n_hi)
        + _crossovers(times)
        + _memory_lines(memory, mem_n, marked)
    )


def _speedups(times, n_ref):
    """naive / tiled and tiled / torch SDPA at N = n_ref, plain then causal."""
    lines = []
    for kind, goal in (("", 1.2), (" causal", 2.5)):
        naive, tiled, sdpa = (
            times.get(name + kind, {}).get(n_ref)
            for name in ("naive", "tiled", "torch SDPA")
        )
        if naive and tiled:
            text = f"naive{kind} / tiled{kind} at N={n_ref}"
            lines.append((text, naive / tiled, f">= {goal}x", naive / tiled >= goal))
        if tiled and sdpa:
            text = f"tiled{kind} / torch SDPA{kind} at N={n_ref}"
            lines.append((text, tiled / sdpa, "<= 3x", tiled / sdpa <= 3))
    return lines


def _growth(times, n_lo, n_hi):
    """time(n_hi) / time(n_lo) of the linear and sliding-window methods."""
    lines = []
    for name, points in times.items():
        lo, hi = points.get(n_lo), points.get(n_hi)
        if name.startswith(("linear", "sliding")) and lo and hi:
            text = f"{name}: time({n_hi}) / time({n_lo})"
            lines.append((text, hi / lo, "<= 4.6", hi / lo <= 4.6))
    return lines


def _crossovers(times):
    """From which N linear attention beats naive attention (plain and causal)."""
    lines = []
    for fast, slow in (("linear", "naive"), ("linear causal", "naive causal")):
        if fast in times and slow in times:
            n = crossover(times[fast], times[slow])
            text = f"crossover: {fast} beats {slow} from N ~"
            lines.append((text, n if n is not None else float("nan"), "report", True))
    return lines


def _memory_lines(memory, mem_n, marked):
    """Peak memory of tiled (target < 8 MiB) and naive (reported) at N = mem_n."""
    lines = []
    if memory.get("tiled", {}).get(mem_n):
        m = memory["tiled"][mem_n] / MiB
        text = f"tiled peak memory at N={mem_n} (B=H=1) MiB"
        lines.append((text, m, "< 8 MiB", m < 8))
    if memory.get("naive", {}).get(mem_n):
        how = "extrapolated" if ("naive", mem_n) in marked else "measured"
        text = f"naive peak memory at N={mem_n} (B=H=1, {how}) MiB"
        lines.append((text, memory["naive"][mem_n] / MiB, "report", True))
    return lines


def print_ratios(lines, quick=False):
    print("\nRatios and targets (all from this run)\n")
    if quick:
        print("(--quick: sizes far below the targets' N; a smoke test, not a verdict)")
    for text, value, target, ok in lines:
        mark = "" if target == "report" else ("  ok" if ok else "  MISSED")
        print(f"- {text}: {value:.2f} (target {target}){mark}")


def plot(results, ylabel, title, name, directory, n_fit, marked=()):
    import matplotlib.pyplot as plt

    from attention_np.viz import save_figure

    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    drawn = {}
    for i, (label, points) in enumerate(results.items()):
        if points:
            twin = _coincides_with(points, drawn)
            _plot_series(ax, label, points, i, n_fit, marked, twin)
            drawn[label] = points
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = sorted({n for points in results.values() for n in points})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("sequence length N")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    save_figure(fig, name, directory)
    plt.close(fig)


def _coincides_with(points, drawn, rtol=0.02):
    """An earlier series equal to ``points`` within rtol at every N (label), or None."""
    for label, other in drawn.items():
        if other.keys() == points.keys() and all(
            abs(points[n] - other[n]) <= rtol * abs(other[n]) for n in points
        ):
            return label
    return None


def _plot_series(ax, label, points, i, n_fit, marked, twin=None):
    """Measured points as a line; extrapolated ones (marked) dotted, from the last.

    Hollow markers of a different shape per series, and a legend note when the line
    lies on an earlier one (``twin``), so that coinciding lines are not lost.
    """
    xs = sorted(points)
    real = [n for n in xs if (label, n) not in marked]
    color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
    note = f", same line as {twin}" if twin else ""
    ax.plot(
        real,
        [points[n] for n in real],
        "--" if "causal" in label else "-",
        marker=marker,
        markerfacecolor="none",
        color=color,
        label=f"{label} (slope {slope(points, n_fit):.2f}{note})",
    )
    guess = [real[-1]] + [n for n in xs if (label, n) in marked]
    if len(guess) > 1:
        ax.plot(guess, [points[n] for n in guess], ":", marker="x", color=color)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--mem-sizes", type=int, nargs="+")
    parser.add_argument("--threads", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--block-q", type=int, default=256)
    parser.add_argument("--block-k", type=int, default=1024)
    parser.add_argument("--mem-cap", type=float, default=1.0, help="GiB per (N, N)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out-dir", default=None, help="figures folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [128, 256, 512]
        args.mem_sizes = args.mem_sizes or [256, 512, 1024]
        args.repeats, args.window = 1, min(args.window, 32)
    args.sizes = args.sizes or [256, 512, 1024, 2048, 4096, 8192, 16384]
    args.mem_sizes = args.mem_sizes or [1024, 2048, 4096, 8192, 16384]
    return args


def main(argv=None):
    args = parse(argv)
    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    with _blas_threads(args.threads):
        return _run(args, torch)


def _blas_threads(n):
    """At most n BLAS threads while measuring (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables set at start-up still apply
        return contextlib.nullcontext()
    return threadpool_limits(n, "blas")


def _run(args, torch):
    table = methods(args.window, args.block_q, args.block_k, args.threads, torch)
    _print_setup(args, torch)
    times, memory, marked = _measure_all(args, table)
    print_table(
        "Forward time, B=1 H=8 d=64 float32 (best of repeats)",
        times,
        args.sizes,
        "ms",
        1e3,
    )
    print_table(
        "Peak memory, B=H=1 d=64 float32 (tracemalloc)",
        memory,
        args.mem_sizes,
        "MiB",
        1 / MiB,
        marked,
    )
    n_ref, n_lo, n_hi = _reference_sizes(args.sizes)
    print_ratios(
        ratio_lines(times, memory, n_ref, n_lo, n_hi, max(args.mem_sizes), marked),
        args.quick,
    )
    _plot_both(args, times, memory, marked)
    return times, memory


def _print_setup(args, torch):
    print(
        f"every method runs on workers={args.threads} threads (torch on as many); "
        "'tiled, 1 worker' is the serial loop on one core"
    )
    print(
        f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__ if torch else 'absent'}; tiles {args.block_q}x"
        f"{args.block_k}"
    )


def _measure_all(args, table):
    """times {name: {N: s}}, memory {name: {N: bytes}} and the extrapolated cells."""
    cap = args.mem_cap * 2**30
    times = measure(table, args.sizes, 8, cap, lambda f: best_time(f, args.repeats))
    mem_table = {n: f for n, f in table.items() if not n.startswith("torch")}
    memory = measure(mem_table, args.mem_sizes, 1, cap, peak_bytes)
    marked = set()
    for name in ("naive", "naive causal"):
        full = extrapolate_quadratic(memory[name], args.mem_sizes)
        marked |= {(name, N) for N in full if N not in memory[name]}
        memory[name] = full
    return times, memory, marked


def _reference_sizes(sizes):
    """n_ref for the speed-ups, (n_lo, n_hi) for the growth ratios."""
    n_ref = 2048 if 2048 in sizes else sorted(sizes)[len(sizes) // 2]
    if {4096, 16384} <= set(sizes):
        return n_ref, 4096, 16384
    return n_ref, sizes[-2], sizes[-1]


def _plot_both(args, times, memory, marked):
    n_fit = 1024 if max(args.sizes) >= 4096 else min(args.sizes)
    plot(
        times,
        "forward time (s)",
        "Attention forward time, B=1 H=8 d=64 float32",
        "bench_time_vs_n",
        args.out_dir,
        n_fit,
    )
    plot(
        {k: {n: b / MiB for n, b in v.items()} for k, v in memory.items()},
        "peak memory (MiB)",
        "Peak memory of one forward, B=H=1 d=64 float32",
        "bench_memory_vs_n",
        args.out_dir,
        n_fit,
        marked,
    )


if __name__ == "__main__":
    main()
    sys.exit(0)

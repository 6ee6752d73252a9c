"""Time against N of the recurrent, parallel and chunkwise forms of the recurrences.

    python benchmarks/recurrence_bench.py            # full run (a few minutes)
    python benchmarks/recurrence_bench.py --quick    # smoke test, seconds

Forward passes (--backward: forward + backward). B=1, H=2 heads (--heads) of width
d_k = d_v = 64 (--head-dim), float32, chunks of 64 tokens (--chunk-size), one BLAS
thread (--threads), each form with its default ``workers=None``: the parallel and
chunkwise forms run the (batch, head) slices on threads over all cores, the
recurrent form keeps its heads in one task (a token step is a dozen tiny NumPy
calls, which threads would only multiply). In each of --rounds sweeps over N, a
point gets at least --repeats calls, and as many as fill half a second for a fast
form; at each N the calls of all models and forms are interleaved (the machine may
be shared, and other programs only ever add time). Each time is the best call over
all rounds; a slow spell of a shared machine can last a minute, and rounds minutes
apart let every point be measured outside it. glibc's malloc is asked to keep freed
memory (``keep_freed_memory``; --default-malloc leaves it alone). Slopes are
least-squares fits of log(time) against log(N) over N >= --fit-from; a crossover is
the smallest N from which one form stays faster than another. The target lines
(chunkwise >= 10x faster than recurrent at N = 4096; chunkwise time(4N)/time(N) <=
4.6 from N = 4096) use the best times of this run, and list each round's own ratio.
Figure: <out-dir>/bench_recurrence_time_vs_n.png (default out-dir: figures/).
JSON: --json (default benchmarks/results/recurrences.json, committed): the times,
slopes, crossovers and target ratios with a description of the machine and its load
average, so that lesson 20 can show them without timing anything itself.
"""

import argparse
import ctypes
import json
import os
import platform
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # BLAS reads its thread count once, at import
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int, default=1)
    _threads = str(_pre.parse_known_args()[0].threads)
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

from attention_np import recurrences as R  # noqa: E402
from attention_np.validate import default_workers  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "recurrences.json"
FORMS = ("recurrent", "parallel", "chunkwise")
MODELS = {  # name: (forward, backward, gate names)
    "linear_attn": (R.linear_attn_forward, R.linear_attn_backward, ()),
    "retention": (R.retention_forward, R.retention_backward, ()),
    "gla": (R.gla_forward, R.gla_backward, ("log_alpha_channels",)),
    "mamba2": (R.mamba2_forward, R.mamba2_backward, ("log_alpha",)),
    "deltanet": (R.deltanet_forward, R.deltanet_backward, ("beta",)),
    "gated_deltanet": (
        R.gated_deltanet_forward,
        R.gated_deltanet_backward,
        ("log_alpha", "beta"),
    ),
}


def inputs(rng, N, heads=2, d=64, dtype=np.float32):
    """q, k (unit), v and every gate, (1, heads, N, ...)."""
    shape = (1, heads, N)
    k = rng.standard_normal(shape + (d,))
    arrays = {
        "q": rng.standard_normal(shape + (d,)),
        "k": k / np.linalg.norm(k, axis=-1, keepdims=True),
        "v": rng.standard_normal(shape + (d,)),
        "log_alpha": -rng.uniform(0.01, 0.5, shape),
        "log_alpha_channels": -rng.uniform(0.01, 0.5, shape + (d,)),
        "beta": rng.uniform(0.1, 0.9, shape),
    }
    return {n: a.astype(dtype) for n, a in arrays.items()}


def runner(model, form, x, chunk_size, backward):
    """A function running one forward (and backward) of ``model`` in ``form``."""
    forward, back, gates = MODELS[model]
    arrays = [x[n] for n in ("q", "k", "v") + gates]

    def run():
        out, cache = forward(*arrays, form=form, chunk_size=chunk_size)
        if backward:
            back(np.ones_like(out), cache)

    return run


def best_times(fns, repeats, min_seconds=0.5, max_repeats=100):
    """{key: fastest call of fns[key]}, in seconds, with the calls interleaved.

    Round after round, every function that still needs calls runs once: at least
    ``repeats`` calls each, and a fast one until its calls add up to min_seconds
    (at most max_repeats). Spreading each function's calls over the whole
    measurement means a slow spell of a shared machine (another program on one of
    the cores, for a few seconds) slows some calls of every function rather than
    all calls of one; the best call is the one the spell did not touch.
    """
    times = {key: [] for key in fns}

    def wanted(ts):
        return len(ts) < repeats or (sum(ts) < min_seconds and len(ts) < max_repeats)

    while any(wanted(ts) for ts in times.values()):
        for key, fn in fns.items():
            if wanted(times[key]):
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
    return {key: float(min(ts)) for key, ts in times.items()}


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory instead of returning it to the
    system (mallopt M_TRIM_THRESHOLD = 1 GiB, M_MMAP_THRESHOLD = 32 MiB).

    The chunkwise forms allocate temporaries of about 1 MB per call; by default
    glibc maps such blocks fresh and unmaps them when freed, so every call pays a
    page fault per 4 KB page of each temporary (the delta rule's chunkwise form
    spends about a third of its time there on this machine). Returns True when the
    setting was applied (Linux with glibc), False elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(
            libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        )
    except (OSError, AttributeError):
        return False


def measure(models, sizes, args):
    """{model: {form: {N: seconds}}} and the same for each round; the parallel form
    only up to --parallel-max. At each N every model's forms are timed together
    (``best_times``), and the whole sweep is repeated --rounds times, one round
    after the other: a point keeps its best call over all rounds. A slow spell of
    a shared machine can last a minute; rounds minutes apart give every point a
    chance to be measured outside it (each round's own numbers are kept too)."""
    rng = np.random.default_rng(0)
    inputs_at = {N: inputs(rng, N, heads=args.heads, d=args.head_dim) for N in sizes}
    results = {m: {f: {} for f in FORMS} for m in models}
    by_round = []
    for r in range(args.rounds):
        this = {m: {f: {} for f in FORMS} for m in models}
        for N in sizes:
            runs = {
                (model, form): runner(
                    model, form, inputs_at[N], args.chunk_size, args.backward
                )
                for model in models
                for form in FORMS
                if form != "parallel" or N <= args.parallel_max
            }
            times = best_times(runs, args.repeats, args.min_seconds)
            for (model, form), t in times.items():
                this[model][form][N] = t
                best = results[model][form].get(N, t)
                results[model][form][N] = min(best, t)
            print(f"  round {r + 1}/{args.rounds}: N = {N} done", file=sys.stderr,
                  flush=True)  # fmt: skip
        by_round.append(this)
    return results, by_round


def slope(points, n_min):
    """Least-squares exponent p of time ~ N^p over the points with N >= n_min."""
    ns = sorted(n for n in points if n >= n_min)
    if len(ns) < 2:
        return float("nan")
    return float(np.polyfit(np.log(ns), np.log([points[n] for n in ns]), 1)[0])


def crossover(fast, slow):
    """Smallest measured N from which ``fast`` is faster at every larger shared N."""
    shared = sorted(set(fast) & set(slow))
    for i, n in enumerate(shared):
        if all(fast[m] < slow[m] for m in shared[i:]):
            return n
    return None


def print_table(model, times, sizes):
    print(f"\n{model}: forward{' + backward' if ARGS.backward else ''}, ms")
    print(f"{'N':>7}" + "".join(f"{f:>12}" for f in FORMS))
    for N in sizes:
        cells = [times[f].get(N) for f in FORMS]
        print(
            f"{N:>7}"
            + "".join(f"{c * 1e3:12.2f}" if c else f"{'-':>12}" for c in cells)
        )
    fits = "  ".join(f"{f} {slope(times[f], ARGS.fit_from):.2f}" for f in FORMS)
    print(f"  slopes (N >= {ARGS.fit_from}): {fits}")
    for fast, slow in (("chunkwise", "recurrent"), ("chunkwise", "parallel"),
                       ("parallel", "recurrent")):  # fmt: skip
        n = crossover(times[fast], times[slow])
        where = f"from N = {n}" if n else "at no measured N"
        print(f"  {fast} faster than {slow} {where}")


def target_ratios(times, n_ref=4096):
    """(recurrent / chunkwise at n_ref, chunkwise time(4 n_ref) / time(n_ref));
    None where a size was not measured."""
    rec, chunk = times["recurrent"], times["chunkwise"]
    speedup = rec[n_ref] / chunk[n_ref] if n_ref in rec and n_ref in chunk else None
    growth = None
    if n_ref in chunk and 4 * n_ref in chunk:
        growth = chunk[4 * n_ref] / chunk[n_ref]
    return speedup, growth


def target_lines(results, n_ref=4096, by_round=()):
    """The acceptance ratios, from this run's best times (and each round's)."""
    lines = []
    for model, times in results.items():
        speedup, growth = target_ratios(times, n_ref)
        rounds = [target_ratios(r[model], n_ref) for r in by_round]
        if speedup is not None:
            ok = "ok" if speedup >= 10 else "MISSED"
            each = _each_round([s for s, _ in rounds], "{:.1f}")
            lines.append(f"{model}: recurrent / chunkwise at N = {n_ref}: "
                         f"{speedup:.1f}x{each} (target >= 10: {ok})")  # fmt: skip
        if growth is not None:
            ok = "ok" if growth <= 4.6 else "MISSED"
            each = _each_round([g for _, g in rounds], "{:.2f}")
            lines.append(f"{model}: chunkwise time({4 * n_ref}) / time({n_ref}) = "
                         f"{growth:.2f}{each} (target <= 4.6: {ok})")  # fmt: skip
    return lines


def _each_round(values, fmt):
    """' (rounds: a, b, c)' for more than one round, else ''."""
    if len(values) < 2 or any(v is None for v in values):
        return ""
    return " (rounds: " + ", ".join(fmt.format(v) for v in values) + ")"


def plot(results, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attention_np.viz import figures_dir, save_figure

    width = 3.6 * len(results)
    fig, axes = plt.subplots(1, len(results), figsize=(width, 3.4), sharey=True,
                             layout="constrained", squeeze=False)  # fmt: skip
    for ax, (model, times) in zip(axes[0], results.items(), strict=True):
        for form, marker in zip(FORMS, "os^", strict=True):
            ns = sorted(times[form])
            p = slope(times[form], ARGS.fit_from)
            ax.loglog(ns, [times[form][n] for n in ns], marker=marker,
                      label=f"{form} (slope {p:.2f})")  # fmt: skip
        ax.set(title=model, xlabel="sequence length N")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("seconds")
    save_figure(fig, "bench_recurrence_time_vs_n", directory=directory)
    return figures_dir(directory) / "bench_recurrence_time_vs_n.png"


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="sweeps, one after the other; each point keeps its "
                        "best call over all of them")  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--parallel-max", type=int, default=16384)
    parser.add_argument("--fit-from", type=int, default=1024)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (see "
                        "keep_freed_memory)")  # fmt: skip
    parser.add_argument("--out-dir", default=None, help="figures folder")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [64, 128, 256]
        args.repeats, args.fit_from, args.rounds = 1, 64, 1
    args.min_seconds = 0.0 if args.quick else 0.5
    args.sizes = sorted(args.sizes or [256, 512, 1024, 2048, 4096, 8192, 16384])
    counts = [args.repeats, args.rounds, args.chunk_size, args.heads, args.head_dim]
    if min(args.sizes + counts) < 1:
        parser.error(
            "sizes, --repeats, --rounds, --chunk-size, --heads, --head-dim must be >= 1"
        )
    return args


def main(argv=None):
    global ARGS
    ARGS = parse(argv)
    models = ARGS.models or list(MODELS)
    ARGS.kept_freed_memory = False if ARGS.default_malloc else keep_freed_memory()
    print(f"recurrence benchmark: B=1, H={ARGS.heads}, d_k=d_v={ARGS.head_dim}, "
          f"float32, chunk "
          f"{ARGS.chunk_size}, {os.environ.get('OPENBLAS_NUM_THREADS', '?')} BLAS "
          f"thread(s), best call of at least "
          f"{ARGS.repeats} in each of {ARGS.rounds} round(s); "
          f"{platform.processor() or platform.machine()}, load "
          f"{os.getloadavg()[0]:.2f}; malloc keeps freed memory: "
          f"{ARGS.kept_freed_memory}")  # fmt: skip
    load_start = os.getloadavg()[0]
    results, by_round = measure(models, ARGS.sizes, ARGS)
    for model in models:
        print_table(model, results[model], ARGS.sizes)
    print()
    for line in target_lines(results, by_round=by_round):
        print(line)
    print(f"(load average at the end: {os.getloadavg()[0]:.2f})")
    print(f"figure: {plot(results, ARGS.out_dir)}")
    save_json(results, by_round, ARGS, load_start)
    print(f"wrote {ARGS.json}")
    return 0


def machine(threads, load_start):
    """What the timings were measured on (they mean nothing without it)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "blas_threads": threads,
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def summary(times, fit_from, rounds=()):
    """Slopes, crossovers and target ratios of one model's times (and the target
    ratios of each round's own times)."""
    speedup, growth = target_ratios(times)
    each = [target_ratios(r) for r in rounds]
    pairs = (("chunkwise", "recurrent"), ("chunkwise", "parallel"),
             ("parallel", "recurrent"))  # fmt: skip
    return {
        "ms": {
            f: {str(n): round(1e3 * t, 3) for n, t in times[f].items()} for f in FORMS
        },
        "slopes": {f: round(slope(times[f], fit_from), 3) for f in FORMS},
        "crossovers": {f"{a}<{b}": crossover(times[a], times[b]) for a, b in pairs},
        "recurrent_over_chunkwise_4096": None if speedup is None else round(speedup, 2),
        "chunkwise_16384_over_4096": None if growth is None else round(growth, 3),
        "by_round": {
            "recurrent_over_chunkwise_4096": [_rounded(s, 2) for s, _ in each],
            "chunkwise_16384_over_4096": [_rounded(g, 3) for _, g in each],
        },
    }


def _rounded(x, digits):
    return None if x is None else round(x, digits)


def save_json(results, by_round, args, load_start):
    """The run's settings, machine, times (ms) and derived numbers, to args.json."""
    report = {
        "benchmark": "recurrent vs parallel vs chunkwise forms of the recurrences",
        "command": "make bench-recurrences (python benchmarks/recurrence_bench.py)",
        "machine": machine(args.threads, load_start),
        "settings": {
            "batch": 1,
            "heads": args.heads,
            "head_dim": args.head_dim,
            "dtype": "float32",
            "chunk_size": args.chunk_size,
            "sizes": args.sizes,
            "parallel_max": args.parallel_max,
            "fit_from": args.fit_from,
            "backward": args.backward,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "statistic": "best call over all rounds",
            "calls": f"at least {args.repeats} per point and round and at least "
            f"{args.min_seconds:g} s of calls, interleaved across the forms and "
            "models at each N; the sweep over N repeated in rounds",
            "malloc_keeps_freed_memory": args.kept_freed_memory,
            "workers": default_workers(),  # what workers=None meant in this run
        },
        "models": {
            m: summary(t, args.fit_from, [r[m] for r in by_round])
            for m, t in results.items()
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

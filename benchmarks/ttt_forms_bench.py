"""Time TTT-Linear's primal and dual forms against the mini-batch size; write JSON.

    python benchmarks/ttt_forms_bench.py                  # full run (about a minute)
    python benchmarks/ttt_forms_bench.py --quick --out /tmp/t.json   # smoke test

The two forms compute the same numbers (lesson 19 checks it); they differ in how.
The primal form builds the weights W_i of every position of a mini-batch, m F^2
numbers, with elementwise products and a cumulative sum; the dual form never builds
them and does the same work as (m, m) and (m, F) matrix products. Forward passes
only, B sequences of N tokens, float64, the best of --repeats runs (other programs
only ever add time), BLAS threads fixed by --threads. The result goes to a JSON file
(default benchmarks/results/ttt_forms.json, committed) with a description of the
machine, so that lesson 19 can plot it without timing anything itself.
"""

import argparse
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

from attention_np.memory import init_ttt_linear_params, ttt_linear_forward  # noqa: E402
from attention_np.validate import cli_int  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ttt_forms.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    positive = cli_int(1)
    parser.add_argument("--threads", type=positive, default=1, help="BLAS threads")
    parser.add_argument("--repeats", type=positive, default=5, help="runs per point")
    parser.add_argument("--batch", type=positive, default=4, help="B sequences")
    parser.add_argument("--tokens", type=positive, default=1024, help="N per sequence")
    parser.add_argument("--widths", type=positive, nargs="+", default=[16, 64])
    parser.add_argument(
        "--mini-batches", type=positive, nargs="+", default=[1, 2, 4, 8, 16, 32, 64]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.tokens, args.widths, args.mini_batches = 1, 64, [8], [1, 16]
    return args


def best_time(fn, args, options, repeats):
    """The fastest of ``repeats`` calls of fn(*args, **options), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **options)
        times.append(time.perf_counter() - start)
    return min(times)


def machine(threads):
    """What the timings were measured on (they mean nothing without it)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "blas_threads": threads,
        "load_average_1min_at_start": None if load is None else round(load[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def run(args):
    rows = []
    for F in args.widths:
        rng = np.random.default_rng(0)
        x_q, x_k, x_v = rng.standard_normal((3, args.batch, args.tokens, F))
        params = init_ttt_linear_params(F, rng=rng, std=0.3)
        eta = np.full((args.batch, args.tokens), 0.1)
        for m in args.mini_batches:
            row = {"width": F, "mini_batch": m}
            for form in ("primal", "dual"):
                inputs, options = (
                    (x_q, x_k, x_v, eta, params),
                    dict(mini_batch=m, form=form),
                )
                seconds = best_time(ttt_linear_forward, inputs, options, args.repeats)
                row[f"{form}_ms"] = round(1e3 * seconds, 3)
            rows.append(row)
            print(
                f"F = {F:3d}, m = {m:3d}: primal {row['primal_ms']:9.2f} ms, "
                f"dual {row['dual_ms']:9.2f} ms",
                flush=True,
            )
    return rows


def main(argv=None):
    args = parse_args(argv)
    report = {
        "benchmark": "TTT-Linear forward, primal vs dual form",
        "command": "make bench-ttt (python benchmarks/ttt_forms_bench.py)",
        "machine": machine(args.threads),
        "settings": {
            "batch": args.batch,
            "tokens": args.tokens,
            "dtype": "float64",
            "repeats": args.repeats,
            "statistic": "best of repeats",
        },
    }
    report["results"] = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

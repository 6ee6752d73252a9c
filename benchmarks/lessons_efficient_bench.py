"""Wall-clock measurements for lessons 13-16, written to committed JSON files.

    python benchmarks/lessons_efficient_bench.py              # all four lessons
    python benchmarks/lessons_efficient_bench.py --lesson 14  # one of them
    make bench-lessons-efficient

The notebooks never time anything (their outputs must not change from one run to
the next); they load ``benchmarks/results/<lesson>.json`` and plot it. Each file
holds the numbers, the settings, the command, a description of the machine and its
load (``os.getloadavg``) before and after.

Every measurement is a pair {"cpu_s", "wall_s"}: the least CPU time of this process
and the least wall time over ``--repeats`` runs after a warm-up. Everything runs on
one thread (BLAS limited with threadpoolctl, ``workers=1``), so the CPU time is the
time the computation took on a core; on a shared, busy machine the wall time also
counts the time the process waited for one, which other programs only ever add.
float32, B = 1 throughout.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from functools import partial as P
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from attention_np import attention_forward
from attention_np.efficient import (
    flash_attention_forward,
    flash_attention_reference,
    linear_attention_forward,
    sliding_window_attention_forward,
    sliding_window_mask,
)

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {
    "13": "13_the_quadratic_wall",
    "14": "14_flash_attention_tiling",
    "15": "15_linear_attention",
    "16": "16_sparse_attention",
}


def best_time(fn, repeats):
    """{"cpu_s", "wall_s"}: least CPU and wall time of ``repeats`` calls after a
    warm-up call (seconds)."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"cpu_s": min(cpu), "wall_s": min(wall)}


def inputs(rng, heads, n, d=64):
    return [rng.standard_normal((1, heads, n, d)).astype(np.float32) for _ in "qkv"]


def machine():
    """What the numbers were measured on (goes into every JSON file)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if "model name" in ln]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    blas = [
        {k: i.get(k) for k in ("internal_api", "version", "num_threads")}
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "os": platform.platform(),
    }


def lesson_13(repeats):
    """attention_forward vs the two products alone, and the three ways out."""
    rng = np.random.default_rng(0)
    sizes = [128, 256, 512, 1024, 2048, 4096]
    forward, products = [], []
    for n in sizes:
        q, k, v = inputs(rng, 2, n)
        kt = np.swapaxes(k, -1, -2)
        forward.append(best_time(P(attention_forward, q, k, v, causal=False), repeats))
        products.append(best_time(P(_two_products, q, kt, v), repeats))
    ways = {
        "standard": P(attention_forward, causal=True),
        "tiled (flash)": P(flash_attention_forward, causal=True, workers=1),
        "linear (chunkwise 64)": P(
            linear_attention_forward, causal=True, form="chunkwise", chunk_size=64
        ),
        "sliding window w=256": P(
            sliding_window_attention_forward, window=256, causal=True
        ),
    }
    way_sizes = [512, 1024, 2048, 4096, 8192]
    way_times = {name: [] for name in ways}
    for n in way_sizes:
        q, k, v = inputs(rng, 2, n)
        for name, fn in ways.items():
            way_times[name].append(best_time(P(fn, q, k, v), repeats))
    return {
        "settings": "B=1 H=2 d=64 float32, one thread; the ways out: causal forward",
        "sizes": sizes,
        "forward": forward,
        "products": products,
        "ways_sizes": way_sizes,
        "ways": way_times,
    }


def _two_products(q, kt, v):
    return (q @ kt) @ v


def lesson_14(repeats):
    """Plain tiled loop vs optimised kernel per tile size; tile sizes and causal."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2048, 64)).astype(np.float32) for _ in range(3))
    loops = []
    for bq, bk in [(16, 16), (64, 64), (256, 1024)]:
        tiles = {"block_q": bq, "block_k": bk, "causal": False}
        ref = best_time(P(flash_attention_reference, q, k, v, **tiles), repeats)
        fast = best_time(
            P(flash_attention_forward, q, k, v, workers=1, **tiles), repeats
        )
        loops.append({"tiles": [bq, bk], "reference": ref, "optimised": fast})
    q, k, v = inputs(rng, 2, 2048)
    rows = {"standard": {}}
    for causal, key in ((False, "no mask"), (True, "causal")):
        rows["standard"][key] = best_time(
            P(attention_forward, q, k, v, causal=causal), repeats
        )
        for bq, bk in [(64, 64), (128, 256), (256, 512), (256, 1024)]:
            tiles = {"block_q": bq, "block_k": bk, "workers": 1, "causal": causal}
            rows.setdefault(f"tiles {bq}x{bk}", {})[key] = best_time(
                P(flash_attention_forward, q, k, v, **tiles), repeats
            )
    return {
        "settings": "d=64 float32, one thread (BLAS 1 thread, workers=1), N=M=2048",
        "reference_vs_optimised": {"shape": "one head (2048, 64)", "rows": loops},
        "tile_sizes": {"shape": "(1, 2, 2048, 64)", "rows": rows},
    }


def lesson_15(repeats):
    """Softmax vs the linear forms against N."""
    rng = np.random.default_rng(0)
    sizes = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    runs = {
        "softmax (attention_forward)": P(attention_forward, causal=False),
        "linear, non-causal": P(linear_attention_forward, causal=False),
        "linear causal, chunkwise 64": P(
            linear_attention_forward, causal=True, form="chunkwise", chunk_size=64
        ),
        "linear causal, recurrent": P(
            linear_attention_forward, causal=True, form="recurrent"
        ),
    }
    times = {name: [] for name in runs}
    for n in sizes:
        q, k, v = inputs(rng, 2, n)
        for name, fn in runs.items():
            slow = name.endswith("recurrent") and n > 1024  # a Python loop over tokens
            times[name].append(None if slow else best_time(P(fn, q, k, v), repeats))
    return {
        "settings": "B=1 H=2 d=64 float32, one thread; recurrent only up to N=1024",
        "sizes": sizes,
        "times": times,
    }


def lesson_16(repeats):
    """A causal sliding window of w=128 three ways."""
    rng = np.random.default_rng(0)
    w, sizes = 128, [256, 512, 1024, 2048, 4096]
    times = {"dense masked": [], "tiled, skipping tiles": [], "banded": []}
    tiled = {"causal": False, "block_q": 128, "block_k": 128, "workers": 1}
    for n in sizes:
        q, k, v = inputs(rng, 2, n)
        mask = sliding_window_mask(n, w, causal=True)
        runs = {
            "dense masked": P(attention_forward, q, k, v, mask, causal=False),
            "tiled, skipping tiles": P(flash_attention_forward, q, k, v, mask, **tiled),
            "banded": P(
                sliding_window_attention_forward, q, k, v, window=w, causal=True
            ),
        }
        for name, fn in runs.items():
            times[name].append(best_time(fn, repeats))
    return {
        "settings": f"causal window w={w}, B=1 H=2 d=64 float32, one thread",
        "window": w,
        "sizes": sizes,
        "times": times,
    }


LESSONS = {"13": lesson_13, "14": lesson_14, "15": lesson_15, "16": lesson_16}


def run(lesson, repeats, out_dir):
    """Measure one lesson and write its JSON file; returns the path."""
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):
        data = LESSONS[lesson](repeats)
    record = {
        "lesson": NAMES[lesson],
        "command": f"python benchmarks/lessons_efficient_bench.py --lesson {lesson}",
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "load_average_1_5_15_min": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "repeats": repeats,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        **data,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAMES[lesson]}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", choices=sorted(LESSONS), action="append")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv=None):
    args = parse(argv)
    for lesson in args.lesson or sorted(LESSONS):
        path = run(lesson, args.repeats, args.out_dir)
        print(f"lesson {lesson}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

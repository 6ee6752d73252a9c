"""Peak memory of one forward call for lessons 13, 14 and 16, written to JSON.

    python benchmarks/lessons_efficient_memory.py    # or: make bench-lessons-efficient

``tracemalloc`` sees every array NumPy allocates, so the peak during a call depends
only on the shapes, and in a plain Python process it is the same to the byte on every
run. Inside a Jupyter kernel it is not: the kernel's own threads allocate a few hundred
bytes now and then while the call runs, and tracemalloc counts those too. So the
lessons read these numbers from ``benchmarks/results/<lesson>_memory.json`` instead of
measuring them in the notebook. One head (B = H = 1), d = 64, float32; the inputs are
allocated before tracing starts. Nothing here is timed.
"""

import argparse
import json
import platform
import sys
from functools import partial as P
from pathlib import Path

import numpy as np

from attention_np import attention_forward
from attention_np.efficient import (
    flash_attention_forward,
    peak_bytes,
    sliding_window_attention_forward,
    sliding_window_mask,
)

RESULTS = Path(__file__).resolve().parent / "results"


def inputs(rng, n):
    return [rng.standard_normal((n, 64)).astype(np.float32) for _ in "qkv"]


def measured(fn):
    """peak_bytes of fn() after one warm-up call: a first call also builds what is
    kept between calls (the worker thread pool, cached tile plans), which is not
    part of one forward's memory."""
    fn()
    return peak_bytes(fn)


def lesson_13():
    """Standard attention (it builds the (N, N) scores)."""
    rng, sizes = np.random.default_rng(0), [256, 512, 1024, 2048, 4096]
    peaks = [
        measured(P(attention_forward, *inputs(rng, n), causal=False)) for n in sizes
    ]
    return "13_the_quadratic_wall", {"sizes": sizes, "standard": peaks}


def lesson_14():
    """Standard (up to 4096) against tiled attention (default tiles 256 x 1024)."""
    rng, sizes = np.random.default_rng(0), [256, 512, 1024, 2048, 4096, 8192, 16384]
    standard, tiled = [], []
    for n in sizes:
        q, k, v = inputs(rng, n)
        tiled.append(
            measured(P(flash_attention_forward, q, k, v, causal=False, workers=1))
        )
        if n <= 4096:
            standard.append(measured(P(attention_forward, q, k, v, causal=False)))
    return "14_flash_attention_tiling", {
        "sizes": sizes,
        "standard": standard,
        "tiled": tiled,
    }


def lesson_16():
    """A causal window of 128: dense masked (mask built beforehand) against banded."""
    rng, w, sizes = np.random.default_rng(0), 128, [512, 1024, 2048, 4096, 8192]
    dense, banded = [], []
    for n in sizes:
        q, k, v = inputs(rng, n)
        if n <= 4096:
            mask = sliding_window_mask(n, w, causal=True)
            dense.append(measured(P(attention_forward, q, k, v, mask, causal=False)))
        run = P(sliding_window_attention_forward, q, k, v, window=w, causal=True)
        banded.append(measured(run))
    return "16_sparse_attention", {
        "window": w,
        "sizes": sizes,
        "dense": dense,
        "banded": banded,
    }


LESSONS = {"13": lesson_13, "14": lesson_14, "16": lesson_16}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", choices=sorted(LESSONS), action="append")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for lesson in args.lesson or sorted(LESSONS):
        name, data = LESSONS[lesson]()
        record = {
            "lesson": name,
            "command": f"python benchmarks/{Path(__file__).name} --lesson {lesson}",
            "what": "peak bytes of one forward call (tracemalloc), B = H = 1, d = 64, "
            "float32",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "peak_bytes": data,
        }
        path = args.out_dir / f"{name}_memory.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"lesson {lesson}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

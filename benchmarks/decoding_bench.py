"""Wall-clock times for lesson 11: generation with and without a KV cache, additive
versus dot-product attention. Writes a JSON file the notebook reads.

    python benchmarks/decoding_bench.py          # -> benchmarks/results/decoding.json
    python benchmarks/decoding_bench.py --quick  # smoke test: 1 repeat, small sizes

Timings vary from run to run and machine to machine, so lesson 11 does not time
anything itself (re-running a notebook must change nothing): it prints this file's
numbers with the machine description stored next to them. Each time is the best of
--repeats runs (other programs only ever add time), BLAS limited to --threads.

What is timed:
- generation: greedy decoding of the committed reversal checkpoint for --batch
  prompts (x and the separator, then L tokens), once with one KVCache per layer
  (a prefill, then single-token steps) and once recomputing the whole sequence at
  every step. The generated tokens are checked to be identical.
- additive vs dot: one forward pass of Bahdanau attention (hidden width A) and of
  scaled dot-product attention, N = M queries and keys of width d.
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

from attention_np import attention_forward  # noqa: E402
from attention_np.additive import (  # noqa: E402
    additive_attention_forward,
    init_additive_params,
)
from attention_np.train import load_checkpoint  # noqa: E402
from attention_np.transformer import model_forward, new_kv_caches  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "reversal.npz"
OUT = ROOT / "benchmarks" / "results" / "decoding.json"


def best_of(fn, repeats):
    """Smallest wall time of ``repeats`` calls (seconds) and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def generate_cached(params, config, prompt, n_new):
    """Greedy tokens (B, n_new): a prefill, then one token per step from the caches."""
    caches = new_kv_caches(config, batch=len(prompt), dtype=params["embed.W"].dtype)
    logits, _ = model_forward(prompt, params, config, kv_caches=caches)
    tokens = [logits[:, -1].argmax(-1)]
    for t in range(prompt.shape[1], prompt.shape[1] + n_new - 1):
        logits, _ = model_forward(
            tokens[-1][:, None], params, config, kv_caches=caches, start=t
        )
        tokens.append(logits[:, -1].argmax(-1))
    return np.stack(tokens, axis=1)


def generate_recomputed(params, config, prompt, n_new):
    """Greedy tokens (B, n_new), running the whole sequence again at every step."""
    seq = prompt
    for _ in range(n_new):
        logits, _ = model_forward(seq, params, config)
        seq = np.concatenate([seq, logits[:, -1:].argmax(-1)], axis=1)
    return seq[:, prompt.shape[1] :]


def bench_generation(batch, repeats):
    ckpt = load_checkpoint(CHECKPOINT)
    params, config, task = ckpt["params"], ckpt["model_config"], ckpt["train_config"]
    L = task.length
    prompt = task.batch(np.random.default_rng(1), batch).inputs[:, : L + 1]
    cached_s, cached = best_of(
        lambda: generate_cached(params, config, prompt, L), repeats
    )
    full_s, full = best_of(
        lambda: generate_recomputed(params, config, prompt, L), repeats
    )
    if not np.array_equal(cached, full):
        raise AssertionError("cached and recomputed generation gave different tokens")
    return {
        "sequences": batch,
        "prompt_tokens": L + 1,
        "new_tokens": L,
        "cached_seconds": cached_s,
        "recomputed_seconds": full_s,
    }


def bench_additive(n, width, repeats):
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, n, width))
    params = init_additive_params(width, width, width, rng=rng)
    add_s, _ = best_of(
        lambda: additive_attention_forward(q, k, k, params, causal=False), repeats
    )
    dot_s, _ = best_of(lambda: attention_forward(q, k, k, causal=False), repeats)
    return {
        "N": n,
        "M": n,
        "width": width,
        "A": width,
        "additive_seconds": add_s,
        "dot_seconds": dot_s,
    }


def cpu_model():
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads):
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas_threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 repeat, small sizes")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads")
    p.add_argument("--batch", type=int, default=500, help="prompts to generate")
    p.add_argument("--n", type=int, default=256, help="N = M for additive vs dot")
    p.add_argument("--width", type=int, default=64, help="d = A for additive vs dot")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batch, args.n = 1, 8, 32
    for name in ("repeats", "threads", "batch", "n", "width"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None):
    args = parse(argv)
    result = {
        "machine": machine(args.threads),
        "repeats": args.repeats,
        "generation": bench_generation(args.batch, args.repeats),
        "additive_vs_dot": bench_additive(args.n, args.width, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    gen, add = result["generation"], result["additive_vs_dot"]
    print(
        f"generation of {gen['sequences']} sequences: cached "
        f"{gen['cached_seconds'] * 1e3:.1f} ms, recomputed "
        f"{gen['recomputed_seconds'] * 1e3:.1f} ms"
    )
    print(
        f"N = M = {add['N']}, width {add['width']}: additive "
        f"{add['additive_seconds'] * 1e3:.2f} ms, dot "
        f"{add['dot_seconds'] * 1e3:.2f} ms -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MQAR accuracy against the number of key-value pairs, for seven sequence mixers.

    python benchmarks/mqar_bench.py            # the full sweep (about 10 min, 2 cores)
    python benchmarks/mqar_bench.py --quick    # smoke test, seconds

Zoology's protocol (Arora et al. 2023) at course scale: one two-layer model per
mixer (embedding, [short conv + mixer, MLP] x 2 with pre-norm residuals, head; all at
the same width D and heads H, so every recurrence has the same state size), trained
with Adam on a mixture of pair counts (each step draws one count; sequences of
length max(64, 4 n)), then evaluated on fresh sequences of each count. Accuracy is
the fraction of queries whose value is the arg-max prediction. The runs are spread
over --workers processes (one BLAS thread each). Prints the accuracy table with the
state size of each mixer, writes <out-dir>/mqar_accuracy.png (default figures/) and
the numbers to --json (default benchmarks/results/mqar.json; lesson 20 reads it).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # one BLAS thread per worker process
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import numpy as np  # noqa: E402

from attention_np.recurrences import KINDS  # noqa: E402
from attention_np.recurrences.mqar_train import mqar_seq_len, train_mqar  # noqa: E402

NAMES = {
    "attention": "softmax attention",
    "linear_attn": "linear attention",
    "retention": "RetNet",
    "gla": "GLA",
    "mamba2": "Mamba-2",
    "deltanet": "DeltaNet",
    "gated_deltanet": "Gated DeltaNet",
}


def state_size(mixer, d_model, n_heads, n):
    """Floats the mixer carries per layer at a sequence of length n."""
    if mixer == "attention":
        return 2 * n * d_model  # the KV cache
    return d_model * d_model // n_heads  # H heads of (d, d)


def train_one(job, update=None):
    """Train one mixer on the pair mixture; returns (mixer, {pairs: acc}, losses).

    Progress goes to ``update(1)`` every step (same process) or to the queue in the
    job every 10 steps (a worker process).
    """
    mixer, args, queue = job
    report = None
    if update is not None:
        report = lambda step: update(1)
    elif queue is not None:
        report = lambda step: queue.put(10) if (step + 1) % 10 == 0 else None
    _, losses, acc = train_mqar(
        args.pairs,
        {"mixer": mixer, "n_heads": args.heads, "chunk_size": 64},
        steps=args.steps, lr=args.lr, rng=np.random.default_rng(args.seed),
        d_model=args.d_model, vocab_size=args.vocab, batch=args.batch,
        progress=report,
    )  # fmt: skip
    return mixer, acc, losses


def run_all(args):
    """{mixer: ({pairs: accuracy}, losses)}, with a progress bar over all steps."""
    from tqdm import tqdm

    total = args.steps * len(args.mixers)
    with tqdm(total=total, desc="MQAR training steps", file=sys.stderr) as bar:
        if args.workers == 1:  # in this process
            jobs = [train_one((m, args, None), bar.update) for m in args.mixers]
            return {mixer: (acc, losses) for mixer, acc, losses in jobs}
        return _in_processes(args, bar)


def _in_processes(args, bar):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import Manager

    with Manager() as manager, ProcessPoolExecutor(args.workers) as pool:
        queue = manager.Queue()
        jobs = [pool.submit(train_one, (m, args, queue)) for m in args.mixers]
        while any(not j.done() for j in jobs) or not queue.empty():
            while not queue.empty():
                bar.update(queue.get())
            time.sleep(0.2)
        return {
            mixer: (acc, losses) for mixer, acc, losses in (j.result() for j in jobs)
        }


def print_table(results, args):
    print(f"\nMQAR accuracy (D = {args.d_model}, H = {args.heads}, vocab "
          f"{args.vocab}, {args.steps} steps of {args.batch}, lr {args.lr}, seed "
          f"{args.seed})")  # fmt: skip
    head = "".join(f"{n:>7}" for n in args.pairs)
    print(f"{'mixer':<18}{'state/layer':>14}{head}   <- key-value pairs")
    for mixer, (acc, _) in results.items():
        n_max = mqar_seq_len(max(args.pairs))
        size = state_size(mixer, args.d_model, args.heads, n_max)
        size_s = f"{size}" + (f" (N={n_max})" if mixer == "attention" else "")
        cells = "".join(f"{acc[n]:7.2f}" for n in args.pairs)
        print(f"{NAMES[mixer]:<18}{size_s:>14}{cells}")


def plot(results, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attention_np.viz import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
    for (mixer, (acc, _)), marker in zip(results.items(), "osD^v<>", strict=False):
        size = state_size(
            mixer, args.d_model, args.heads, mqar_seq_len(max(args.pairs))
        )
        label = f"{NAMES[mixer]} (state {size})"
        ax.plot(args.pairs, [acc[n] for n in args.pairs], marker=marker, label=label)
    ax.set(xscale="log", xlabel="key-value pairs", ylim=(-0.02, 1.02),
           ylabel="accuracy at the queries",
           title=f"MQAR, two layers, D = {args.d_model}")  # fmt: skip
    ax.set_xticks(args.pairs, [str(n) for n in args.pairs])
    ax.minorticks_off()  # the pair counts are the only ticks
    ax.legend(fontsize=7, loc="lower left")
    save_figure(fig, args.figure, directory=args.out_dir)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run, seconds")
    p.add_argument("--mixers", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--pairs", type=int, nargs="+", default=[4, 8, 16, 32, 48])
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=128)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default="mqar_accuracy")
    p.add_argument("--out-dir", default=None, help="figures folder")
    p.add_argument("--json", default=str(Path(__file__).parent / "results/mqar.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.steps, args.d_model = [2, 4], 4, 8
    if min(args.pairs + [args.steps, args.batch, args.workers, args.heads]) < 1:
        p.error("--pairs, --steps, --batch, --workers and --heads must be >= 1")
    if args.d_model % args.heads or args.vocab // 2 - 1 < max(args.pairs):
        p.error("--d-model must be a multiple of --heads; --vocab >= 2 (max pairs + 1)")
    return args


def main(argv=None):
    args = parse(argv)
    t0, load = time.time(), os.getloadavg()[0]
    results = run_all(args)
    print_table(results, args)
    print(f"({time.time() - t0:.0f} s on {args.workers} worker(s); load average "
          f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")  # fmt: skip
    plot(results, args)
    save_json(results, args, time.time() - t0, load)
    return 0


def save_json(results, args, seconds, load):
    """The sweep's settings, accuracies, state sizes and loss curves (every 50th)."""
    record = {
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("json", "out_dir")
        },
        "seconds": round(seconds, 1),
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
        "mixers": {
            m: {
                "name": NAMES[m],
                "accuracy": {str(n): round(a, 4) for n, a in acc.items()},
                "state_per_layer": state_size(
                    m, args.d_model, args.heads, mqar_seq_len(max(args.pairs))
                ),
                "loss_every_50": [round(float(x), 4) for x in losses[::50]],
            }
            for m, (acc, losses) in results.items()
        },
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

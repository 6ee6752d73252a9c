"""Training-step throughput: NumPy with hand-written backward vs PyTorch eager.

One step = forward, masked cross-entropy, backward, global-norm clipping, Adam, on
the same weights and the same batches, float32, with the same number of threads
(BLAS limited with threadpoolctl; ``torch.set_num_threads``). Models: the course's
tiny decoder-only transformer on reversal (notebook 09) and the encoder-decoder on
the toy translation task (notebook 12), with dot-product and additive
cross-attention. Tokens per step: every input position (decoder-only: B x N;
encoder-decoder: B x (M + N), source and target).

    python benchmarks/train_bench.py [--repeats 7] [--steps 20] [--threads 1]

Prints a Markdown table of medians over the repeats (NumPy and PyTorch repeats
alternate, so a change in machine load hits both), the load average before and
after, and the ratio NumPy / PyTorch (> 1: NumPy is faster) of wall-clock tokens/s
and of tokens per CPU second (less sensitive to other processes on a shared
machine). PyTorch columns are skipped, with a message, when torch is not installed.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from attention_np.train import TrainConfig, default_model_config, train_step
from attention_np.train.seq2seq import (
    TranslateConfig,
    translation_model_config,
    translation_step,
)
from attention_np.train.translate import translation_batch
from attention_np.transformer import adam_init, init_encdec_params, init_params

try:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_models as T
except ImportError:  # the PyTorch column is optional
    torch = None


def numpy_decoder_only(n_batches, rng):
    cfg = TrainConfig(task="reversal")
    config = default_model_config(cfg)
    params = init_params(config, rng=rng, dtype=np.float32)
    batches = [cfg.batch(rng) for _ in range(n_batches)]
    state = adam_init(params)

    def step(i):
        train_step(params, state, batches[i], config, cfg, i)

    tokens = batches[0].inputs.size
    return params, batches, step, tokens, config, cfg


def numpy_encdec(n_batches, rng, score):
    cfg = TranslateConfig()
    config = translation_model_config(score=score)
    params = init_encdec_params(config, rng=rng, dtype=np.float32)
    batches = [translation_batch(rng, cfg.batch_size) for _ in range(n_batches)]
    state = adam_init(params)

    def step(i):
        translation_step(params, state, batches[i], config, cfg, i)

    tokens = batches[0].src.size + batches[0].tgt_in.size
    return params, batches, step, tokens, config, cfg


def torch_step_fn(params, batches, config, cfg, encdec):
    p = T.tensors(params)
    opt = torch.optim.Adam(p.values(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))

    def step(i):
        b = batches[i]
        opt.zero_grad(set_to_none=True)
        if encdec:
            logits = T.encdec_logits(b.src, b.tgt_in, p, config, b.src_lengths)
            loss = T.masked_cross_entropy(logits, b.tgt_out, b.tgt_mask)
        else:
            logits = T.decoder_only_logits(b.inputs, p, config)
            loss = T.masked_cross_entropy(logits, b.targets, b.mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(p.values(), cfg.clip)
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate(i) if encdec else cfg.lr
        opt.step()

    return step


def seconds(step, start, steps):
    """(wall-clock, CPU) seconds of ``steps`` training steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(start, start + steps):
        step(i)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(setup, args, encdec):
    """(tokens/step, {"numpy"|"torch": (wall tokens/s, CPU tokens/s)})."""
    rng = np.random.default_rng(0)
    n = args.warmup + args.repeats * args.steps
    params, batches, np_step, tokens, config, cfg = setup(n, rng)
    steps = {"numpy": np_step}
    if torch is not None:
        steps["torch"] = torch_step_fn(params, batches, config, cfg, encdec)
    for step in steps.values():
        seconds(step, 0, args.warmup)
    times = {name: [] for name in steps}
    for r in range(args.repeats):  # alternate: a change of machine load hits both
        for name, step in steps.items():
            times[name].append(seconds(step, args.warmup + r * args.steps, args.steps))
    work = tokens * args.steps
    rates = {
        name: tuple(work / float(np.median(t)) for t in zip(*ts, strict=True))
        for name, ts in times.items()
    }
    return tokens, rates


def row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


MODELS = [
    ("decoder-only, reversal (B=32, N=16)", numpy_decoder_only, False),
    (
        "encoder-decoder, dot (B=64, M=7, N=10)",
        lambda n, rng: numpy_encdec(n, rng, "dot"),
        True,
    ),
    (
        "encoder-decoder, additive (B=64, M=7, N=10)",
        lambda n, rng: numpy_encdec(n, rng, "additive"),
        True,
    ),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=20, help="steps per repeat")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if min(args.repeats, args.steps, args.threads) < 1 or args.warmup < 0:
        p.error("--repeats, --steps and --threads must be >= 1, --warmup >= 0")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    th = f"torch {torch.__version__}" if torch is not None else "torch not installed"
    print(
        f"numpy {np.__version__}, {th}, {platform.machine()}, {os.cpu_count()} "
        f"cores, threads={args.threads}, load average {load} (1, 5, 15 min)"
    )
    print(f"medians of {args.repeats} repeats of {args.steps} steps, float32\n")
    if torch is not None:
        torch.set_num_threads(args.threads)
    head = ("model", "tokens/step", "NumPy tokens/s", "PyTorch eager tokens/s")
    print(row(*head, "NumPy / PyTorch", "same, CPU time"))
    print(row("---", *["---:"] * 5))
    with threadpool_limits(args.threads, "blas"):
        for name, setup, encdec in MODELS:
            tokens, rates = measure(setup, args, encdec)
            (np_wall, np_cpu), th = rates["numpy"], rates.get("torch")
            if th is None:
                print(
                    row(name, tokens, f"{np_wall:,.0f}", "skipped: no torch", "-", "-")
                )
                continue
            ratios = f"{np_wall / th[0]:.2f}", f"{np_cpu / th[1]:.2f}"
            print(row(name, tokens, f"{np_wall:,.0f}", f"{th[0]:,.0f}", *ratios))
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f}")
    if torch is None:
        print("PyTorch rows skipped: install torch==2.13.0 (CPU wheel, see .ci/run).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

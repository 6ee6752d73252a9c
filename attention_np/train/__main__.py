"""Command line: train the tiny transformer and save a checkpoint.

    python -m attention_np.train reversal --out checkpoints/reversal.npz
    python -m attention_np.train copy --out checkpoints/copy.npz --steps 800

Prints the wall-clock training time, the number of steps and the accuracy on 1000
fresh examples; all three are also stored in the checkpoint's ``meta``.
"""

import argparse
import sys
import time

import numpy as np

from .checkpoint import save_checkpoint
from .loop import TrainConfig, default_model_config, evaluate, train
from .tasks import TASKS


def parse_args(argv):
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m attention_np.train")
    p.add_argument("task", choices=TASKS)
    p.add_argument("--out", required=True, help="checkpoint path (.npz)")
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--length", type=int, default=defaults.length)
    p.add_argument("--n-symbols", type=int, default=defaults.n_symbols)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = TrainConfig(
        task=args.task,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        length=args.length,
        n_symbols=args.n_symbols,
        seed=args.seed,
    )
    model_config = default_model_config(
        cfg, d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers
    )
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    params, history = train(model_config, cfg, rng=rng, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    scores = evaluate(params, model_config, cfg, rng=np.random.default_rng(10**6))
    meta = {"steps": cfg.steps, "train_seconds": round(seconds, 1), **scores}
    save_checkpoint(args.out, params, model_config, cfg, history=history, meta=meta)
    print(
        f"{cfg.task}: {cfg.steps} steps in {seconds:.1f} s, token accuracy "
        f"{scores['token_accuracy']:.4f}, sequence accuracy "
        f"{scores['sequence_accuracy']:.4f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

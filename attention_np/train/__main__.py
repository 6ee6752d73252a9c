"""Command line: train the tiny transformer and save a checkpoint.

    python -m attention_np.train reversal --out checkpoints/reversal.npz
    python -m attention_np.train copy --out checkpoints/copy.npz --steps 800
    python -m attention_np.train translate --out checkpoints/translate.npz

(``translate``, ``mlm`` and ``stream`` have their own flags: see commands.py.)

Prints the wall-clock training time, the number of steps and the accuracy on 1000
fresh examples; all three are also stored in the checkpoint's ``meta``.

A bad flag or value (``--steps -3``, ``--lr nan``, an unwritable ``--out``, sizes that
do not fit together) ends with ``error: ...`` and exit status 2 before any training;
a run whose loss stops being finite ends with ``error: ...`` and exit status 1, and
writes no checkpoint.
"""

import argparse
import sys
import time

import numpy as np

from .. import validate as V
from . import commands
from .checkpoint import check_out_path, save_checkpoint
from .config import TrainConfig
from .loop import default_model_config, evaluate, train
from .tasks import TASKS


def parser():
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m attention_np.train")
    p.add_argument("task", choices=TASKS + commands.COMMANDS)
    p.add_argument("--out", required=True, help="checkpoint path (.npz)")
    p.add_argument("--steps", type=V.cli_int(1), default=defaults.steps)
    p.add_argument("--batch-size", type=V.cli_int(1), default=defaults.batch_size)
    p.add_argument("--lr", type=V.cli_float(0, strict=True), default=defaults.lr)
    p.add_argument("--length", type=V.cli_int(1), default=defaults.length)
    p.add_argument("--n-symbols", type=V.cli_int(1), default=defaults.n_symbols)
    p.add_argument("--d-model", type=V.cli_int(1), default=64)
    p.add_argument("--n-heads", type=V.cli_int(1), default=4)
    p.add_argument("--n-layers", type=V.cli_int(1), default=2)
    p.add_argument("--seed", type=V.cli_int(0), default=defaults.seed)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def configs(p, args):
    """(TrainConfig, TransformerConfig) from the flags, or p.error (exit status 2)."""
    try:
        check_out_path(args.out)
        cfg = TrainConfig(
            task=args.task,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            length=args.length,
            n_symbols=args.n_symbols,
            seed=args.seed,
        )
        sizes = dict(d_model=args.d_model, n_heads=args.n_heads)
        return cfg, default_model_config(cfg, n_layers=args.n_layers, **sizes)
    except (TypeError, ValueError) as err:
        p.error(str(err))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in commands.COMMANDS:  # the encoder-decoder, MLM, stream runs
        return commands.main(argv[0], argv[1:])
    p = parser()
    args = p.parse_args(argv)
    cfg, model_config = configs(p, args)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    try:
        params, history = train(
            model_config, cfg, rng=rng, progress=not args.no_progress
        )
    except FloatingPointError as err:
        p.exit(1, f"{p.prog}: error: {err}; no checkpoint written\n")
    seconds = time.perf_counter() - start
    scores = evaluate(params, model_config, cfg, rng=np.random.default_rng(10**6))
    meta = {"steps": cfg.steps, "train_seconds": round(seconds, 1), **scores}
    try:
        save_checkpoint(args.out, params, model_config, cfg, history=history, meta=meta)
    except (OSError, ValueError) as err:
        p.exit(1, f"{p.prog}: error: cannot write {args.out}: {err}\n")
    print(
        f"{cfg.task}: {cfg.steps} steps in {seconds:.1f} s, token accuracy "
        f"{scores['token_accuracy']:.4f}, sequence accuracy "
        f"{scores['sequence_accuracy']:.4f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

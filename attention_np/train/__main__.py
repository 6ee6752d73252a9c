"""Command line: train the tiny transformer and save a checkpoint.

    python -m attention_np.train reversal --out checkpoints/reversal.npz
    python -m attention_np.train copy --out checkpoints/copy.npz --steps 800
    python -m attention_np.train translate --out checkpoints/translate.npz

(``translate``, ``mlm`` and ``stream`` have their own flags: see commands.py.)

Prints the wall-clock training time, the number of steps and the accuracy on 1000
fresh examples; all three are also stored in the checkpoint's ``meta``.

A bad flag or value (``--steps -3``, ``--lr nan``, an unwritable ``--out``, sizes that
do not fit together, a size past its limit in ``config.CLI_LIMITS`` or a run whose
arrays would need more than ``config.MEMORY_LIMIT_GIB``) ends with ``error: ...`` and
exit status 2 before any training;
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
from .config import CLI_LIMITS, MEMORY_LIMIT_GIB, TrainConfig
from .loop import default_model_config, evaluate, train
from .tasks import TASKS


def sized(p, flag, default, extra=""):
    """Add a size flag bounded by CLI_LIMITS (the limit is in its help)."""
    high = CLI_LIMITS[flag.strip("-").replace("-", "_")]
    text = f"1 to {high:,}" + (f"; {extra}" if extra else "")
    p.add_argument(flag, type=V.cli_int(1, high), default=default, help=text)


def run_gib(cfg, model):
    """A generous estimate of the GiB a training run's arrays take: per layer the
    attention weights (B, H, N, N) and the activations, the logits, and params,
    gradients and Adam's two moments (N = model.max_len)."""
    B, N, D, H = cfg.batch_size, model.max_len, model.d_model, model.n_heads
    L, Vocab = model.n_layers, model.vocab_size
    d_mlp = model.d_mlp or 4 * D
    acts = L * B * N * (2 * H * N + 12 * D + 2 * d_mlp) + 2 * B * N * Vocab
    params = 4 * (2 * Vocab * D + N * D + L * (4 * D * D + 2 * D * d_mlp))
    itemsize = 4 if cfg.dtype == "float32" else 8
    return (acts + params) * itemsize / 2**30


def check_memory(cfg, model):
    """ValueError when ``run_gib`` exceeds MEMORY_LIMIT_GIB."""
    need = run_gib(cfg, model)
    if need > MEMORY_LIMIT_GIB:
        raise ValueError(
            f"--batch-size {cfg.batch_size}, --length {cfg.length}, --n-symbols "
            f"{cfg.n_symbols}, --d-model {model.d_model}, --n-heads {model.n_heads} "
            f"and --n-layers {model.n_layers} need about {need:.1f} GiB of arrays, "
            f"more than the limit of {MEMORY_LIMIT_GIB:g} GiB: make them smaller"
        )


def parser():
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m attention_np.train",
        epilog=f"A run whose arrays would need more than {MEMORY_LIMIT_GIB:g} GiB "
        "(batch, length, width, heads and layers together) is refused.",
    )
    p.add_argument("task", choices=TASKS + commands.COMMANDS)
    p.add_argument("--out", required=True, help="checkpoint path (.npz)")
    sized(p, "--steps", defaults.steps)
    sized(p, "--batch-size", defaults.batch_size)
    p.add_argument("--lr", type=V.cli_float(0, strict=True), default=defaults.lr)
    sized(p, "--length", defaults.length, "the sequence is 2 * length tokens")
    sized(p, "--n-symbols", defaults.n_symbols)
    sized(p, "--d-model", 64)
    sized(p, "--n-heads", 4)
    sized(p, "--n-layers", 2)
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
        model = default_model_config(cfg, n_layers=args.n_layers, **sizes)
        check_memory(cfg, model)
        return cfg, model
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

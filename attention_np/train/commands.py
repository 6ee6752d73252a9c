"""Command line of the encoder-decoder, MLM and stream runs (``__main__`` hands over).

    python -m attention_np.train translate --out checkpoints/translate.npz
    python -m attention_np.train mlm --out checkpoints/mlm_bidirectional.npz
    python -m attention_np.train mlm --causal --out checkpoints/mlm_causal.npz
    python -m attention_np.train stream --out checkpoints/stream.npz

Each trains with the package's own backward and Adam (tqdm progress), evaluates,
prints the wall-clock and CPU time and the scores, and saves a ``run_checkpoint``
(the times and scores go into its ``meta``). A bad flag or value (a size past its
limit in ``config.CLI_LIMITS`` included) ends with ``error: ...`` and exit status 2
before any training; a diverged run with exit status 1 and no checkpoint.
"""

import argparse
import os
import time

import numpy as np

from .. import validate as V
from .checkpoint import check_out_path
from .config import CLI_LIMITS
from .mlm import MLMConfig, accuracy_per_position, mlm_model_config, train_mlm
from .run_checkpoint import save_run
from .seq2seq import (
    TranslateConfig,
    evaluate_translation,
    train_translation,
    translation_model_config,
)
from .stream import StreamConfig, evaluate_stream, stream_model_config, train_stream

COMMANDS = ("translate", "mlm", "stream")


def _sized(p, flag, default, extra="", name=None):
    """A size flag bounded by config.CLI_LIMITS (the limit is in its help)."""
    high = CLI_LIMITS[name or flag.strip("-").replace("-", "_")]
    text = f"1 to {high:,}" + (f"; {extra}" if extra else "")
    p.add_argument(flag, type=V.cli_int(1, high), default=default, help=text)


def _parser(command, defaults):
    p = argparse.ArgumentParser(prog=f"python -m attention_np.train {command}")
    p.add_argument("--out", required=True, help="checkpoint path (.npz)")
    _sized(p, "--steps", defaults.steps)
    _sized(p, "--batch-size", defaults.batch_size)
    p.add_argument("--lr", type=V.cli_float(0, strict=True), default=defaults.lr)
    p.add_argument("--seed", type=V.cli_int(0), default=defaults.seed)
    _sized(p, "--d-model", None)
    _sized(p, "--n-heads", None)
    _sized(p, "--threads", 1, "BLAS threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _sizes(args, **names):
    """EncDecConfig/TransformerConfig overrides from the flags that were given."""
    sizes = {"d_model": args.d_model, "n_heads": args.n_heads}
    sizes.update({field: getattr(args, flag) for field, flag in names.items()})
    return {k: v for k, v in sizes.items() if v is not None}


def _translate(args):
    cfg = TranslateConfig(**_optim(args))
    model = translation_model_config(
        score=args.score,
        **_sizes(args, n_enc_layers="n_enc_layers", n_dec_layers="n_dec_layers"),
    )
    return cfg, model


def _optim(args):
    return dict(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )


def parser(command):
    if command == "translate":
        p = _parser(command, TranslateConfig())
        p.add_argument("--score", choices=("dot", "additive"), default="dot")
        _sized(p, "--n-enc-layers", None, name="n_layers")
        _sized(p, "--n-dec-layers", None, name="n_layers")
        _sized(p, "--beam-width", 1, "for the evaluation")
        return p
    p = _parser(command, MLMConfig() if command == "mlm" else StreamConfig())
    _sized(p, "--length", None)
    _sized(p, "--n-symbols", None)
    _sized(p, "--n-layers", None)
    if command == "mlm":
        p.add_argument(
            "--causal", action="store_true", help="the left-to-right control"
        )
    return p


def configs(command, p, args):
    """(train config, model config) from the flags, or p.error (exit status 2)."""
    try:
        check_out_path(args.out)
        if command == "translate":
            return _translate(args)
        data = {
            k: getattr(args, k)
            for k in ("length", "n_symbols")
            if getattr(args, k) is not None
        }
        cls = MLMConfig if command == "mlm" else StreamConfig
        cfg = cls(**_optim(args), **data)
        sizes = _sizes(args, n_layers="n_layers")
        model = (mlm_model_config if command == "mlm" else stream_model_config)(
            cfg, **sizes
        )
        return cfg, model
    except (TypeError, ValueError) as err:
        p.error(str(err))


def _train(command, cfg, model, args):
    rng = np.random.default_rng(cfg.seed)
    kw = dict(rng=rng, progress=not args.no_progress, threads=args.threads)
    if command == "translate":
        return train_translation(model, cfg, **kw)
    if command == "mlm":
        return train_mlm(model, cfg, causal=args.causal, **kw)
    return train_stream(model, cfg, **kw)


def _evaluate(command, params, model, cfg, args):
    rng = np.random.default_rng(10**6)
    if command == "translate":
        return evaluate_translation(params, model, rng=rng, beam_width=args.beam_width)
    if command == "mlm":
        acc = accuracy_per_position(params, model, cfg, causal=args.causal, rng=rng)
        half = len(acc) // 2
        return {
            "accuracy_left_half": float(acc[:half].mean()),
            "accuracy_right_half": float(acc[half:].mean()),
        }
    T = cfg.length - 1
    scores = evaluate_stream(
        params, model, cfg, length=4 * cfg.length, n_sink=0, window=None, rng=rng
    )
    return {
        "accuracy_within_length": float(np.nanmean(scores["accuracy"][:T])),
        "accuracy_dense_past_length": float(np.nanmean(scores["accuracy"][T:])),
    }


def _meta(command, cfg, args, wall, cpu, load, scores):
    meta = {
        "steps": cfg.steps,
        "train_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": round(load, 1),
        **scores,
    }
    if command == "mlm":
        meta["causal"] = args.causal
    return meta


def main(command, argv):
    """Run one command; returns the exit status (argparse exits with 2 itself)."""
    p = parser(command)
    args = p.parse_args(argv)
    cfg, model = configs(command, p, args)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        params, history = _train(command, cfg, model, args)
    except FloatingPointError as err:
        p.exit(1, f"{p.prog}: error: {err}; no checkpoint written\n")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scores = _evaluate(command, params, model, cfg, args)
    load = os.getloadavg()[0]
    meta = _meta(command, cfg, args, wall, cpu, load, scores)
    try:
        save_run(args.out, params, model, cfg, history=history, meta=meta)
    except (OSError, ValueError) as err:
        p.exit(1, f"{p.prog}: error: cannot write {args.out}: {err}\n")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
    print(
        f"{command}: {cfg.steps} steps in {wall:.1f} s (CPU {cpu:.1f} s, load "
        f"average {load:.1f}), {shown} -> {args.out}"
    )
    return 0

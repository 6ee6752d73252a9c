"""Training loop: batches from a toy task, hand-written backward, Adam, clipping.

    for each step: batch -> logits -> loss -> dlogits -> model_backward -> clip -> Adam

Nothing here uses automatic differentiation: every gradient comes from the
``*_backward`` functions of the package.

Threads: the matrices of a tiny model are so small that a multi-threaded BLAS spends
its time synchronising threads; on a busy 2-core machine one thread trained 10-20x
faster than two. ``train`` therefore limits BLAS to one thread while it runs (with
threadpoolctl, when it is installed) and restores the setting afterwards.
"""

import contextlib

import numpy as np

from .. import validate as V
from ..transformer import (
    TransformerConfig,
    adam_init,
    adam_step,
    check_model_params,
    clip_grad_norm,
    cross_entropy_backward,
    cross_entropy_forward,
    init_params,
    model_backward,
    model_forward,
)
from .config import TrainConfig
from .schedule import warmup_cosine
from .tasks import Batch, vocab_size


def default_model_config(train_config, **overrides):
    """A 2-layer, 4-head, width-64 model sized for the task's vocabulary and length.

    ``overrides`` are TransformerConfig fields (d_model=32, pos="rope", ...).
    """
    V.instance("train_config", train_config, TrainConfig)
    sizes = dict(d_model=64, n_heads=4, n_layers=2, pos="learned")
    sizes.update(overrides)
    return TransformerConfig(
        vocab_size=vocab_size(train_config.n_symbols),
        max_len=2 * train_config.length,
        **sizes,
    )


def learning_rate(step, cfg):
    """Linear warmup, then cosine decay to lr * final_lr_frac at the last step."""
    step = V.positive_int("step", step, allow_zero=True)
    V.instance("cfg", cfg, TrainConfig)
    sched = dict(warmup=cfg.warmup, steps=cfg.steps, final_lr_frac=cfg.final_lr_frac)
    return warmup_cosine(step, lr=cfg.lr, **sched)


def token_accuracy(logits, batch):
    """Fraction of scored positions whose argmax is the target."""
    V.instance("batch", batch, Batch)
    logits = V.float_array("logits", logits, ndim=3)
    B_N = logits.shape[:2]
    if np.shape(batch.targets) != B_N or np.shape(batch.mask) != B_N:
        raise ValueError(
            f"logits{logits.shape} must be (B, N, V) for batch.targets"
            f"{np.shape(batch.targets)} and batch.mask{np.shape(batch.mask)}"
        )
    hits = (logits.argmax(axis=-1) == batch.targets) & batch.mask  # (B, N)
    return float(hits.sum() / max(1, batch.mask.sum()))


def train_step(params, opt_state, batch, model_config, cfg, step):
    """One update in place; returns (loss, token accuracy) of the batch before it.

    Raises FloatingPointError (and updates nothing) when the loss or a gradient is
    not finite: the run diverged, e.g. because the learning rate is too high.
    """
    V.instance("batch", batch, Batch)
    V.instance("cfg", cfg, TrainConfig)
    lr = learning_rate(step, cfg)
    logits, cache = model_forward(batch.inputs, params, model_config)  # (B, N, V)
    loss, loss_cache = cross_entropy_forward(logits, batch.targets, batch.mask)
    if not np.isfinite(loss):
        raise FloatingPointError(
            f"training diverged: the loss is {float(loss)} at step {step} "
            f"(lr={cfg.lr}); try a smaller learning rate"
        )
    dlogits = cross_entropy_backward(np.ones((), logits.dtype), loss_cache)
    try:
        grads, _ = clip_grad_norm(model_backward(dlogits, cache), cfg.clip)
    except ValueError as err:  # cfg.clip is valid: the gradient is not finite
        raise FloatingPointError(f"training diverged at step {step}: {err}") from None
    hyper = dict(beta1=cfg.beta1, beta2=cfg.beta2, weight_decay=cfg.weight_decay)
    adam_step(params, grads, opt_state, lr=lr, **hyper)
    return float(loss), token_accuracy(logits, batch)


def _check_fits(model_config, cfg):
    V.instance("model_config", model_config, TransformerConfig)
    V.instance("cfg", cfg, TrainConfig)
    if model_config.vocab_size != vocab_size(cfg.n_symbols) or (
        model_config.max_len < 2 * cfg.length
    ):
        raise ValueError(
            f"model_config (vocab_size={model_config.vocab_size}, max_len="
            f"{model_config.max_len}) does not fit the task (vocab_size "
            f"{vocab_size(cfg.n_symbols)}, length {2 * cfg.length})"
        )


def blas_threads(n):
    """Context: at most n BLAS threads (no-op for n None or without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: training still works, maybe slower
        return contextlib.nullcontext()
    return contextlib.nullcontext() if n is None else threadpool_limits(n, "blas")


def _steps(cfg, progress):
    """range(cfg.steps), wrapped in a tqdm progress bar when ``progress``."""
    if not progress:
        return range(cfg.steps)
    from tqdm import tqdm  # lazy: the package itself needs only NumPy

    return tqdm(range(cfg.steps), desc=f"{cfg.task}", mininterval=1.0)


def train(model_config, cfg, *, rng, params=None, progress=True, threads=1):
    """Train on ``cfg.task`` for ``cfg.steps`` steps with Adam.

    Args:
        model_config: a TransformerConfig; vocab_size/max_len must fit the task.
        cfg: a TrainConfig.
        rng: np.random.Generator for the initial parameters and the batches.
        params: start from these (updated in place, once training succeeded)
            instead of a fresh init.
        progress: show a tqdm progress bar.
        threads: BLAS threads while training (None: leave the setting alone).

    Returns:
        params and a history dict of lists: step, loss, accuracy (per batch; every
        batch is fresh, so these are also held-out numbers).

    Raises:
        FloatingPointError: the loss or the gradient stopped being finite (the
            given params are then left as they were).
    """
    work = _start(model_config, cfg, rng, params, progress, threads)
    opt_state = adam_init(work)
    history = {"step": [], "loss": [], "accuracy": []}
    steps = _steps(cfg, progress)
    with blas_threads(threads):
        for step in steps:
            loss, acc = train_step(
                work, opt_state, cfg.batch(rng), model_config, cfg, step
            )
            for key, value in zip(history, (step, loss, acc), strict=True):
                history[key].append(value)
            if progress and step % 25 == 0:
                steps.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", refresh=False)
    if params is None:
        return work, history
    for k, p in params.items():
        p[...] = work[k]
    return params, history


def _start(model_config, cfg, rng, params, progress, threads):
    """Check train's arguments; the params to train (a copy of given ones)."""
    _check_fits(model_config, cfg)
    V.rng_arg(rng)
    V.bool_arg("progress", progress)
    if threads is not None:
        V.positive_int("threads", threads)
    if params is None:
        return init_params(model_config, rng=rng, dtype=np.dtype(cfg.dtype))
    check_model_params(params, model_config)
    for k, p in params.items():
        if not p.flags.writeable:
            raise ValueError(f"params['{k}'] is read-only; train updates it in place")
    return {k: p.copy() for k, p in params.items()}


def evaluate(params, model_config, cfg, *, rng, n_examples=1000):
    """Token and whole-sequence accuracy on fresh examples (teacher forcing)."""
    _check_fits(model_config, cfg)
    V.rng_arg(rng)
    n_examples = V.positive_int("n_examples", n_examples)
    batch = cfg.batch(rng, n_examples)
    logits, _ = model_forward(batch.inputs, params, model_config)
    hits = (logits.argmax(axis=-1) == batch.targets) | ~batch.mask  # (B, N)
    return {
        "token_accuracy": token_accuracy(logits, batch),
        "sequence_accuracy": float(hits.all(axis=1).mean()),
    }

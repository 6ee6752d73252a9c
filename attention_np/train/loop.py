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
import dataclasses
import json

import numpy as np

from .. import validate as V
from ..transformer import (
    TransformerConfig,
    adam_init,
    adam_step,
    clip_grad_norm,
    cross_entropy_backward,
    cross_entropy_forward,
    init_params,
    model_backward,
    model_forward,
)
from .tasks import TASKS, make_batch, vocab_size


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Task and optimiser settings (the model's sizes live in TransformerConfig).

    The learning rate warms up linearly for ``warmup`` steps, then decays along a
    cosine to ``lr * final_lr_frac``.
    """

    task: str = "reversal"
    length: int = 8
    n_symbols: int = 10
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    final_lr_frac: float = 0.1
    clip: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))

    def batch(self, rng, batch_size=None):
        """A batch of this task (B = batch_size or the training batch size)."""
        B = self.batch_size if batch_size is None else batch_size
        return make_batch(
            self.task, rng, B, length=self.length, n_symbols=self.n_symbols
        )


def default_model_config(train_config, **overrides):
    """A 2-layer, 4-head, width-64 model sized for the task's vocabulary and length."""
    sizes = dict(d_model=64, n_heads=4, n_layers=2, pos="learned")
    sizes.update(overrides)
    return TransformerConfig(
        vocab_size=vocab_size(train_config.n_symbols),
        max_len=2 * train_config.length,
        **sizes,
    )


def learning_rate(step, cfg):
    """Linear warmup, then cosine decay to lr * final_lr_frac at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cosine = 0.5 * (1.0 + np.cos(np.pi * min(frac, 1.0)))  # 1 -> 0
    return cfg.lr * (cfg.final_lr_frac + (1.0 - cfg.final_lr_frac) * cosine)


def token_accuracy(logits, batch):
    """Fraction of scored positions whose argmax is the target."""
    hits = (logits.argmax(axis=-1) == batch.targets) & batch.mask  # (B, N)
    return float(hits.sum() / max(1, batch.mask.sum()))


def train_step(params, opt_state, batch, model_config, cfg, step):
    """One update in place; returns (loss, token accuracy) of the batch before it."""
    logits, cache = model_forward(batch.inputs, params, model_config)  # (B, N, V)
    loss, loss_cache = cross_entropy_forward(logits, batch.targets, batch.mask)
    dlogits = cross_entropy_backward(np.ones((), logits.dtype), loss_cache)
    grads, _ = clip_grad_norm(model_backward(dlogits, cache), cfg.clip)
    adam_step(
        params,
        grads,
        opt_state,
        lr=learning_rate(step, cfg),
        weight_decay=cfg.weight_decay,
    )
    return float(loss), token_accuracy(logits, batch)


def _check_fits(model_config, cfg):
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


def train(model_config, cfg, *, rng, params=None, progress=True, threads=1):
    """Train on ``cfg.task`` for ``cfg.steps`` steps with Adam.

    Args:
        model_config: a TransformerConfig; vocab_size/max_len must fit the task.
        cfg: a TrainConfig.
        rng: np.random.Generator for the initial parameters and the batches.
        params: start from these (updated in place) instead of a fresh init.
        progress: show a tqdm progress bar.
        threads: BLAS threads while training (None: leave the setting alone).

    Returns:
        params and a history dict of lists: step, loss, accuracy (per batch; every
        batch is fresh, so these are also held-out numbers).
    """
    _check_fits(model_config, cfg)
    progress = V.bool_arg("progress", progress)
    if params is None:
        params = init_params(model_config, rng=rng, dtype=np.dtype(cfg.dtype))
    opt_state = adam_init(params)
    history = {"step": [], "loss": [], "accuracy": []}
    steps = range(cfg.steps)
    if progress:
        from tqdm import tqdm  # lazy: the package itself needs only NumPy

        steps = tqdm(steps, desc=f"{cfg.task}", mininterval=1.0)
    with blas_threads(threads):
        for step in steps:
            batch = cfg.batch(rng)
            loss, acc = train_step(params, opt_state, batch, model_config, cfg, step)
            for key, value in zip(history, (step, loss, acc), strict=True):
                history[key].append(value)
            if progress and step % 25 == 0:
                steps.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", refresh=False)
    return params, history


def evaluate(params, model_config, cfg, *, rng, n_examples=1000):
    """Token and whole-sequence accuracy on fresh examples (teacher forcing)."""
    batch = cfg.batch(rng, n_examples)
    logits, _ = model_forward(batch.inputs, params, model_config)
    hits = (logits.argmax(axis=-1) == batch.targets) | ~batch.mask  # (B, N)
    return {
        "token_accuracy": token_accuracy(logits, batch),
        "sequence_accuracy": float(hits.all(axis=1).mean()),
    }

"""Optimiser settings and one update, shared by the encoder-decoder and MLM loops.

    lr_t = lr (t + 1) / warmup                                  t < warmup
    lr_t = lr (r + (1 - r) (1 + cos(pi (t - warmup) / (T - warmup))) / 2)   after
    grads <- grads * min(1, clip / ||grads||);  Adam(W) step with lr_t

``learning_rate`` of the decoder-only loop is ``warmup_cosine`` too.
"""

import dataclasses

import numpy as np

from .. import validate as V
from ..transformer import adam_step, clip_grad_norm
from ..transformer.config import JsonConfig

DTYPES = ("float32", "float64")


def warmup_cosine(step, *, lr, warmup, steps, final_lr_frac):
    """Linear warm-up over ``warmup`` steps, then cosine decay to lr * final_lr_frac
    at step ``steps``."""
    step = V.positive_int("step", step, allow_zero=True)
    lr = V.real("lr", lr, lo=0.0, lo_open=True)
    warmup = V.positive_int("warmup", warmup, allow_zero=True)
    steps = V.positive_int("steps", steps)
    final_lr_frac = V.real("final_lr_frac", final_lr_frac, lo=0.0, hi=1.0)
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    cosine = 0.5 * (1.0 + np.cos(np.pi * min(frac, 1.0)))  # 1 -> 0
    return lr * (final_lr_frac + (1.0 - final_lr_frac) * cosine)


@dataclasses.dataclass(frozen=True)
class OptimConfig(JsonConfig):
    """Steps, batch size, Adam(W) with warm-up + cosine decay, clipping, dtype, seed.

    Every field is checked when the config is made; a bad one raises
    TypeError/ValueError naming it.
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50
    final_lr_frac: float = 0.1
    clip: float = 1.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        V.choice("dtype", self.dtype, DTYPES)
        for name in ("steps", "batch_size"):
            self._set(name, V.positive_int(name, getattr(self, name)))
        for name in ("warmup", "seed"):
            self._set(name, V.positive_int(name, getattr(self, name), allow_zero=True))
        for name in ("lr", "clip"):
            self._set(name, V.real(name, getattr(self, name), lo=0.0, lo_open=True))
        self._set("weight_decay", V.real("weight_decay", self.weight_decay, lo=0.0))
        frac = V.real("final_lr_frac", self.final_lr_frac, lo=0.0, hi=1.0)
        self._set("final_lr_frac", frac)
        for name in ("beta1", "beta2"):
            value = V.real(name, getattr(self, name), lo=0.0, hi=1.0, hi_open=True)
            self._set(name, value)

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # frozen: normalise once, here

    def learning_rate(self, step):
        """The learning rate of step ``step`` (see the module docstring)."""
        return warmup_cosine(
            step,
            lr=self.lr,
            warmup=self.warmup,
            steps=self.steps,
            final_lr_frac=self.final_lr_frac,
        )


def optimizer_update(params, grads, opt_state, cfg, step):
    """In place: clip ``grads`` to cfg.clip, one Adam(W) step; returns the norm.

    Raises FloatingPointError (and updates nothing) when a gradient is not finite.
    """
    V.instance("cfg", cfg, OptimConfig)
    try:
        grads, norm = clip_grad_norm(grads, cfg.clip)
    except ValueError as err:  # cfg.clip is valid: the gradient is not finite
        raise FloatingPointError(f"training diverged at step {step}: {err}") from None
    hyper = dict(beta1=cfg.beta1, beta2=cfg.beta2, weight_decay=cfg.weight_decay)
    adam_step(params, grads, opt_state, lr=cfg.learning_rate(step), **hyper)
    return norm

"""Masked-token prediction on palindromes: where a blank needs the right-hand side.

Each example is a palindrome of 2L symbols, x_0 .. x_{L-1} x_{L-1} .. x_0 (random
x from 0 .. S-1). BERT's recipe (Devlin et al. 2019) picks each position with
probability ``mask_prob`` (at least one per example); a picked token becomes MASK
(80%), a random symbol (10%) or stays (10%), and only picked positions count in the
loss. The blank at position i is recoverable from its mirror 2L-1-i alone: in the
first half the mirror lies to the *right*, which a causal encoder cannot see (it
guesses, 1/S), while a bidirectional one can. In the second half both can.

Shape legend: B batch, L half length, N = 2L positions, S symbols, V = S + 1.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..transformer import (
    TransformerConfig,
    adam_init,
    check_model_params,
    cross_entropy_backward,
    cross_entropy_forward,
    encoder_model_backward,
    encoder_model_forward,
    init_params,
)
from .loop import blas_threads
from .schedule import OptimConfig, optimizer_update
from .seq2seq import progress_range


@dataclasses.dataclass(frozen=True)
class MLMConfig(OptimConfig):
    """The palindrome task (half length L, S symbols, mask_prob) and the optimiser."""

    length: int = 6
    n_symbols: int = 10
    mask_prob: float = 0.15
    steps: int = 800
    batch_size: int = 128
    lr: float = 1e-2
    warmup: int = 30

    def __post_init__(self):
        super().__post_init__()
        for name in ("length", "n_symbols"):
            self._set(name, V.positive_int(name, getattr(self, name)))
        p = V.real("mask_prob", self.mask_prob, lo=0.0, hi=1.0, lo_open=True)
        self._set("mask_prob", p)

    @property
    def mask_id(self):
        """The MASK token: one past the symbols."""
        return self.n_symbols


class MLMBatch(NamedTuple):
    """inputs (B, N) with blanks, targets (B, N) the palindrome, mask (B, N) True =
    a picked position (scored)."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def palindromes(rng, batch_size, *, length, n_symbols):
    """(B, 2L) palindromes of random symbols."""
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    x = rng.integers(0, V.positive_int("n_symbols", n_symbols), size=(B, length))
    return np.concatenate([x, x[:, ::-1]], axis=1)  # (B, 2L)


def mlm_batch(rng, cfg, batch_size=None):
    """A training batch with BERT's 80/10/10 corruption of the picked positions."""
    V.instance("cfg", cfg, MLMConfig)
    B = cfg.batch_size if batch_size is None else batch_size
    seq = palindromes(rng, B, length=cfg.length, n_symbols=cfg.n_symbols)  # (B, N)
    picked = rng.random(seq.shape) < cfg.mask_prob  # (B, N)
    none = ~picked.any(axis=1)  # at least one blank per example
    picked[none, rng.integers(0, seq.shape[1], size=none.sum())] = True
    how = rng.random(seq.shape)  # (B, N): < 0.8 MASK, < 0.9 random, else kept
    noise = rng.integers(0, cfg.n_symbols, size=seq.shape)
    inputs = np.where(picked & (how < 0.8), cfg.mask_id, seq)
    inputs = np.where(picked & (how >= 0.8) & (how < 0.9), noise, inputs)
    return MLMBatch(inputs, seq, picked)


def mlm_model_config(cfg, **overrides):
    """A 2-layer, 4-head, width-32 TransformerConfig sized for the task."""
    V.instance("cfg", cfg, MLMConfig)
    sizes = dict(d_model=32, n_heads=4, n_layers=2, pos="learned")
    sizes.update(overrides)
    return TransformerConfig(
        vocab_size=cfg.n_symbols + 1, max_len=2 * cfg.length, **sizes
    )


def _check(model_config, cfg, causal, align):
    V.instance("model_config", model_config, TransformerConfig)
    V.instance("cfg", cfg, MLMConfig)
    V_, T = model_config.vocab_size, model_config.max_len
    if V_ != cfg.n_symbols + 1 or T < 2 * cfg.length:
        raise ValueError(
            f"model_config (vocab_size={V_}, max_len={T}) does not fit the task "
            f"(vocab_size {cfg.n_symbols + 1}, length {2 * cfg.length})"
        )
    V.align_arg(align)
    return V.causal_arg(causal)


def train_mlm(
    model_config, cfg, *, causal, align="top_left", rng, progress=True, threads=1
):
    """Train a fresh encoder (bidirectional, or causal as the control) on the task.

    ``align`` is accepted for the package's one vocabulary of causality; with N == M
    keys and queries both alignments are the same mask.

    Returns:
        params and a history dict of lists: step, loss, accuracy (at the picked
        positions of each fresh batch).
    """
    causal = _check(model_config, cfg, causal, align)
    V.rng_arg(rng)
    V.bool_arg("progress", progress)
    params = init_params(model_config, rng=rng, dtype=np.dtype(cfg.dtype))
    opt_state = adam_init(params)
    history = {"step": [], "loss": [], "accuracy": []}
    desc = "mlm (causal)" if causal else "mlm"
    with blas_threads(threads):
        for step in progress_range(cfg.steps, desc, progress):
            batch = mlm_batch(rng, cfg)
            logits, cache = encoder_model_forward(
                batch.inputs, params, model_config, causal=causal, align=align
            )
            loss, lc = cross_entropy_forward(logits, batch.targets, batch.mask)
            if not np.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {step}")
            dlogits = cross_entropy_backward(np.ones((), logits.dtype), lc)
            grads = encoder_model_backward(dlogits, cache)
            optimizer_update(params, grads, opt_state, cfg, step)
            hits = (logits.argmax(-1) == batch.targets) & batch.mask
            acc = hits.sum() / batch.mask.sum()
            for key, value in zip(history, (step, loss, acc), strict=True):
                history[key].append(float(value))
    return params, history


def accuracy_per_position(
    params, model_config, cfg, *, causal, align="top_left", rng, n_examples=500
):
    """(N,) accuracy at position i when i is the only blank (a MASK), every i."""
    causal = _check(model_config, cfg, causal, align)
    check_model_params(params, model_config)
    seq = palindromes(rng, n_examples, length=cfg.length, n_symbols=cfg.n_symbols)
    N = seq.shape[1]
    acc = np.zeros(N)
    for i in range(N):
        inputs = seq.copy()
        inputs[:, i] = cfg.mask_id
        logits, _ = encoder_model_forward(
            inputs, params, model_config, causal=causal, align=align
        )
        acc[i] = np.mean(logits[:, i].argmax(-1) == seq[:, i])
    return acc

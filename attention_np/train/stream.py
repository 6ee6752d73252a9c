"""A stream task for the attention-sink experiment: Fibonacci digits after a BOS.

    BOS x_0 x_1 x_2 ...   x_0, x_1 random in 0 .. S-1,  x_t = (x_{t-1} + x_{t-2}) mod S

Every token after the first two is fixed by the two before it, so a model needs only
a short window of context, and a window-only cache could in principle predict as
well as a full one. A decoder-only RoPE model is trained on streams of ``length``
tokens and then read streams several times longer through an evicting cache
(``transformer.streaming``): window-only, or window plus the first tokens kept as
attention sinks (StreamingLLM). BOS is token S; the vocabulary has S + 1 tokens.

Shape legend: B batch, T stream length (BOS included), S symbols.
"""

import dataclasses

import numpy as np

from .. import validate as V
from ..transformer import (
    TransformerConfig,
    adam_init,
    cross_entropy_backward,
    cross_entropy_forward,
    init_params,
    model_backward,
    model_forward,
    read_stream,
)
from .loop import blas_threads
from .schedule import OptimConfig, optimizer_update
from .seq2seq import progress_range


@dataclasses.dataclass(frozen=True)
class StreamConfig(OptimConfig):
    """Streams of ``length`` tokens (BOS included) over ``n_symbols`` digits."""

    length: int = 24
    n_symbols: int = 10
    steps: int = 800
    batch_size: int = 32
    warmup: int = 30

    def __post_init__(self):
        super().__post_init__()
        for name in ("length", "n_symbols"):
            self._set(name, V.positive_int(name, getattr(self, name)))
        if self.length < 4:
            raise ValueError(
                f"length must be >= 4 (BOS and three digits), got {self.length}"
            )


def fibonacci_streams(rng, batch_size, *, length, n_symbols):
    """(B, length) streams: BOS, then Fibonacci digits mod n_symbols."""
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    T, S = V.positive_int("length", length), V.positive_int("n_symbols", n_symbols)
    if T < 3:
        raise ValueError(f"length must be >= 3 (BOS and two seed digits), got {T}")
    x = np.zeros((B, T), dtype=np.int64)
    x[:, 0] = S  # BOS
    x[:, 1:3] = rng.integers(0, S, size=(B, 2))  # the two seed digits
    for t in range(3, T):
        x[:, t] = (x[:, t - 1] + x[:, t - 2]) % S
    return x


def predictable(shape):
    """(B, T) True where the *next* token is fixed by the stream so far (t >= 2)."""
    B, T = shape
    return np.broadcast_to(np.arange(T) >= 2, (B, T))


def stream_model_config(cfg, **overrides):
    """A 2-layer, 4-head, width-32 RoPE decoder for the task."""
    V.instance("cfg", cfg, StreamConfig)
    sizes = dict(d_model=32, n_heads=4, n_layers=2, pos="rope")
    sizes.update(overrides)
    return TransformerConfig(vocab_size=cfg.n_symbols + 1, max_len=cfg.length, **sizes)


def train_stream(model_config, cfg, *, rng, progress=True, threads=1):
    """Train a fresh decoder on next-token prediction over training-length streams.

    Returns:
        params and a history dict of lists: step, loss, accuracy (predictable
        positions of each fresh batch).
    """
    V.instance("model_config", model_config, TransformerConfig)
    V.instance("cfg", cfg, StreamConfig)
    V.rng_arg(rng)
    params = init_params(model_config, rng=rng, dtype=np.dtype(cfg.dtype))
    opt_state = adam_init(params)
    history = {"step": [], "loss": [], "accuracy": []}
    with blas_threads(threads):
        for step in progress_range(cfg.steps, "stream", progress):
            x = fibonacci_streams(
                rng, cfg.batch_size, length=cfg.length, n_symbols=cfg.n_symbols
            )
            inputs, targets = x[:, :-1], x[:, 1:]
            mask = predictable(inputs.shape)
            logits, cache = model_forward(inputs, params, model_config)
            loss, lc = cross_entropy_forward(logits, targets, mask)
            if not np.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {step}")
            grads = model_backward(
                cross_entropy_backward(np.ones((), logits.dtype), lc), cache
            )
            optimizer_update(params, grads, opt_state, cfg, step)
            acc = ((logits.argmax(-1) == targets) & mask).sum() / mask.sum()
            for key, value in zip(history, (step, loss, acc), strict=True):
                history[key].append(float(value))
    return params, history


def evaluate_stream(
    params, model_config, cfg, *, length, n_sink, window, rng, n_examples=200
):
    """Next-token loss and accuracy per position of ``length``-token streams read
    through an evicting cache: {"loss": (T-1,), "accuracy": (T-1,)} (NaN where the
    next token is not predictable)."""
    V.instance("cfg", cfg, StreamConfig)
    x = fibonacci_streams(rng, n_examples, length=length, n_symbols=cfg.n_symbols)
    logits, _ = read_stream(
        x[:, :-1], params, model_config, n_sink=n_sink, window=window
    )
    targets = x[:, 1:]
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0].mean(axis=0)
    acc = (logits.argmax(-1) == targets).mean(axis=0)
    scored = predictable(targets.shape)[0]
    return {
        "loss": np.where(scored, nll, np.nan),
        "accuracy": np.where(scored, acc, np.nan),
    }

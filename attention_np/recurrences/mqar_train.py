"""Training the MQAR model: Adam, a warm-up/cosine schedule, evaluation.

    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    p <- p - lr_t (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

(Kingma & Ba 2015; the same update as ``transformer.optim.adam_step``), gradients
clipped to a global norm of 1. Each step draws a fresh batch, so there is no
training set to overfit; the accuracy is measured on held-out batches.
"""

import numpy as np

from .. import validate as V
from .mqar import mqar_batch
from .mqar_model import (
    init_mqar_params,
    masked_cross_entropy,
    mqar_model_backward,
    mqar_model_forward,
)


def _check_update(params, grads):
    """grads: a float array for every key of params, of its dtype and shape (an
    in-place update would silently cast a float32 gradient into a float64 param)."""
    V.instance("params", params, dict)
    V.grads_like(grads, params)


def adam_update(params, grads, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """In place: one Adam step on the flat dicts; ``state`` starts as {}."""
    _check_update(params, grads)
    t = state["t"] = state.get("t", 0) + 1
    for k, g in grads.items():
        m = state.setdefault("m." + k, np.zeros_like(g))
        v = state.setdefault("v." + k, np.zeros_like(g))
        m += (1.0 - beta1) * (g - m)
        v += (1.0 - beta2) * (g * g - v)
        params[k] -= lr * (m / (1.0 - beta1**t)) / (np.sqrt(v / (1.0 - beta2**t)) + eps)


def learning_rate(step, steps, lr, warmup=0.1):
    """Linear warm-up over the first ``warmup`` of the steps, then cosine to 0."""
    w = max(1, int(warmup * steps))
    if step < w:
        return lr * (step + 1) / w
    return 0.5 * lr * (1.0 + np.cos(np.pi * (step - w) / max(1, steps - w)))


def clip_by_global_norm(grads, max_norm=1.0):
    """Scale every gradient by min(1, max_norm / global norm)."""
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
    scale = min(1.0, max_norm / (norm + 1e-12))
    return {k: g * scale for k, g in grads.items()}


def mqar_seq_len(n_pairs, min_len=64):
    """Sequence length for n pairs: max(min_len, 4 n) (pairs, then room to query)."""
    return max(min_len, 4 * n_pairs)


def train_step(params, state, batch, model, *, lr):
    """One Adam step on an MQARBatch (in place); returns the loss."""
    logits, cache = mqar_model_forward(batch.ids, params, batch.mask, **model)
    loss, dlogits, _ = masked_cross_entropy(logits, batch.targets, batch.mask)
    grads = clip_by_global_norm(mqar_model_backward(dlogits, cache))
    adam_update(params, grads, state, lr=lr)
    return loss


def evaluate_mqar(params, model, pairs, *, vocab_size, batch, rng, batches=4):
    """{n: accuracy at the queries} over fresh sequences with n pairs."""
    acc = {}
    for n in pairs:
        correct = 0.0
        for _ in range(batches):
            b = mqar_batch(n, seq_len=mqar_seq_len(n), vocab_size=vocab_size,
                           batch=batch, rng=rng)  # fmt: skip
            logits, _ = mqar_model_forward(b.ids, params, b.mask, **model)
            correct += masked_cross_entropy(logits, b.targets, b.mask)[2]
        acc[n] = correct / batches
    return acc


def train_mqar(pairs, model, *, steps, lr, rng, d_model, vocab_size, batch=32,
               dtype=np.float32, progress=None):  # fmt: skip
    """Train a fresh MQAR model on a mixture of pair counts (Zoology's protocol).

    Args:
        pairs: pair counts; each step draws one (sequences of mqar_seq_len(n)).
        model: mixer, n_heads (and n_layers, form, chunk_size) of the model.
        steps, lr: Adam steps and peak learning rate (warm-up, cosine).
        rng: Generator.  d_model, vocab_size, batch: sizes.
        progress: optional callable, called with the step number after each step.

    Returns:
        params, losses (steps,), {n: held-out accuracy}.
    """
    V.positive_int("steps", steps)
    keys = {k: model[k] for k in ("mixer", "n_heads", "n_layers") if k in model}
    params = init_mqar_params(vocab_size, d_model, rng=rng, dtype=dtype, **keys)
    state, losses = {}, np.empty(steps)
    for step in range(steps):
        n = int(rng.choice(pairs))
        b = mqar_batch(n, seq_len=mqar_seq_len(n), vocab_size=vocab_size,
                       batch=batch, rng=rng)  # fmt: skip
        losses[step] = train_step(params, state, b, model,
                                  lr=learning_rate(step, steps, lr))  # fmt: skip
        if progress is not None:
            progress(step)
    acc = evaluate_mqar(params, model, pairs, vocab_size=vocab_size, batch=batch,
                        rng=rng)  # fmt: skip
    return params, losses, acc

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


def adam_update(params, grads, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """In place: one Adam step on the flat dicts; ``state`` starts as {}."""
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


def _clip(grads, max_norm=1.0):
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
    scale = min(1.0, max_norm / (norm + 1e-12))
    return {k: g * scale for k, g in grads.items()}


def evaluate(params, task, model, *, rng, batches=4):
    """Accuracy at the query positions over fresh batches of ``task``."""
    correct = 0.0
    for _ in range(batches):
        b = mqar_batch(**task, rng=rng)
        logits, _ = mqar_model_forward(b.ids, params, **model)
        correct += masked_cross_entropy(logits, b.targets, b.mask)[2]
    return correct / batches


def train_mqar(
    task, model, *, steps, lr, rng, d_model, dtype=np.float32, progress=None
):
    """Train a fresh MQAR model; returns (params, losses, held-out accuracy).

    Args:
        task: keyword arguments of ``mqar_batch`` (n_pairs, seq_len, vocab_size,
            batch).  model: mixer, n_heads (and n_layers, form, chunk_size).
        steps, lr: Adam steps and peak learning rate.  rng: Generator.
        d_model: width D.  progress: an optional tqdm-like bar to ``update(1)``.
    """
    V.positive_int("steps", steps)
    params = init_mqar_params(
        task["vocab_size"],
        d_model,
        rng=rng,
        dtype=dtype,
        **{k: model[k] for k in ("mixer", "n_heads")},
    )
    state, losses = {}, []
    for step in range(steps):
        b = mqar_batch(**task, rng=rng)
        logits, cache = mqar_model_forward(b.ids, params, **model)
        loss, dlogits, _ = masked_cross_entropy(logits, b.targets, b.mask)
        grads = _clip(mqar_model_backward(dlogits, cache))
        adam_update(params, grads, state, lr=learning_rate(step, steps, lr))
        losses.append(loss)
        if progress is not None:
            progress.update(1)
    return params, np.array(losses), evaluate(params, task, model, rng=rng)

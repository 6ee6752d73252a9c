"""The previous-token task: a relative-position head, learned with RoPE or not at all.

Tokens are random symbols; the target at position i is the token at i - 1 (position
0 has none and is not scored). The model is one causal attention layer, one head:

    x = onehot(tokens)                         (B, N, S)   S symbols = model width
    logits = mha_forward(x, x, positions=...)  (B, N, S)   cross-entropy on i >= 1

With RoPE (``positions=0..N-1``) the head can learn a score that depends on the
offset j - i and peaks at j = i - 1. Without positions, causal attention sees the
earlier tokens as an unordered bag: even a perfect reader can only guess among them,
and ``position_blind_accuracy`` gives the best accuracy any such reader can reach.
Trained with the package's ``mha_backward``, cross-entropy backward and Adam.

Shape legend: B batch, N positions, S symbols (= model width D = head width d).
"""

import numpy as np

from .. import validate as V
from ..multihead import init_mha_params, mha_backward, mha_forward
from ..transformer.loss import cross_entropy_backward, cross_entropy_forward
from ..transformer.optim import adam_init, adam_step
from .loop import blas_threads
from .tasks import Batch
from .toy_heads import ToyRun


def previous_token_batch(rng, batch_size, *, length, n_symbols):
    """Random tokens; targets[:, i] = inputs[:, i - 1]; mask False at position 0.

    Returns:
        Batch: inputs (B, N), targets (B, N), mask (B, N) ints and bools.
    """
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    N = V.positive_int("length", length)
    S = V.positive_int("n_symbols", n_symbols)
    tokens = rng.integers(0, S, size=(B, N))  # (B, N)
    targets = np.concatenate([tokens[:, :1], tokens[:, :-1]], axis=1)  # (B, N)
    mask = np.ones((B, N), dtype=bool)
    mask[:, 0] = False  # position 0 has no previous token
    return Batch(tokens, targets, mask)


def previous_token_logits(params, tokens, *, rope, offset=0):
    """Run the one-layer model: logits (B, N, S) and the head's weights (B, N, N).

    ``rope``: rotate queries and keys by their positions ``offset .. offset + N - 1``
    (``offset`` shifts every position; RoPE scores see only differences).
    """
    V.bool_arg("rope", rope)
    V.instance("params", params, dict)
    if "W_q" not in params:
        raise ValueError("params: missing key 'W_q' (use train_previous_token's)")
    S = params["W_q"].shape[0]  # model width = number of symbols
    tokens = V.int_array("tokens", tokens, ndim=2, lo=0, hi=S)
    offset = V.positive_int("offset", offset, allow_zero=True)
    x = np.eye(S)[tokens]  # (B, N, S) one-hot tokens
    positions = offset + np.arange(tokens.shape[1]) if rope else None
    out, cache = mha_forward(x, x, params, n_heads=1, causal=True, positions=positions)
    return out, cache.weights[:, 0]


def train_previous_token(
    *, rope, rng, steps=200, batch_size=32, length=12, n_symbols=16, lr=0.05
):
    """Train the one-layer model on the previous-token task with Adam.

    Returns:
        ToyRun(params, losses (steps,)), the cross-entropy at every step.
    """
    V.bool_arg("rope", rope)
    V.rng_arg(rng)
    steps = V.positive_int("steps", steps)
    lr = V.real("lr", lr, lo=0.0, lo_open=True)
    S = V.positive_int("n_symbols", n_symbols)
    if rope and S % 2:
        raise ValueError(f"n_symbols={S} must be even with rope: RoPE rotates pairs")
    params = init_mha_params(S, 1, rng=rng)
    state = adam_init(params)
    losses = np.empty(steps)
    positions = np.arange(V.positive_int("length", length)) if rope else None
    with blas_threads(1):
        for step in range(steps):
            batch = previous_token_batch(rng, batch_size, length=length, n_symbols=S)
            x = np.eye(S)[batch.inputs]  # (B, N, S)
            out, cache = mha_forward(
                x, x, params, n_heads=1, causal=True, positions=positions
            )
            loss, loss_cache = cross_entropy_forward(out, batch.targets, batch.mask)
            losses[step] = loss
            _, _, grads = mha_backward(cross_entropy_backward(1.0, loss_cache), cache)
            adam_step(params, grads, state, lr=lr)
    return ToyRun(params, losses)


def accuracy_per_position(logits, batch):
    """(N - 1,) fraction of correct argmax predictions at positions 1 .. N - 1."""
    logits = V.float_array("logits", logits, ndim=3)
    V.instance("batch", batch, Batch)
    if logits.shape[:2] != batch.targets.shape:
        raise ValueError(
            f"logits{logits.shape} must be (B, N, S) for targets{batch.targets.shape}"
        )
    correct = logits.argmax(axis=-1) == batch.targets  # (B, N)
    return correct[:, 1:].mean(axis=0)


def position_blind_accuracy(tokens, *, n_symbols):
    """(N - 1,) best expected accuracy of a reader blind to order, per position.

    At position i such a reader knows the bag of the i earlier tokens (and its own
    token), not their order, so each of them is equally likely to be the previous
    one: the best guess is the most frequent, right with probability
    max_t count_t / i. Averaged over the given sequences.
    """
    S = V.positive_int("n_symbols", n_symbols)
    tokens = V.int_array("tokens", tokens, ndim=2, lo=0, hi=S)
    B, N = tokens.shape
    counts = np.zeros((B, S))  # (B, S) how often each symbol occurred so far
    best = np.empty(max(N - 1, 0))
    for i in range(1, N):
        counts[np.arange(B), tokens[:, i - 1]] += 1.0  # the bag of tokens 0 .. i-1
        best[i - 1] = np.mean(counts.max(axis=1) / i)
    return best

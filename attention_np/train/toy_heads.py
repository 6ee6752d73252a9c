"""The two-job task: one attention row cannot fetch two tokens, two heads can.

Every token of a sequence carries random content c_j (n_content numbers), a flag bit
(set on one random position f per sequence) and a one-hot position code:

    x_j = [ c_j | flag_j | onehot(j) ]                  width D = n_content + 1 + N
    y_i = [ c_{i-1} | c_f ]                             (position 0: c_0 | c_f)

so every query has two jobs: read the previous token (found by position) and read
the flagged token (found by content). One head outputs one weighted average of the
values per query, so it must split a single distribution between the two tokens;
two heads can give each job its own distribution, and W_o puts each head's output
where its job is scored. Models are ``mha_forward`` layers trained with the package's
``mha_backward`` and Adam on the squared error of the first 2 * n_content outputs.

Shape legend: B batch, N positions, D model width, H heads, k = n_content.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..multihead import init_mha_params, mha_backward, mha_forward
from ..transformer.optim import adam_init, adam_step
from .loop import blas_threads


class TwoJobBatch(NamedTuple):
    """x (B, N, D) inputs, y (B, N, 2k) targets, flag (B,) flagged positions."""

    x: np.ndarray
    y: np.ndarray
    flag: np.ndarray


class ToyRun(NamedTuple):
    """A trained toy model: its params and the training loss at every step."""

    params: dict
    losses: np.ndarray


def two_job_batch(rng, batch_size, *, length, n_content):
    """A fresh batch of the two-job task (module docstring), from ``rng``.

    Returns:
        TwoJobBatch: x (B, N, k + 1 + N), y (B, N, 2k), flag (B,).
    """
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    N = V.positive_int("length", length)
    k = V.positive_int("n_content", n_content)
    content = rng.standard_normal((B, N, k))  # (B, N, k) c_j, unit variance
    flag = rng.integers(0, N, size=B)  # (B,) one flagged position per sequence
    x = np.zeros((B, N, k + 1 + N))  # (B, N, D)
    x[..., :k] = content
    x[np.arange(B), flag, k] = 1.0
    x[:, np.arange(N), k + 1 + np.arange(N)] = 1.0  # one-hot position codes
    prev = np.maximum(np.arange(N) - 1, 0)  # (N,) position 0 reads itself
    flagged = np.broadcast_to(content[np.arange(B), flag][:, None], (B, N, k))
    y = np.concatenate([content[:, prev], flagged], axis=-1)  # (B, N, 2k)
    return TwoJobBatch(x, y, flag)


def _check_batch(batch):
    V.instance("batch", batch, TwoJobBatch)
    x = V.float_array("batch.x", batch.x, ndim=3)
    y = V.float_array("batch.y", batch.y, ndim=3)
    if y.shape[:2] != x.shape[:2] or y.shape[-1] % 2 or y.shape[-1] > x.shape[-1]:
        raise ValueError(
            f"batch.y{y.shape} must be (B, N, 2k) with 2k <= D for batch.x{x.shape}"
        )
    return x, y


def train_two_job(
    n_heads, *, rng, steps=400, batch_size=32, length=8, n_content=3, lr=0.02
):
    """Train a multi-head attention layer on the two-job task with Adam.

    Loss: mean of (out[..., :2k] - y)^2, which is about the relative squared error
    averaged over the two jobs (contents have unit variance). Each step draws a new
    batch from ``rng``; BLAS runs on one thread, so a seed gives the same run.

    Returns:
        ToyRun(params, losses (steps,)).
    """
    H = V.positive_int("n_heads", n_heads)
    V.rng_arg(rng)
    steps = V.positive_int("steps", steps)
    lr = V.real("lr", lr, lo=0.0, lo_open=True)
    k = V.positive_int("n_content", n_content)
    D = k + 1 + V.positive_int("length", length)
    params = init_mha_params(D, H, rng=rng)  # checks that H divides D
    state = adam_init(params)
    losses = np.empty(steps)
    with blas_threads(1):
        for step in range(steps):
            x, y, _ = two_job_batch(rng, batch_size, length=length, n_content=k)
            out, cache = mha_forward(x, x, params, n_heads=H, causal=False)
            err = out[..., : 2 * k] - y  # (B, N, 2k)
            losses[step] = np.mean(err**2)
            dout = np.zeros_like(out)  # (B, N, D) unscored outputs: no gradient
            dout[..., : 2 * k] = 2.0 * err / err.size  # d mean(err^2) / d out
            _, _, grads = mha_backward(dout, cache)
            adam_step(params, grads, state, lr=lr)
    return ToyRun(params, losses)


def _without_head(params, h, d):
    """A copy of params with head h's rows of W_o set to 0 (its output unused)."""
    dropped = dict(params)
    dropped["W_o"] = params["W_o"].copy()
    dropped["W_o"][h * d : (h + 1) * d] = 0.0
    return dropped


def two_job_errors(params, batch, *, n_heads, drop_head=None):
    """(2,) relative squared error of each job: mean (out - y)^2 / mean y^2.

    ``drop_head=h`` zeroes head h's rows of W_o first: the layer then runs without
    that head's output, which shows which job each head serves.
    """
    x, y = _check_batch(batch)
    H = V.positive_int("n_heads", n_heads)
    if drop_head is not None:
        drop_head = V.positive_int("drop_head", drop_head, allow_zero=True)
        if drop_head >= H:
            raise ValueError(f"drop_head={drop_head} must be < n_heads={H}")
        params = _without_head(params, drop_head, x.shape[-1] // H)
    out, _ = mha_forward(x, x, params, n_heads=H, causal=False)
    k = y.shape[-1] // 2
    err = (out[..., : 2 * k] - y) ** 2  # (B, N, 2k)
    jobs = (slice(0, k), slice(k, 2 * k))
    return np.array([np.mean(err[..., j]) / np.mean(y[..., j] ** 2) for j in jobs])


def head_job_shares(params, batch, *, n_heads):
    """(H, 2) share of each job's output that comes through each head's W_o rows.

    out = sum_h o_h W_o[rows of h] + b_o, so head h's contribution is out minus the
    output with those rows zeroed. Share[h, j] = |contribution of h to job j|^2
    summed over the batch, divided by the sum over heads: each column sums to 1.
    """
    x, y = _check_batch(batch)
    H = V.positive_int("n_heads", n_heads)
    k, d = y.shape[-1] // 2, x.shape[-1] // H
    out, _ = mha_forward(x, x, params, n_heads=H, causal=False)  # (B, N, D)
    energy = np.empty((H, 2))
    for h in range(H):
        without, _ = mha_forward(
            x, x, _without_head(params, h, d), n_heads=H, causal=False
        )
        part = out - without  # (B, N, D) o_h W_o[rows of h]
        energy[h] = [np.sum(part[..., :k] ** 2), np.sum(part[..., k : 2 * k] ** 2)]
    return energy / energy.sum(axis=0, keepdims=True)

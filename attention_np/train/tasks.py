"""Toy sequence tasks, generated on the fly from an explicit rng.

Every example is ``x_0 .. x_{l-1} SEP y_0 .. y_{l-1}`` with random symbols x from
0 .. S-1 and the separator SEP = S (so the vocabulary has S + 1 tokens):

    reversal:  y = x_{l-1} .. x_0, l = L     the answer to query position L + i sits at
                                             position L - 1 - i: an anti-diagonal
    copy:      y = x_0 .. x_{l-1}, l random  l varies between examples (padded with SEP
               in L//2 .. L, x distinct      to 2L + 1 tokens), so no fixed offset
                                             works: the model must find the previous
                                             occurrence of the current token and read
                                             the token after it (an induction head)

The model reads the sequence without its last token and predicts the next token at
every position (teacher forcing); only the predictions of y count in the loss and in
the accuracy (``Batch.mask``).

Shape legend: B batch, L (maximum) length of x, N = 2L model positions.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V

TASKS = ("reversal", "copy")


class Batch(NamedTuple):
    """inputs (B, N) tokens, targets (B, N) next tokens, mask (B, N) True = scored."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def _check(task, rng, batch_size, length, n_symbols):
    V.choice("task", task, TASKS)
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    L = V.positive_int("length", length)
    S = V.positive_int("n_symbols", n_symbols)
    if task == "copy" and S < L:
        raise ValueError(f"copy needs n_symbols >= length (distinct x), got {S} < {L}")
    return B, L, S


def make_sequences(task, rng, batch_size, *, length, n_symbols):
    """Full sequences x SEP y padded with SEP: (B, 2L + 1) tokens and (B,) lengths l."""
    B, L, S = _check(task, rng, batch_size, length, n_symbols)
    if task == "reversal":
        x = rng.integers(0, S, size=(B, L))  # (B, L) random symbols
        lengths = np.full(B, L)
        return np.concatenate([x, np.full((B, 1), S), x[:, ::-1]], axis=1), lengths
    x = np.argsort(rng.random((B, S)), axis=1)[:, :L]  # (B, L) distinct symbols
    lengths = rng.integers(max(1, L // 2), L + 1, size=B)  # (B,) l per example
    seq = np.full((B, 2 * L + 1), S)  # (B, 2L + 1) start as all SEP (padding)
    for b, l in enumerate(lengths):
        seq[b, :l] = seq[b, l + 1 : 2 * l + 1] = x[b, :l]
    return seq, lengths


def make_batch(task, rng, batch_size, *, length, n_symbols):
    """A training batch: next-token targets, scored only on the answer y."""
    seq, lengths = make_sequences(
        task, rng, batch_size, length=length, n_symbols=n_symbols
    )
    inputs, targets = seq[:, :-1], seq[:, 1:]  # (B, 2L) each
    t = np.arange(targets.shape[1])[None, :]  # (1, 2L)
    l = lengths[:, None]  # (B, 1)
    mask = (t >= l) & (t < 2 * l)  # (B, 2L) targets l .. 2l-1 are y_0 .. y_{l-1}
    return Batch(inputs, targets, mask)


def vocab_size(n_symbols):
    """S symbols plus the separator."""
    return V.positive_int("n_symbols", n_symbols) + 1


def token_labels(tokens, n_symbols):
    """Strings for plot axes: symbols as numbers, the separator as '|'."""
    S = V.positive_int("n_symbols", n_symbols)
    tokens = V.token_ids("tokens", tokens, vocab_size(S), ndim=1)
    return ["|" if t == S else str(int(t)) for t in tokens]

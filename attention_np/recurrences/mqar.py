"""MQAR, multi-query associative recall (Arora et al. 2023, "Zoology").

A sequence starts with n key-value pairs, then (after noise tokens) asks for keys
again; at each query the model must output the value that followed that key:

    tokens:  k1 v1 k2 v2 k3 v3 | x  k2  x  x  k1  x ...
    targets:                   | .  v2  .  .  v1  . ...     (loss only at queries)

Keys come from the lower half of the vocabulary, values from the upper half, every
key once per sequence; queries ask every key once, at positions drawn with Zoology's
power law (short gaps more likely, ``power_a``); other positions hold random tokens.
Token 0 is never a key. As in Zoology, the model predicts the value *at* the query
token (its next-token prediction), so a causal model sees the key before answering.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


class MQARBatch(NamedTuple):
    ids: np.ndarray  # (B, N) int64 token ids
    targets: np.ndarray  # (B, N) int64: the value at query positions, else 0
    mask: np.ndarray  # (B, N) bool: True at the query positions (the loss)


def _check(n_pairs, seq_len, vocab_size, batch, power_a):
    n = V.positive_int("n_pairs", n_pairs)
    N = V.positive_int("seq_len", seq_len)
    vocab = V.positive_int("vocab_size", vocab_size)
    V.positive_int("batch", batch)
    V.real("power_a", power_a, lo=0.0, hi=1.0, lo_open=True)
    if 4 * n > N:
        raise ValueError(
            f"seq_len={N} must be >= 4 n_pairs = {4 * n}: 2n tokens of pairs and "
            "room for n queries"
        )
    if vocab // 2 - 1 < n:
        raise ValueError(
            f"vocab_size={vocab} gives {vocab // 2 - 1} keys, fewer than n_pairs={n}"
        )
    return n, N, vocab


def _gaps(n, space, batch, power_a, rng):
    """(batch, n) distinct query slots in [0, space), Zoology's power law."""
    p = power_a * np.arange(1, space + 1) ** (power_a - 1.0)
    keys = rng.random((batch, space)) ** (1.0 / (p / p.sum()))  # weighted sampling
    return np.argsort(-keys, axis=1)[:, :n]  # without replacement (Efraimidis-Spirakis)


def mqar_batch(n_pairs, *, seq_len, vocab_size, batch, rng, power_a=0.01):
    """A batch of MQAR sequences (module docstring).

    Args:
        n_pairs: key-value pairs per sequence (each key is queried once).
        seq_len: N >= 4 n_pairs tokens.  vocab_size: keys [1, V/2), values [V/2, V).
        batch: sequences.  rng: np.random.Generator.
        power_a: Zoology's gap power law (1 = uniform; 0.01 favours short gaps).

    Returns:
        MQARBatch(ids, targets, mask), each (batch, seq_len).
    """
    n, N, vocab = _check(n_pairs, seq_len, vocab_size, batch, power_a)
    V.rng_arg(rng)
    half, context = vocab // 2, 2 * n
    keys = np.argsort(rng.random((batch, half - 1)), axis=1)[:, :n] + 1  # distinct
    values = np.argsort(rng.random((batch, vocab - half)), axis=1)[:, :n] + half
    ids = rng.integers(0, vocab, (batch, N))  # noise everywhere else
    ids[:, 0:context:2], ids[:, 1:context:2] = keys, values
    gaps = _gaps(n, (N - context) // 2, batch, power_a, rng)
    pos = context + 2 * gaps  # (batch, n) query positions
    rows = np.arange(batch)[:, None]
    ids[rows, pos] = keys
    targets = np.zeros((batch, N), dtype=np.int64)
    targets[rows, pos] = values
    mask = np.zeros((batch, N), dtype=bool)
    mask[rows, pos] = True
    return MQARBatch(ids.astype(np.int64), targets, mask)

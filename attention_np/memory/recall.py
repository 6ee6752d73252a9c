"""Associative recall with a fast-weight memory: episodes, reads, capacity.

An episode writes n (key, value) pairs into an empty d x d memory, one token at a
time, then reads every key back. Keys are random unit vectors in d dimensions, new
for every episode; values are symbols from a table of n_values random unit vectors,
shared by all episodes. With ``n_rewrites`` > 0 the episode then writes every key
again, n_rewrites times (each round in a new random order, each time with a new
random value), and the right answer is the key's **last** value: key overwrite.

A read is correct when the read vector has a larger dot product with the right
value symbol than with any other of the n_values symbols (the nearest symbol).

Memories (``rule``): "sum", S = sum_t k_t^T v_t (unnormalised linear attention);
"delta", the delta rule with beta = 1; "softmax", softmax attention over every
stored pair with a sharp scale (no fixed-size memory, for comparison).
The capacity of a rule at width d is the number of pairs n at which the mean cosine
between a read and its right value falls through a threshold (linear interpolation
between the n of a grid). The cosine measures the read itself; the accuracy also
depends on how far apart the n_values symbols are, which grows with d.

Shape legend: B episodes, n pairs, T = n (1 + n_rewrites) writes, d width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_forward
from .delta_rule import sum_rule_forward
from .delta_rule_chunkwise import delta_rule_chunkwise_forward

RULES = ("sum", "delta", "softmax")


class RecallEpisodes(NamedTuple):
    keys: np.ndarray  # (B, T, d) written keys, in order
    values: np.ndarray  # (B, T, d) written values (rows of value_table)
    query_keys: np.ndarray  # (B, n, d) every distinct key once
    answers: np.ndarray  # (B, n) id of each key's last value
    value_table: np.ndarray  # (n_values, d) the value symbols


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def recall_episodes(n_pairs, width, *, n_values, batch, rng, n_rewrites=0):
    """``batch`` recall episodes of ``n_pairs`` keys (module docstring).

    Returns:
        RecallEpisodes: keys, values (B, T, d), query_keys (B, n, d), answers (B, n)
        and value_table (n_values, d), T = n_pairs * (1 + n_rewrites).
    """
    n = V.positive_int("n_pairs", n_pairs)
    d = V.positive_int("width", width)
    n_values = V.positive_int("n_values", n_values)
    batch = V.positive_int("batch", batch)
    n_rewrites = V.positive_int("n_rewrites", n_rewrites, allow_zero=True)
    V.rng_arg(rng)
    table = _unit(rng.standard_normal((n_values, d)))  # (n_values, d)
    query_keys = _unit(rng.standard_normal((batch, n, d)))  # (B, n, d)
    ids = rng.integers(0, n_values, (batch, n))  # (B, n) first values
    keys, values = [query_keys], [table[ids]]
    for _ in range(n_rewrites):  # every key again, new order, new value
        order = np.argsort(rng.random((batch, n)), axis=1)  # (B, n)
        ids = rng.integers(0, n_values, (batch, n))
        keys.append(np.take_along_axis(query_keys, order[..., None], axis=1))
        values.append(table[np.take_along_axis(ids, order, axis=1)])
    keys, values = np.concatenate(keys, axis=1), np.concatenate(values, axis=1)
    return RecallEpisodes(keys, values, query_keys, ids, table)


def recall_read(episodes, *, rule, scale=50.0):
    """(B, n, d) what each query key reads from the memory the episode wrote.

    Args:
        episodes: from ``recall_episodes``.
        rule: "sum", "delta" (beta = 1) or "softmax".
        scale: the softmax score scale (unit keys: own key 1, others ~ 1/sqrt(d)).
    """
    V.instance("episodes", episodes, RecallEpisodes)
    V.choice("rule", rule, RULES)
    scale = V.real("scale", scale, lo=0.0, lo_open=True)
    k, v, q = episodes.keys, episodes.values, episodes.query_keys
    if rule == "softmax":
        return attention_forward(q, k, v, causal=False, scale=scale)[0]
    if rule == "sum":
        S = sum_rule_forward(k, k, v)[1].final_state  # (B, d, d)
    else:
        beta = np.ones(k.shape[:2], dtype=k.dtype)  # (B, T) full overwrite
        C = min(64, k.shape[1])  # one chunk for short episodes: no padding
        S = delta_rule_chunkwise_forward(k, k, v, beta, chunk_size=C)[1].final_state
    return q @ S  # (B, n, d) read k_i S


class RecallScores(NamedTuple):
    accuracy: float  # fraction of reads nearest to the right value symbol
    cosine: float  # mean cosine between the read and the right value
    read_norm: float  # mean length of the read vectors


def recall_scores(episodes, reads):
    """Accuracy, mean cosine to the right value and mean read length of ``reads``."""
    V.instance("episodes", episodes, RecallEpisodes)
    reads = V.float_array("reads", reads, ndim=3)
    if reads.shape != episodes.query_keys.shape:
        raise ValueError(
            f"reads{reads.shape} must have the shape of the query keys "
            f"{episodes.query_keys.shape}"
        )
    right = episodes.value_table[episodes.answers]  # (B, n, d)
    norm = np.linalg.norm(reads, axis=-1)  # (B, n)
    nearest = np.argmax(reads @ episodes.value_table.T, axis=-1)  # (B, n)
    cosine = np.sum(reads * right, axis=-1) / np.maximum(norm, 1e-300)
    return RecallScores(
        float(np.mean(nearest == episodes.answers)),
        float(cosine.mean()),
        float(norm.mean()),
    )


class RecallCurve(NamedTuple):
    n_pairs: np.ndarray  # (G,) the grid of n
    accuracy: np.ndarray  # (G,) fraction of reads nearest to the right value
    cosine: np.ndarray  # (G,) mean cosine between read and right value
    read_norm: np.ndarray  # (G,) mean length of the reads


def recall_curve(width, n_pairs, *, rule, n_values, rng, n_rewrites=0, queries=2048):
    """Recall scores of ``rule`` for every n in ``n_pairs`` (fresh episodes each).

    Args:
        width: d, the key, value and memory width.
        n_pairs: increasing positive ints, the grid of n.
        rule, n_values, n_rewrites: as in ``recall_read`` / ``recall_episodes``.
        rng: np.random.Generator (the same seed gives every rule the same episodes).
        queries: about this many reads per grid point (ceil(queries / n) episodes).

    Returns:
        RecallCurve(n_pairs, accuracy, cosine, read_norm), arrays of shape (G,).
    """
    grid = np.asarray(n_pairs)
    if grid.ndim != 1 or grid.size == 0 or grid.dtype.kind not in "iu":
        raise TypeError(f"n_pairs must be a 1-D array of ints, got {n_pairs!r}")
    if grid.min() < 1 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"n_pairs must be increasing and >= 1, got {grid.tolist()}")
    queries = V.positive_int("queries", queries)
    scores = []
    for n in grid.tolist():
        batch = -(-queries // n)  # ceil: about ``queries`` reads per point
        ep = recall_episodes(
            n, width, n_values=n_values, batch=batch, rng=rng, n_rewrites=n_rewrites
        )
        scores.append(recall_scores(ep, recall_read(ep, rule=rule)))
    acc, cos, norm = (np.array(a) for a in zip(*scores, strict=True))
    return RecallCurve(grid, acc, cos, norm)


def crossing(xs, ys, threshold):
    """The x where ys first falls below ``threshold``, interpolated linearly.

    0 when ys[0] is already below it; xs[-1] when it never falls below.
    """
    below = np.flatnonzero(np.asarray(ys) < threshold)
    if below.size == 0:
        return float(xs[-1])
    i = below[0]
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x0 + (y0 - threshold) * (x1 - x0) / (y0 - y1))


class Capacity(NamedTuple):
    capacity: float  # n where the mean cosine crosses the threshold (0: never above)
    curve: RecallCurve  # the scores it was read from


def recall_capacity(
    width, *, rule, n_values, ratios, threshold, rng, n_rewrites=0, queries=2048
):
    """How many pairs a d x d memory holds: the n where the mean cosine between a
    read and its right value falls through ``threshold``.

    Args:
        width: d.
        rule, n_values, n_rewrites, rng, queries: as in ``recall_curve``.
        ratios: increasing n / d of the grid (n rounded to an int >= 1).
        threshold: cosine in (0, 1).

    Returns:
        Capacity(capacity, curve).
    """
    d = V.positive_int("width", width)
    threshold = V.real(
        "threshold", threshold, lo=0.0, hi=1.0, lo_open=True, hi_open=True
    )
    grid = np.unique(np.maximum(1, np.rint(np.asarray(ratios, float) * d))).astype(int)
    options = dict(n_values=n_values, rng=rng, n_rewrites=n_rewrites, queries=queries)
    curve = recall_curve(d, grid, rule=rule, **options)
    return Capacity(crossing(grid, curve.cosine, threshold), curve)

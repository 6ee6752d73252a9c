"""How far In-Place TTT's fast weight moves over a sequence (lesson 19).

Nothing in the layer pulls the down projection back: the weights chunk i uses are

    W^(i) = W_down + sum_{j<i} dW_j,

so their drift |W^(i) - W_down| depends on how alike the updates dW_j are. Updates
that share a common part (a sequence that keeps writing the same transitions) add up
coherently and the drift grows like i |dW|; unrelated updates add like a random walk,
about sqrt(i) |dW|. ``update_drift`` measures the three things that decide it.

Shape legend: B batch, n chunks, F hidden width, D model width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .inplace_ttt import InPlaceTTTCache


class Drift(NamedTuple):
    step: np.ndarray  # (n,) |dW_i|, mean over the batch
    drift: np.ndarray  # (n,) |W^(i) - W_down|, mean over the batch
    cosine: float  # mean cosine between the updates of two different chunks


def update_drift(cache):
    """Norms of the updates, drift of the weights, and how alike the updates are.

    Args:
        cache: from ``inplace_ttt_forward`` (any form); needs at least 2 chunks.

    Returns:
        Drift(step (n,), drift (n,), cosine), Frobenius norms averaged over the batch.
    """
    V.instance("cache", cache, InPlaceTTTCache)
    B, n = cache.delta.shape[:2]
    if n < 2:
        raise ValueError(f"the cache has {n} chunk; the drift needs at least 2")
    flat = cache.delta.reshape(B, n, -1)  # (B, n, F * D) one row per update
    norm = np.linalg.norm(flat, axis=-1)  # (B, n)
    unit = flat / np.maximum(norm, np.finfo(flat.dtype).tiny)[..., None]
    cos = unit @ np.swapaxes(unit, 1, 2)  # (B, n, n) cosines between updates
    off = ~np.eye(n, dtype=bool)  # pairs of different chunks
    moved = cache.W_chunk - cache.params["W_down"]  # (B, n, F, D)
    drift = np.linalg.norm(moved.reshape(B, n, -1), axis=-1).mean(axis=0)
    return Drift(norm.mean(axis=0), drift, float(cos[:, off].mean()))

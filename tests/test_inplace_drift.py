"""The drift of In-Place TTT's fast weight (attention_np.memory.inplace_drift)."""

import numpy as np
import pytest

from attention_np.memory import init_inplace_ttt_params, inplace_ttt_forward
from attention_np.memory.inplace_drift import update_drift


def _cache(rng, x=None, T=20, C=4):
    p = init_inplace_ttt_params(3, 5, rng=rng)
    p["conv"] = rng.standard_normal(p["conv"].shape)
    x = rng.standard_normal((2, T, 3)) if x is None else x
    return inplace_ttt_forward(x, p, chunk_size=C, lr=0.5)[1]


def test_the_drift_is_the_norm_of_the_prefix_sum_of_the_updates(rng):
    cache = _cache(rng)
    found = update_drift(cache)
    prefix = np.cumsum(cache.delta, axis=1) - cache.delta  # sum_{j<i} dW_j
    expected = np.linalg.norm(prefix.reshape(2, 5, -1), axis=-1).mean(axis=0)
    np.testing.assert_allclose(found.drift, expected, atol=1e-12)
    steps = np.linalg.norm(cache.delta.reshape(2, 5, -1), axis=-1).mean(axis=0)
    np.testing.assert_allclose(found.step, steps)
    assert found.drift[0] == 0.0


def test_identical_chunks_give_parallel_updates_and_a_straight_line(rng):
    chunk = rng.standard_normal((1, 4, 3))
    x = np.tile(chunk, (2, 5, 1))  # the same 4 tokens five times, in both sequences
    found = update_drift(_cache(rng, x=x))
    assert found.cosine == pytest.approx(1.0)
    np.testing.assert_allclose(found.drift, np.arange(5) * found.step[0], rtol=1e-12)


def test_one_chunk_has_no_drift_to_measure(rng):
    with pytest.raises(ValueError, match="at least 2"):
        update_drift(_cache(rng, T=4))


def test_a_cache_of_another_layer_is_refused(rng):
    with pytest.raises(TypeError, match="cache"):
        update_drift((1, 2, 3))

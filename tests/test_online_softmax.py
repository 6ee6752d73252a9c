"""The streaming (online) softmax equals the two-pass softmax for any block size."""

import warnings

import numpy as np
import pytest

from attention_np import softmax_forward
from attention_np.efficient.online_softmax import (
    online_logsumexp,
    online_softmax,
    online_softmax_step,
)


@pytest.mark.parametrize("block", [1, 3, 7, 100])
def test_online_softmax_equals_softmax_for_any_block(rng, block):
    x = 4 * rng.standard_normal((3, 2, 11))
    y, lse = online_softmax(x, block=block)
    np.testing.assert_allclose(y, softmax_forward(x)[0], atol=1e-12)
    np.testing.assert_allclose(lse, np.log(np.exp(x).sum(-1)), atol=1e-12)


def test_masked_entries_and_fully_masked_rows(rng):
    x = rng.standard_normal((4, 9))
    mask = rng.random((4, 9)) > 0.5
    mask[2] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, lse = online_softmax(np.where(mask, x, -np.inf), block=2)
    np.testing.assert_allclose(y, softmax_forward(x, mask)[0], atol=1e-12)
    assert lse[2] == -np.inf and np.all(y[2] == 0)


def test_trace_ends_at_the_max_and_the_rescaled_sum(rng):
    x = rng.standard_normal(10) * 3
    lse, steps = online_logsumexp(x, block=4, trace=True)
    assert len(steps) == 3
    for j, (m, l) in enumerate(steps):  # after step j: the max and sum of x[:4(j+1)]
        seen = x[: 4 * (j + 1)]
        assert m == seen.max()
        np.testing.assert_allclose(l, np.exp(seen - seen.max()).sum(), atol=1e-12)


def test_a_step_never_overflows_on_large_scores():
    m, l = online_softmax_step(np.float64(-np.inf), np.float64(0.0), np.array([1e3]))
    m, l = online_softmax_step(m, l, np.array([2e3, 1e3]))
    assert m == 2e3 and np.isfinite(l) and l == pytest.approx(1.0)

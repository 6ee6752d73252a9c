import warnings

import numpy as np
import pytest
from conftest import fd_check

from attention_np import softmax_backward, softmax_forward
from attention_np.naive import softmax_naive


def test_matches_naive_oracle(rng):
    x = 3 * rng.standard_normal((2, 4, 5))
    np.testing.assert_allclose(softmax_forward(x)[0], softmax_naive(x), atol=1e-14)


def test_rows_sum_to_one_and_shift_invariant(rng):
    x = rng.standard_normal((3, 7))
    y = softmax_forward(x)[0]
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(softmax_forward(x + 100.0)[0], y, atol=1e-14)


def test_no_overflow_for_huge_scores():
    x = np.array([[1e4, 1e4 - 1.0, -1e4]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = softmax_forward(x)[0]
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(
        y[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-6
    )


def test_masked_entries_are_exactly_zero_and_fully_masked_row_is_zero(rng):
    x = rng.standard_normal((3, 5))
    mask = np.ones((3, 5), bool)
    mask[0, [1, 3]] = False
    mask[2] = False  # fully masked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = softmax_forward(x, mask)[0]
    assert np.all(y[0, [1, 3]] == 0.0)
    assert np.all(y[2] == 0.0)
    np.testing.assert_allclose(y[:2].sum(-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(y, softmax_naive(x, mask), atol=1e-14)


def test_all_minus_inf_row_gives_zeros_not_nan():
    y = softmax_forward(np.full((1, 4), -np.inf))[0]
    assert np.all(y == 0.0)


@pytest.mark.parametrize("masked", [False, True])
def test_backward_matches_finite_differences(rng, masked):
    mask = None
    if masked:
        mask = rng.random((2, 4, 5)) > 0.3
        mask[1, 2] = False
    fd_check(
        lambda p: softmax_forward(p["x"], mask),
        lambda dout, cache: {"x": softmax_backward(dout, cache)},
        {"x": 2 * rng.standard_normal((2, 4, 5))},
        rng,
    )


def test_backward_of_ones_is_zero_which_is_why_checks_use_random_dout(rng):
    y, cache = softmax_forward(rng.standard_normal((3, 6)))
    np.testing.assert_allclose(
        softmax_backward(np.ones_like(y), cache), 0.0, atol=1e-15
    )


def test_empty_last_axis_gives_empty_output():
    y, _ = softmax_forward(np.zeros((3, 0)))
    assert y.shape == (3, 0)


# --- NaN and inf (README: not scanned for, they propagate to the rows they touch) ---


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_plus_inf_in_a_row_makes_only_that_row_nan(rng, bad):
    x = rng.standard_normal((3, 5))
    x_bad = x.copy()
    x_bad[1, 2] = bad
    with np.errstate(invalid="ignore"):  # inf - inf: NumPy may warn
        y, _ = softmax_forward(x_bad)
    np.testing.assert_array_equal(np.isnan(y).all(axis=-1), [False, True, False])
    np.testing.assert_array_equal(y[[0, 2]], softmax_forward(x)[0][[0, 2]])


def test_minus_inf_is_a_weight_of_zero_not_an_error(rng):
    x = rng.standard_normal((2, 5))
    x[0, 2] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, _ = softmax_forward(x)
    assert y[0, 2] == 0.0 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_masked_non_finite_score_is_dropped(rng, bad):
    x = rng.standard_normal((2, 5))
    x[0, 2] = bad
    mask = np.ones(x.shape, bool)
    mask[0, 2] = False
    y, _ = softmax_forward(x, mask)
    assert np.all(np.isfinite(y)) and y[0, 2] == 0.0
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-12)


def test_nan_in_a_row_reaches_only_that_row_of_the_backward(rng):
    x = rng.standard_normal((3, 4))
    x[2, 0] = np.nan
    with np.errstate(invalid="ignore"):
        y, cache = softmax_forward(x)
        dx = softmax_backward(rng.standard_normal(y.shape), cache)
    np.testing.assert_array_equal(np.isnan(dx).all(axis=-1), [False, False, True])

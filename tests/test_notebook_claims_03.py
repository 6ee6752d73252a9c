"""Claims of notebook 03 (masks), recomputed from the package with the notebook's
seed (its random draws replayed in order)."""

import functools

import numpy as np
import pytest

from attention_np import (
    attention_backward,
    attention_forward,
    causal_mask,
    combine_masks,
    padding_mask,
    softmax_forward,
)

N, D = 6, 8
LENGTHS = np.array([6, 4, 2])


@functools.cache
def replay():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D))
    last = rng.standard_normal(D)
    xb = rng.standard_normal((3, 1, N, D))
    q4, k2, v2 = (rng.standard_normal(s) for s in ((4, D), (2, D), (2, 3)))
    dout = rng.standard_normal((4, 3))
    return x, last, xb, (q4, k2, v2), dout


def test_causal_true_equals_the_causal_mask_and_masked_weights_are_exactly_zero():
    x = replay()[0]
    _, by_keyword = attention_forward(x, x, x, causal=True)
    _, by_mask = attention_forward(x, x, x, causal_mask(N), causal=False)
    np.testing.assert_array_equal(by_keyword.weights, by_mask.weights)
    assert np.all(by_keyword.weights[~causal_mask(N)] == 0.0)
    assert by_keyword.weights[0, 0] == 1.0


def test_changing_the_last_word_changes_only_the_last_output():
    x, last, *_ = replay()
    x2 = x.copy()
    x2[-1] = last
    before = attention_forward(x, x, x, causal=True)[0]
    after = attention_forward(x2, x2, x2, causal=True)[0]
    np.testing.assert_allclose(after[:-1], before[:-1], atol=1e-12)
    assert round(np.abs(after[-1] - before[-1]).max(), 3) == 2.573


def test_real_tokens_never_depend_on_padding_values():
    xb = replay()[2]
    pad = padding_mask(LENGTHS, N)
    out, cache = attention_forward(xb, xb, xb, pad, causal=False)
    assert np.all(cache.weights[np.broadcast_to(~pad, cache.weights.shape)] == 0)
    garbage = xb.copy()
    garbage[1, 0, 4:] = 100.0
    out2 = attention_forward(garbage, garbage, garbage, pad, causal=False)[0]
    np.testing.assert_allclose(out2[1, 0, :4], out[1, 0, :4], atol=1e-12)


def test_combined_mask_equals_padding_with_causal_true():
    xb = replay()[2]
    pad = padding_mask(LENGTHS, N)
    both = combine_masks(causal_mask(N), pad)
    assert both.shape == (3, 1, N, N)
    np.testing.assert_array_equal(
        attention_forward(xb, xb, xb, both, causal=False)[1].weights,
        attention_forward(xb, xb, xb, pad, causal=True)[1].weights,
    )


def test_bottom_right_gives_the_last_rows_of_full_causal_attention_top_left_not():
    x = replay()[0]
    full = attention_forward(x, x, x, causal=True)[0]
    new = attention_forward(x[3:], x, x, causal=True, align="bottom_right")[0]
    np.testing.assert_allclose(new, full[3:], atol=1e-12)
    np.testing.assert_array_equal(
        causal_mask(3, 6, align="bottom_right"), causal_mask(6)[3:]
    )
    wrong = attention_forward(x[3:], x, x, causal=True)[0]
    assert round(np.abs(wrong - full[3:]).max(), 3) == 2.162


def test_a_fully_masked_row_gives_zero_weights_output_and_gradients_not_nan():
    *_, (q4, k2, v2), dout = replay()
    empty = causal_mask(4, 2, align="bottom_right")
    assert not empty[:2].any() and empty[2:].any(axis=1).all()
    out, cache = attention_forward(q4, k2, v2, empty, causal=False)
    dq, dk, dv = attention_backward(dout, cache)
    assert np.all(cache.weights[:2] == 0) and np.all(out[:2] == 0)
    assert np.all(dq[:2] == 0)
    assert all(np.isfinite(a).all() for a in (out, dq, dk, dv))


def test_the_naive_softmax_of_an_empty_row_is_nan_and_poisons_a_sum_over_rows():
    *_, (q4, k2, _), _ = replay()
    empty = causal_mask(4, 2, align="bottom_right")
    scores = np.where(empty, q4 @ k2.T / np.sqrt(D), -np.inf)
    with np.errstate(invalid="ignore"):
        naive = np.exp(scores - scores.max(axis=1, keepdims=True))
        naive = naive / naive.sum(axis=1, keepdims=True)
    assert np.isnan(naive[:2]).all() and np.isfinite(naive[2:]).all()
    assert np.isnan(q4.T @ naive).all()


def test_a_finite_fill_makes_the_empty_rows_uniform_and_an_added_one_unmasked():
    *_, (q4, k2, _), _ = replay()
    empty = causal_mask(4, 2, align="bottom_right")
    raw = q4 @ k2.T / np.sqrt(D)
    filled = softmax_forward(np.where(empty, raw, -1e9))[0]
    np.testing.assert_allclose(filled[:2], 0.5)
    added = softmax_forward(raw + np.where(empty, 0.0, -1e9))[0]
    np.testing.assert_allclose(added[:2], softmax_forward(raw)[0][:2], atol=1e-6)
    assert added[2, 1] == 0.0  # partly masked rows: the masked weight underflows


def test_float16_turns_the_minus_1e9_fill_into_minus_infinity():
    with np.errstate(over="ignore"):
        assert np.float16(-1e9) == -np.inf
    assert np.float16(-1e4) == pytest.approx(-1e4)

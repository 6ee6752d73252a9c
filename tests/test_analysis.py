import numpy as np
import pytest

from attention_np import attention_weights, causal_mask
from attention_np.analysis import (
    attention_entropy,
    entropy_per_head,
    offset_mass,
    sink_mass,
    sink_mass_per_head,
)


def test_uniform_row_has_entropy_log_n():
    P = np.full((3, 5), 0.2)
    np.testing.assert_allclose(attention_entropy(P), np.log(5), atol=1e-15)
    np.testing.assert_allclose(attention_entropy(P, normalized=True), 1.0, atol=1e-15)


def test_one_hot_row_has_zero_entropy_without_warnings():
    P = np.eye(4)
    with np.errstate(all="raise"):
        H = attention_entropy(P)
    np.testing.assert_array_equal(H, 0.0)


def test_causal_rows_are_normalised_by_their_own_number_of_keys():
    mask = causal_mask(4)
    P = mask / mask.sum(-1, keepdims=True)  # uniform over the allowed keys
    np.testing.assert_allclose(attention_entropy(P, mask), np.log([1, 2, 3, 4]))
    np.testing.assert_allclose(
        attention_entropy(P, mask, normalized=True), [0, 1, 1, 1], atol=1e-15
    )


def test_masked_entries_are_excluded():
    P = np.array([[0.5, 0.5, 0.3]])  # the masked third entry must not count
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(attention_entropy(P, mask), np.log(2), atol=1e-15)


def test_fully_masked_row_has_entropy_zero_and_is_left_out_of_head_means(rng):
    mask = np.ones((1, 3, 4), bool)
    mask[0, 1] = False
    q, k = rng.standard_normal((1, 3, 2)), rng.standard_normal((1, 4, 2))
    P = attention_weights(q, k, mask, causal=False)
    H = attention_entropy(P, mask)
    assert H[0, 1] == 0 and np.all(np.isfinite(H))
    assert entropy_per_head(P, mask)[0] == pytest.approx((H[0, 0] + H[0, 2]) / 2)


def test_uniform_causal_head_has_normalised_entropy_exactly_one():
    mask = causal_mask(16)
    P = mask / mask.sum(-1, keepdims=True)  # uniform over the allowed keys
    np.testing.assert_allclose(
        entropy_per_head(P, mask, normalized=True), 1.0, rtol=0, atol=1e-15
    )


def test_single_key_rows_are_left_out_of_the_normalised_head_mean(rng):
    mask = causal_mask(5, 7)  # rows 0 .. 4 may attend 1 .. 5 keys
    P = attention_weights(
        rng.standard_normal((5, 3)), rng.standard_normal((7, 3)), mask, causal=False
    )
    H = attention_entropy(P, mask, normalized=True)
    assert entropy_per_head(P, mask, normalized=True) == pytest.approx(
        H[1:].mean(), abs=1e-15
    )


def test_unnormalised_head_mean_still_counts_single_key_rows():
    mask = causal_mask(4)
    P = mask / mask.sum(-1, keepdims=True)
    assert entropy_per_head(P, mask) == pytest.approx(np.log([1, 2, 3, 4]).mean())


def test_head_with_only_single_key_rows_has_normalised_entropy_zero():
    P = np.ones((2, 3, 1))  # (H, N, M=1): every row is one-hot
    with np.errstate(all="raise"):
        ent = entropy_per_head(P, normalized=True)
    np.testing.assert_array_equal(ent, [0.0, 0.0])


def test_entropy_per_head_shape(rng):
    P = attention_weights(
        rng.standard_normal((2, 3, 5, 4)),
        rng.standard_normal((2, 3, 6, 4)),
        causal=False,
    )
    assert entropy_per_head(P).shape == (2, 3)


def test_sink_mass_counts_the_first_keys():
    P = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(sink_mass(P), [1.0, 0.5, 0.2])
    np.testing.assert_allclose(sink_mass(P, 2), [1.0, 1.0, 0.5])
    assert sink_mass_per_head(P) == pytest.approx(0.35)
    assert sink_mass_per_head(P, skip_first=False) == pytest.approx(1.7 / 3)


def test_offset_mass_reads_a_diagonal():
    P = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(offset_mass(P, -1), [0, 4, 9, 14])
    np.testing.assert_array_equal(offset_mass(P, 0), [0, 5, 10, 15])
    # N != M: query i sits at key position i + M - N
    np.testing.assert_array_equal(offset_mass(P[2:], -1), [9, 14])


@pytest.mark.parametrize(
    "call",
    [
        lambda P: attention_entropy(P, normalized="yes"),
        lambda P: entropy_per_head(P, normalized=1),
        lambda P: sink_mass_per_head(P, skip_first="no"),
    ],
)
def test_boolean_options_must_be_bools(call):
    P = np.full((1, 2, 3, 3), 1 / 3)
    with pytest.raises(TypeError, match="must be True or False"):
        call(P)


def test_causal_flag_weights_read_like_the_causal_mask(rng):
    q, k = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    mask = causal_mask(6)
    P = attention_weights(q, k, causal=True)
    P_mask = attention_weights(q, k, mask, causal=False)
    np.testing.assert_array_equal(
        attention_entropy(P, mask, normalized=True),
        attention_entropy(P_mask, mask, normalized=True),
    )
    np.testing.assert_array_equal(offset_mass(P, 1), 0.0)  # the future gets nothing


def test_offset_mass_takes_negative_and_numpy_integer_offsets():
    P = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(offset_mass(P, np.int64(-2)), [0, 0, 8, 13])
    np.testing.assert_array_equal(offset_mass(P, 5), 0.0)  # beyond every key


def test_sink_mass_with_every_key_a_sink_is_the_row_sum():
    P = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(sink_mass(P, 3), 1.0)

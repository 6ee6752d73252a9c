import numpy as np
import pytest
from conftest import fd_check

from attention_np import causal_mask, softmax_forward
from attention_np.positional import (
    alibi_bias,
    alibi_slopes,
    frequencies,
    half_to_interleaved,
    interleaved_to_half,
    rope_backward,
    rope_forward,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)

D = 16


def rope_at(x, position, layout="interleaved"):
    """RoPE of a single (d,) vector placed at ``position``."""
    return rope_forward(x[None, :], [position], layout=layout)[0][0]


# --- sinusoidal ----------------------------------------------------------------------


def test_sinusoidal_matches_the_paper_formula():
    pe = sinusoidal_encoding(7, D)
    pos, i = 5, 3
    assert pe.shape == (7, D)
    assert pe[pos, 2 * i] == pytest.approx(np.sin(pos / 10000 ** (2 * i / D)))
    assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(pos / 10000 ** (2 * i / D)))


@pytest.mark.parametrize("k", [1, 3, 17])
def test_sinusoidal_shift_is_one_fixed_linear_map(k):
    pe = sinusoidal_encoding(60, D)
    R = sinusoidal_shift_matrix(k, D)
    for pos in (0, 7, 40):  # the same R_k works at every position
        np.testing.assert_allclose(R @ pe[pos], pe[pos + k], atol=1e-12)


def test_sinusoidal_shift_matrix_is_a_rotation():
    R = sinusoidal_shift_matrix(5, D)
    np.testing.assert_allclose(R @ R.T, np.eye(D), atol=1e-14)


def test_odd_width_is_refused():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 7)
    with pytest.raises(ValueError, match="even"):
        rope_forward(np.ones((3, 5)))


# --- RoPE ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["interleaved", "half"])
def test_rope_scores_depend_only_on_the_offset(rng, layout):
    q, k = rng.standard_normal(D), rng.standard_normal(D)
    scores = [
        rope_at(q, m, layout) @ rope_at(k, n, layout)
        for m, n in [(3, 7), (10, 14), (100, 104)]
    ]
    np.testing.assert_allclose(scores, scores[0], atol=1e-12)


def test_rope_score_equals_query_against_key_rotated_by_the_offset(rng):
    q, k = rng.standard_normal(D), rng.standard_normal(D)
    np.testing.assert_allclose(
        rope_at(q, 9) @ rope_at(k, 4), q @ rope_at(k, 4 - 9), atol=1e-12
    )


def test_rope_preserves_norms(rng):
    x = rng.standard_normal((2, 3, 11, D))
    out, _ = rope_forward(x, np.arange(11) * 37)
    np.testing.assert_allclose(
        np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), atol=1e-12
    )


def test_rope_at_position_zero_is_identity(rng):
    x = rng.standard_normal((4, D))
    np.testing.assert_array_equal(rope_forward(x, np.zeros(4))[0], x)


def test_rope_rotates_interleaved_pairs_by_position_times_frequency(rng):
    x = rng.standard_normal(D)
    out = rope_at(x, 6)
    i, angle = 2, 6 * frequencies(D)[2]
    a, b = x[2 * i], x[2 * i + 1]
    np.testing.assert_allclose(
        out[2 * i : 2 * i + 2],
        [a * np.cos(angle) - b * np.sin(angle), a * np.sin(angle) + b * np.cos(angle)],
        atol=1e-14,
    )


def test_rope_layouts_agree_after_permutation(rng):
    x = rng.standard_normal((2, 5, D))
    pos = np.array([0, 3, 8, 1, 40])
    interleaved, _ = rope_forward(x, pos)
    half, _ = rope_forward(interleaved_to_half(x), pos, layout="half")
    np.testing.assert_array_equal(interleaved_to_half(interleaved), half)
    np.testing.assert_array_equal(half_to_interleaved(half), interleaved)


def test_layout_permutation_round_trip(rng):
    x = rng.standard_normal((3, D))
    np.testing.assert_array_equal(half_to_interleaved(interleaved_to_half(x)), x)
    assert list(interleaved_to_half(np.arange(6.0))) == [0, 2, 4, 1, 3, 5]


def test_rope_default_positions_are_zero_to_n_minus_one(rng):
    x = rng.standard_normal((2, 6, D))
    np.testing.assert_array_equal(rope_forward(x)[0], rope_forward(x, np.arange(6))[0])


@pytest.mark.parametrize("layout", ["interleaved", "half"])
def test_rope_backward_matches_finite_differences(rng, layout):
    pos = np.array([2, 0, 7, 3])
    fd_check(
        lambda p: rope_forward(p["x"], pos, layout=layout),
        lambda dout, cache: {"x": rope_backward(dout, cache)},
        {"x": rng.standard_normal((2, 3, 4, 6))},
        rng,
    )


def test_rope_keeps_float32(rng):
    x = rng.standard_normal((4, D)).astype(np.float32)
    assert rope_forward(x)[0].dtype == np.float32


def test_rope_bad_positions_shape_is_named():
    with pytest.raises(ValueError, match="positions"):
        rope_forward(np.ones((2, 5, 4)), np.arange(3))


# --- ALiBi ---------------------------------------------------------------------------


def test_alibi_slopes_for_8_heads_are_powers_of_one_half():
    np.testing.assert_array_equal(alibi_slopes(8), 2.0 ** -np.arange(1, 9))


def test_alibi_slopes_for_12_heads_follow_the_formula():
    # 8 slopes of the 8-head sequence, then slopes 1, 3, 5, 7 of the 16-head one
    expected = [2.0**-k for k in range(1, 9)] + [2.0 ** -(k + 0.5) for k in range(4)]
    np.testing.assert_allclose(alibi_slopes(12), expected, rtol=1e-15)


@pytest.mark.parametrize("H", [1, 3, 5, 6, 16, 24])
def test_alibi_slopes_are_distinct_and_in_zero_one(H):
    s = alibi_slopes(H)
    assert s.shape == (H,) and len(set(s)) == H
    assert np.all((s > 0) & (s < 1))


def test_alibi_bias_penalises_distance():
    bias = alibi_bias(4, 5)  # (H, N, N)
    m = alibi_slopes(4)
    assert bias.shape == (4, 5, 5)
    assert bias[2, 4, 1] == pytest.approx(-m[2] * 3)
    np.testing.assert_array_equal(np.diagonal(bias, axis1=1, axis2=2), 0.0)


@pytest.mark.parametrize("N,M", [(6, 6), (2, 7), (1, 5)])
def test_the_two_causal_alibi_forms_give_identical_attention(rng, N, M):
    scores = rng.standard_normal((3, N, M))
    mask = causal_mask(N, M, align="bottom_right")
    p_dist, _ = softmax_forward(scores + alibi_bias(3, N, M), mask)
    p_key, _ = softmax_forward(scores + alibi_bias(3, N, M, form="key"), mask)
    np.testing.assert_allclose(p_dist, p_key, atol=1e-12)
    # and the two biases differ by a constant per row
    diff = alibi_bias(3, N, M) - alibi_bias(3, N, M, form="key")
    np.testing.assert_allclose(diff, diff[..., :1] + 0 * diff, atol=1e-12)


def test_alibi_last_query_row_matches_a_decode_step():
    full = alibi_bias(2, 6)
    step = alibi_bias(2, 1, 6)  # one query at position 5 over 6 keys
    np.testing.assert_array_equal(step[:, 0], full[:, -1])


# --- RoPE positions: shapes and dtypes -----------------------------------------------


def test_rope_positions_b_n_rotate_each_sequence_by_its_own_positions(rng):
    x = rng.standard_normal((2, 3, 4, D))  # (B, H, N, d)
    pos = np.array([[0, 1, 2, 3], [7, 3, 9, 4]])  # (B, N)
    out, _ = rope_forward(x, pos)
    for b in range(2):
        np.testing.assert_array_equal(out[b], rope_forward(x[b], pos[b])[0])


def test_rope_positions_broadcastable_to_the_leading_axes_are_accepted(rng):
    x = rng.standard_normal((2, 3, 4, D))
    pos = rng.integers(0, 50, (2, 3, 4))  # one position per (batch, head, row)
    out, _ = rope_forward(x, pos)
    np.testing.assert_array_equal(out[1, 2], rope_forward(x[1, 2], pos[1, 2])[0])


def test_rope_float_positions_interpolate_between_integer_ones(rng):
    x = rng.standard_normal((1, D))
    half = rope_forward(x, [2.5])[0]
    twice = rope_forward(rope_forward(x, [1.25])[0], [1.25])[0]  # rotations add
    np.testing.assert_allclose(half, twice, atol=1e-14)


def test_rope_base_sets_the_frequencies(rng):
    x = rng.standard_normal((3, D))
    out, _ = rope_forward(x, [0, 1, 2], base=100.0)
    i, angle = 3, 2 * 100.0 ** (-2 * 3 / D)  # pair 3 of position 2
    a, b = x[2, 2 * i], x[2, 2 * i + 1]
    np.testing.assert_allclose(
        out[2, 2 * i], a * np.cos(angle) - b * np.sin(angle), atol=1e-14
    )
    assert not np.allclose(out, rope_forward(x, [0, 1, 2])[0])


@pytest.mark.parametrize("positions", [np.arange(5), np.ones((2, 3, 5)), [[0, 1]]])
def test_rope_positions_that_do_not_fit_x_are_refused(positions):
    with pytest.raises(ValueError, match="positions"):
        rope_forward(np.ones((2, 3, 4, D)), positions)


def test_rope_positions_that_would_grow_x_are_refused():
    # (2, N) positions for x (N, d) broadcast to (2, N): the output would grow
    with pytest.raises(ValueError, match="positions"):
        rope_forward(np.ones((4, D)), np.zeros((2, 4)))

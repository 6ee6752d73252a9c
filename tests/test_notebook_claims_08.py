"""Claims of notebook 08 (positional encodings), recomputed from the package.

Same seeds and sizes as the notebook: the previous-token models are trained with
``train_previous_token(rope=..., rng=default_rng(0))`` and tested on the notebook's
10000 test sequences (seed 1) and 2000 sequences of 48 positions (seed 2).
"""

import functools

import numpy as np
import pytest

from attention_np import causal_mask, softmax_forward
from attention_np.analysis import entropy_per_head, offset_mass
from attention_np.positional import (
    alibi_bias,
    frequencies,
    half_to_interleaved,
    interleaved_to_half,
    rope_forward,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)
from attention_np.train.toy_positions import (
    accuracy_per_position,
    position_blind_accuracy,
    previous_token_batch,
    previous_token_logits,
    train_previous_token,
)

OFFSETS = np.arange(0, 4001)


@functools.cache
def trained(rope):
    return train_previous_token(rope=rope, rng=np.random.default_rng(0)).params


@pytest.fixture(scope="module")
def test_batch():
    return previous_token_batch(
        np.random.default_rng(1), 10000, length=12, n_symbols=16
    )


def rope_curves(base, d=64):
    """Score of q = k = 1 and Su et al.'s relative bound, against the offset."""
    ones = np.ones(d)
    rot, _ = rope_forward(np.tile(ones, (len(OFFSETS), 1)), OFFSETS, base=base)
    S = np.cumsum(np.exp(1j * OFFSETS[:, None] * frequencies(d, base=base)), axis=1)
    return rot @ ones, np.abs(S).mean(axis=1)


def test_the_slowest_sinusoid_is_not_zero_and_repeats_every_47117_positions():
    w = frequencies(64)
    assert 1.3e-4 < w[-1] < 1.4e-4
    assert round(2 * np.pi / w[0], 2) == 6.28
    assert round(2 * np.pi / w[-1]) == 47117


def test_a_sinusoidal_shift_is_one_rotation_and_dot_products_depend_on_p_minus_q():
    pe = sinusoidal_encoding(64, 64)
    R3 = sinusoidal_shift_matrix(3, 64)
    np.testing.assert_allclose(pe[:-3] @ R3.T, pe[3:], atol=1e-12)
    sim = pe @ pe.T
    for k in (1, 5, 20):
        np.testing.assert_allclose(
            np.diagonal(sim, k), np.cos(k * frequencies(64)).sum()
        )


def test_rope_scores_depend_only_on_the_offset_and_keep_norms():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal(16), rng.standard_normal(16)
    at = lambda v, p: rope_forward(v[None], [p])[0][0]  # noqa: E731
    np.testing.assert_allclose(at(q, 100) @ at(k, 104), at(q, 3) @ at(k, 7))
    xs = rng.standard_normal((3, 50, 16))
    rotated, _ = rope_forward(xs, np.arange(50) * 7)
    np.testing.assert_allclose(
        np.linalg.norm(rotated, axis=-1), np.linalg.norm(xs, axis=-1)
    )


def test_the_rope_score_is_not_monotone_in_the_distance():
    late = OFFSETS >= 1000
    for base in (10000.0, 500.0):
        score, _ = rope_curves(base)
        assert score[:1001].min() < 0  # it turns negative ...
        assert score[late].max() > score[200]  # ... and rises again beyond 1000
    score, _ = rope_curves(500.0)
    assert score[late].max() > 20 and score[200] < 5


def test_su_et_al_bound_falls_then_is_not_monotone_either():
    _, bound = rope_curves(10000.0)
    assert bound[100] < bound[0] / 2  # falls
    assert bound[OFFSETS >= 1000].max() > 2 * bound[500]  # bumps at large offsets


def test_rotate_half_is_interleaved_rope_after_a_fixed_permutation():
    rng = np.random.default_rng(4)
    xs, pos = rng.standard_normal((5, 16)), np.array([0, 4, 9, 2, 30])
    inter, _ = rope_forward(xs, pos)
    half, _ = rope_forward(interleaved_to_half(xs), pos, layout="half")
    np.testing.assert_array_equal(interleaved_to_half(inter), half)
    x = rng.standard_normal((6, 12))
    Wq, Wk = rng.standard_normal((2, 12, 16))

    def scores(W_q, W_k, layout):
        q = rope_forward(x @ W_q, layout=layout)[0]
        return q @ rope_forward(x @ W_k, layout=layout)[0].T

    converted = scores(half_to_interleaved(Wq), half_to_interleaved(Wk), "interleaved")
    np.testing.assert_allclose(converted, scores(Wq, Wk, "half"), atol=1e-12)


def test_alibi_slope_sets_the_reach():
    mask = causal_mask(16)
    weights, _ = softmax_forward(np.zeros((8, 16, 16)) + alibi_bias(8, 16), mask)
    ent = entropy_per_head(weights, mask, normalized=True)
    assert np.all(np.diff(ent) > 0)
    np.testing.assert_allclose(weights[0, -1, -1], 0.394, atol=5e-4)  # steep head
    np.testing.assert_allclose(weights[7, -1], 1 / 16, atol=3e-3)  # nearly uniform


def test_rope_learns_a_previous_token_head(test_batch):
    logits, weights = previous_token_logits(trained(True), test_batch.inputs, rope=True)
    assert accuracy_per_position(logits, test_batch).min() > 0.9995
    assert offset_mass(weights, -1)[:, 1:].mean() > 0.75


def test_without_positions_the_model_reaches_only_the_bag_of_tokens_bound(test_batch):
    logits, _ = previous_token_logits(trained(False), test_batch.inputs, rope=False)
    acc = accuracy_per_position(logits, test_batch)
    blind = position_blind_accuracy(test_batch.inputs, n_symbols=16)
    assert abs(acc.mean() - blind.mean()) < 0.01
    assert blind.mean() < 0.4
    np.testing.assert_allclose(acc, blind, atol=0.03)  # position by position


def test_the_rope_head_is_relative_but_does_not_extrapolate_to_unseen_offsets(
    test_batch,
):
    params = trained(True)
    base, _ = previous_token_logits(params, test_batch.inputs, rope=True)
    shifted, _ = previous_token_logits(
        params, test_batch.inputs, rope=True, offset=1000
    )
    np.testing.assert_allclose(shifted, base, atol=1e-9)
    long = previous_token_batch(np.random.default_rng(2), 2000, length=48, n_symbols=16)
    acc = accuracy_per_position(
        previous_token_logits(params, long.inputs, rope=True)[0], long
    )
    assert acc[:11].mean() > 0.99 and acc[11:].mean() < 0.9


def test_the_printed_docstring_attributes_the_layouts_as_the_lesson_says():
    """Section 3 prints rope_forward's source and describes what its docstring says."""
    doc = " ".join(rope_forward.__doc__.split())
    assert '"interleaved" pairs (x_2i, x_2i+1) as in RoFormer' in doc
    assert "as in GPT-NeoX and the Hugging Face LLaMA" in doc
    assert "LLaMA code" not in doc  # Meta's reference code rotates interleaved pairs

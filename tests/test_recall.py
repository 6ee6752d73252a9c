"""Associative recall with a fast-weight memory (attention_np.memory.recall)."""

import numpy as np
import pytest

from attention_np.memory.recall import (
    RecallEpisodes,
    crossing,
    recall_capacity,
    recall_curve,
    recall_episodes,
    recall_read,
    recall_scores,
)


def test_episodes_have_their_shapes_and_unit_keys(rng):
    ep = recall_episodes(5, 7, n_values=9, batch=3, rng=rng, n_rewrites=2)
    assert ep.keys.shape == ep.values.shape == (3, 15, 7)
    assert ep.query_keys.shape == (3, 5, 7) and ep.answers.shape == (3, 5)
    assert ep.value_table.shape == (9, 7)
    np.testing.assert_allclose(np.linalg.norm(ep.keys, axis=-1), 1.0, atol=1e-12)


def test_every_key_is_rewritten_once_per_round_and_its_answer_is_its_last_value(rng):
    ep = recall_episodes(4, 6, n_values=50, batch=2, rng=rng, n_rewrites=2)
    for b in range(2):
        for i in range(4):
            hits = np.flatnonzero(np.all(ep.keys[b] == ep.query_keys[b, i], axis=-1))
            assert len(hits) == 3 and set(hits // 4) == {0, 1, 2}  # once a round
            np.testing.assert_array_equal(
                ep.values[b, hits[-1]], ep.value_table[ep.answers[b, i]]
            )


def test_the_sum_rule_reads_the_explicit_sum_of_outer_products(rng):
    ep = recall_episodes(6, 5, n_values=8, batch=2, rng=rng, n_rewrites=1)
    S = np.einsum("btk,btv->bkv", ep.keys, ep.values)  # sum_t k_t^T v_t
    np.testing.assert_allclose(
        recall_read(ep, rule="sum"), ep.query_keys @ S, atol=1e-12
    )


def test_with_orthonormal_keys_the_delta_rule_reads_every_last_value_exactly(rng):
    ep = recall_episodes(4, 6, n_values=10, batch=2, rng=rng, n_rewrites=2)
    basis = np.eye(6)[:4]  # orthonormal keys, same order of writes
    index = np.argmax(ep.keys @ ep.query_keys.transpose(0, 2, 1), axis=-1)  # (B, T)
    ep = ep._replace(keys=basis[index], query_keys=np.broadcast_to(basis, (2, 4, 6)))
    read = recall_read(ep, rule="delta")
    np.testing.assert_allclose(read, ep.value_table[ep.answers], atol=1e-12)
    assert recall_scores(ep, read).accuracy == 1.0


def test_sum_rule_and_softmax_mix_the_old_and_new_value_of_a_rewritten_key(rng):
    ep = recall_episodes(1, 8, n_values=10, batch=1, rng=rng, n_rewrites=1)
    old, new = ep.values[0, 0], ep.values[0, 1]
    np.testing.assert_allclose(recall_read(ep, rule="sum")[0, 0], old + new)
    np.testing.assert_allclose(recall_read(ep, rule="softmax")[0, 0], (old + new) / 2)


def test_scores_of_perfect_reads_are_one(rng):
    ep = recall_episodes(3, 16, n_values=5, batch=4, rng=rng)
    scores = recall_scores(ep, 2.0 * ep.value_table[ep.answers])
    assert scores.accuracy == 1.0
    np.testing.assert_allclose([scores.cosine, scores.read_norm], [1.0, 2.0])


def test_sum_rule_cosine_follows_its_crosstalk_law():
    # crosstalk sum_j (k_i . k_j) v_j has squared length about (n - 1) / d
    curve = recall_curve(
        32,
        np.array([8, 32, 64]),
        rule="sum",
        n_values=64,
        rng=np.random.default_rng(0),
        queries=4096,
    )
    theory = 1 / np.sqrt(1 + (curve.n_pairs - 1) / 32)
    np.testing.assert_allclose(curve.cosine, theory, atol=0.03)


def test_the_same_seed_gives_the_same_curve():
    run = lambda: recall_curve(
        8,
        np.array([2, 4]),
        rule="delta",
        n_values=16,
        rng=np.random.default_rng(3),
        queries=64,
    )
    a, b = run(), run()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "ys, expected",
    [([1.0, 0.9, 0.7], 3.0), ([0.5, 0.4, 0.3], 0.0), ([1.0, 0.95, 0.9], 4.0)],
)
def test_crossing_interpolates_between_grid_points(ys, expected):
    assert crossing(np.array([1, 2, 4]), np.array(ys), 0.8) == pytest.approx(expected)


def test_capacity_is_where_the_cosine_crosses_the_threshold():
    cap = recall_capacity(
        16,
        rule="sum",
        n_values=64,
        ratios=np.arange(1, 9) / 8,
        threshold=0.8,
        rng=np.random.default_rng(0),
        queries=512,
    )
    c = cap.curve
    assert c.cosine[c.n_pairs < cap.capacity].min() >= 0.8
    assert c.cosine[c.n_pairs > cap.capacity].max() < 0.8


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (
            lambda r: recall_episodes(0, 4, n_values=3, batch=1, rng=r),
            ValueError,
            "n_pairs",
        ),
        (
            lambda r: recall_episodes(2, 4, n_values=3, batch=1, rng=None),
            TypeError,
            "rng",
        ),
        (
            lambda r: recall_episodes(2, 4, n_values=3, batch=1, rng=r, n_rewrites=-1),
            ValueError,
            "n_rewrites",
        ),
        (lambda r: recall_read("episodes", rule="sum"), TypeError, "episodes"),
        (
            lambda r: recall_read(
                recall_episodes(2, 4, n_values=3, batch=1, rng=r), rule="max"
            ),
            ValueError,
            "rule",
        ),
        (
            lambda r: recall_scores(
                recall_episodes(2, 4, n_values=3, batch=1, rng=r), np.zeros((1, 3, 4))
            ),
            ValueError,
            "reads",
        ),
        (
            lambda r: recall_curve(4, np.array([2, 1]), rule="sum", n_values=3, rng=r),
            ValueError,
            "n_pairs",
        ),
        (
            lambda r: recall_curve(4, [1.5], rule="sum", n_values=3, rng=r),
            TypeError,
            "n_pairs",
        ),
        (
            lambda r: recall_capacity(
                4, rule="sum", n_values=3, ratios=[1.0], threshold=1.0, rng=r
            ),
            ValueError,
            "threshold",
        ),
    ],
)
def test_bad_inputs_are_named(rng, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(rng)


def test_episodes_are_a_named_tuple_of_arrays(rng):
    ep = recall_episodes(2, 3, n_values=4, batch=1, rng=rng)
    assert isinstance(ep, RecallEpisodes) and ep.answers.dtype.kind == "i"

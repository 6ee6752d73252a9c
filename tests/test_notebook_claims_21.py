"""Claims of lesson 21 (memory-augmented networks), recomputed from the package.

Each test states one sentence of the notebook and checks it with the lesson's own
seeds and sizes: the same stories, and the same two training runs (1500 Adam steps of
32 stories for one hop and for three hops, seed 1), trained once for the module. The
expected answers of exercises 1 and 2 retrain the three-hop model with one encoding
off (a few seconds each).
"""

import numpy as np
import pytest

from attention_np import attention_forward
from attention_np.memory import (
    init_memnet_params,
    memnet_forward,
    ntm_address_forward,
    ntm_read_forward,
    ntm_write_forward,
)
from attention_np.memory.memnet_train import current_places, train_memnet
from attention_np.memory.tasks import VOCAB, toy_stories


def _train(stories, n_hops, **options):
    """The lesson's recipe: 1500 Adam steps of 32 stories, width 32, seed 1."""
    params, _ = train_memnet(
        stories,
        n_hops=n_hops,
        width=32,
        steps=1500,
        batch=32,
        lr=0.01,
        rng=np.random.default_rng(1),
        **options,
    )
    return params


def _moved_twice(test, two):
    """The "where is X?" questions in which X moved at least twice."""
    return [
        s
        for s in np.flatnonzero(~two)
        if sum(
            t.startswith(test["texts"][s][1].split()[2] + " went")
            for t in test["texts"][s][0]
        )
        >= 2
    ]


@pytest.fixture(scope="module")
def lesson():
    """Stories, test-set predictions and hop weights of the lesson's two models."""
    rng = np.random.default_rng(0)
    train, test = toy_stories(3000, rng=rng), toy_stories(500, rng=rng)
    out = {"train": train, "test": test, "two": test["support"][:, 1] >= 0, "rng": rng}
    for k in (1, 3):
        logits, cache = memnet_forward(
            test["story"], test["question"], _train(train, k), position_enc=True
        )
        out[k] = (logits.argmax(axis=1), cache.hop_weights)
    return out


def test_one_hop_is_dot_product_attention_with_scale_one(lesson):
    test = lesson["test"]
    params = init_memnet_params(
        len(VOCAB), 32, n_hops=1, n_memories=8, rng=lesson["rng"]
    )
    _, cache = memnet_forward(
        test["story"][:4], test["question"][:4], params, position_enc=True
    )
    mask = (test["story"][:4] > 0).any(axis=-1)[:, None, :]
    o, _ = attention_forward(
        cache.u[0][:, None, :], cache.m[0], cache.c[0], mask, causal=False, scale=1.0
    )
    np.testing.assert_allclose(cache.u[1] - cache.u[0], o[:, 0], atol=1e-12)


def test_one_hop_answers_the_one_fact_questions_but_not_most_two_fact_ones(lesson):
    right = lesson[1][0] == lesson["test"]["answer"]
    two = lesson["two"]
    assert right[~two].mean() >= 0.99
    assert 1 / 6 + 0.1 < right[two].mean() < 0.5


def test_one_hop_guesses_a_current_place_about_as_well_as_picking_one_at_random(
    lesson,
):
    test, two = lesson["test"], lesson["two"]
    rows = np.flatnonzero(two)
    answer, weights = lesson[1][0][rows], lesson[1][1][rows, 0]
    here = current_places(test["story"])[rows]
    went = test["story"][rows, :, 1] == VOCAB.index("went")
    picked = test["story"][rows, :, 1] == VOCAB.index("picked")
    assert weights[went].mean() > 3 * weights[picked].mean()
    assert here[np.arange(len(rows)), answer].mean() > 0.85
    random_guess = np.mean(1 / here.sum(axis=1))
    right = (answer == test["answer"][rows]).mean()
    assert abs(right - random_guess) < 0.06


def test_three_hops_find_the_holder_first_then_the_holders_latest_move(lesson):
    test, two = lesson["test"], lesson["two"]
    rows = np.flatnonzero(two)
    weights = lesson[3][1][rows]  # (two-fact stories, K, n)
    pick, move = test["support"][rows, 0], test["support"][rows, 1]
    at = np.arange(len(rows))
    assert weights[at, 0, pick].mean() > 0.95
    assert weights[at, 1, move].mean() > 0.85 and weights[at, 2, move].mean() > 0.95
    assert (lesson[3][0] == test["answer"])[two].mean() > 0.95


def test_three_hops_pick_the_latest_of_several_moves_more_surely_hop_by_hop(lesson):
    test, two = lesson["test"], lesson["two"]
    moved_twice = _moved_twice(test, two)
    right = lesson[3][0] == test["answer"]
    assert len(moved_twice) == 124 and round(right[moved_twice].mean(), 2) == 0.99
    latest = test["support"][moved_twice, 0]
    w = lesson[3][1][moved_twice][np.arange(len(moved_twice)), :, latest].mean(axis=0)
    assert np.all(np.diff(w) > 0) and round(w[-1], 2) == 1.0  # grows, to 1.00


def _head():
    rng = np.random.default_rng(21)
    M = rng.standard_normal((1, 16, 8))
    key = M[:, 5] + 0.3 * rng.standard_normal((1, 8))
    return key, M


def test_every_addressing_stage_sums_to_one_and_sharpening_restores_the_peak():
    key, M = _head()
    _, cache = ntm_address_forward(
        key,
        np.array([8.0]),
        np.array([0.7]),
        np.array([[0.05, 0.15, 0.8]]),
        np.array([3.0]),
        M,
        np.eye(16)[[11]],
    )
    st = cache.stages
    for stage in st.values():
        np.testing.assert_allclose(stage.sum(), 1.0, atol=1e-12)
    assert st["content"].argmax() == 5 and st["interpolated"][0, 11] >= 0.3
    assert st["shifted"].argmax() == 6 and st["shifted"].max() < 0.5
    assert st["sharpened"].argmax() == 6 and st["sharpened"].max() > 0.85


@pytest.mark.parametrize("gamma, final_peak", [(4.0, 0.999), (1.0, None)])
def test_the_location_walk_advances_one_row_per_step(gamma, final_peak):
    key, M = _head()
    w = np.eye(16)[[3]]
    s = np.array([[0.05, 0.1, 0.85]])
    blur = np.eye(16)[3]
    for t in range(1, 8):
        w, _ = ntm_address_forward(
            key, np.array([0.0]), np.array([0.0]), s, np.array([gamma]), M, w
        )
        blur = 0.05 * np.roll(blur, -1) + 0.1 * blur + 0.85 * np.roll(blur, 1)
        assert w.argmax() == 3 + t
    if final_peak is not None:
        assert w.max() > final_peak
    else:  # no sharpening: only the convolution with s, which blurs
        np.testing.assert_allclose(w[0], blur, atol=1e-12)
        assert w.max() == pytest.approx(0.32, abs=0.005)


def test_a_full_erase_with_a_one_hot_weighting_clears_exactly_one_row():
    _, M = _head()
    w = np.eye(16)[[7]]
    cleared, _ = ntm_write_forward(w, np.ones((1, 8)), np.zeros((1, 8)), M)
    assert np.all(cleared[0, 7] == 0)
    np.testing.assert_array_equal(np.delete(cleared, 7, 1), np.delete(M, 7, 1))
    new = np.arange(8.0)[None]
    written, _ = ntm_write_forward(w, np.ones((1, 8)), new, M)
    np.testing.assert_array_equal(ntm_read_forward(w, written)[0], new)


def _right_without(lesson, option):
    """Exercises 1-2: which test questions the three-hop model answers when retrained
    with one encoding (position_enc or temporal) off."""
    test = lesson["test"]
    params = _train(lesson["train"], 3, **{option: False})
    logits, _ = memnet_forward(
        test["story"], test["question"], params, position_enc=option != "position_enc"
    )
    return logits.argmax(axis=1) == test["answer"]


def _overall_one_two(right, two):
    return [round(r, 2) for r in (right.mean(), right[~two].mean(), right[two].mean())]


def test_exercise_1_without_the_position_encoding_little_is_lost(lesson):
    """About 0.97 overall, 0.99 one-fact, 0.94 two-fact (0.99, 1.00, 0.97 with it)."""
    two = lesson["two"]
    right = _right_without(lesson, "position_enc")
    assert _overall_one_two(right, two) == [0.97, 0.99, 0.94]
    with_it = lesson[3][0] == lesson["test"]["answer"]
    assert _overall_one_two(with_it, two) == [0.99, 1.0, 0.97]


def test_exercise_2_without_the_temporal_encoding_the_latest_move_is_lost(lesson):
    """About 0.55 on the 'moved twice' questions, against 0.99 with the encoding."""
    moved_twice = _moved_twice(lesson["test"], lesson["two"])
    right = _right_without(lesson, "temporal")
    assert round(right[moved_twice].mean(), 2) == 0.55
    with_it = lesson[3][0] == lesson["test"]["answer"]
    assert round(with_it[moved_twice].mean(), 2) == 0.99

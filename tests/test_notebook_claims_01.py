"""Claims of notebook 01 (similarity and softmax), recomputed from the package with
the notebook's hand-made word vectors."""

import numpy as np
import pytest

from attention_np import softmax_forward

WORDS = ["cat", "dog", "tiger", "car", "bike"]
E = np.array(
    [
        [1.0, 1.0, 0.0, 0.2],  # cat      features: animal, pet, vehicle, fast
        [1.0, 1.0, 0.0, 0.5],  # dog
        [1.0, 0.0, 0.0, 0.9],  # tiger
        [0.0, 0.0, 1.0, 0.9],  # car
        [0.0, 0.0, 1.0, 0.3],  # bike
    ]
)
SIM = E @ E.T
ANIMALS, VEHICLES = [0, 1, 2], [3, 4]


def within_group_scores():
    groups = (ANIMALS, VEHICLES)
    return np.array([SIM[i, j] for g in groups for i in g for j in g if i < j])


def test_all_dot_products_are_non_negative_so_the_heatmap_is_sequential():
    assert SIM.min() == pytest.approx(0.06) and SIM.max() == pytest.approx(2.25)


def test_cross_group_scores_are_the_fast_products_and_below_every_within_score():
    across = SIM[np.ix_(ANIMALS, VEHICLES)]
    fast = E[:, 3]
    np.testing.assert_allclose(across, np.outer(fast[ANIMALS], fast[VEHICLES]))
    within = within_group_scores()
    assert within.min() == pytest.approx(1.18) and within.max() == pytest.approx(2.1)
    assert across.min() == pytest.approx(0.06) and across.max() == pytest.approx(0.81)
    assert within.min() > across.max()


def test_tiger_car_is_069_of_tiger_cat_and_softmax_gives_car_013():
    assert SIM[2, 3] / SIM[2, 0] == pytest.approx(0.69, abs=0.005)
    P = softmax_forward(SIM)[0]
    assert round(P[2, 3], 2) == 0.13 and round(P[2, 0], 2) == 0.19
    assert round(P[4, ANIMALS].sum(), 2) == 0.35  # bike's weight on the animals


def test_every_rows_top_weight_is_in_its_own_group():
    group = np.array([0, 0, 0, 1, 1])
    P = softmax_forward(SIM)[0]
    np.testing.assert_array_equal(group[P.argmax(axis=1)], group)
    spread = SIM.max(axis=1) - SIM.min(axis=1)
    assert spread.max() == pytest.approx(2.1) and spread.argmax() == 1  # dog's row


def test_softmax_is_positive_sums_to_one_keeps_order_and_ignores_a_shift():
    w = softmax_forward(SIM[0])[0]
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(np.argsort(w), np.argsort(SIM[0]))
    np.testing.assert_allclose(softmax_forward(SIM[0] + 100.0)[0], w)


def test_at_the_lowest_temperature_cat_gives_dog_0998_because_cat_dog_beats_cat_cat():
    assert SIM[0, 1] > SIM[0, 0]
    w = softmax_forward(SIM[0] / 0.01)[0]
    assert round(w[1], 3) == 0.998


def test_entropy_rises_with_temperature_and_t20_is_within_001_of_uniform():
    temps = np.array([0.01, 0.1, 1.0, 4.0, 20.0])
    P = softmax_forward(SIM[0] / temps[:, None])[0]
    entropy = -(P * np.log(P)).sum(axis=-1)
    assert np.all(np.diff(entropy) > 0) and entropy[-1] <= np.log(5)
    assert np.abs(P[-1] - 0.2).max() <= 0.011


def test_longer_vectors_are_a_lower_temperature():
    a = 3.0
    louder = softmax_forward((a * E[0]) @ (a * E).T)[0]
    np.testing.assert_allclose(louder, softmax_forward(SIM[0] * a**2)[0])


def test_naive_softmax_overflows_and_the_stable_one_does_not():
    big = np.array([1000.0, 1001.0, 1002.0])
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.all(np.isnan(np.exp(big) / np.exp(big).sum()))
    np.testing.assert_allclose(
        softmax_forward(big)[0], [0.090, 0.245, 0.665], atol=1e-3
    )
    limits = [np.log(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)]
    np.testing.assert_allclose(limits, [11.1, 88.7, 709.8], atol=0.05)

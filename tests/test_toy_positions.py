"""attention_np.train.toy_positions: the previous-token task and its baselines."""

import itertools

import numpy as np

from attention_np import init_mha_params
from attention_np.train.tasks import Batch
from attention_np.train.toy_positions import (
    accuracy_per_position,
    position_blind_accuracy,
    previous_token_batch,
    previous_token_logits,
    train_previous_token,
)


def test_targets_are_the_previous_tokens_and_position_0_is_not_scored():
    batch = previous_token_batch(np.random.default_rng(0), 5, length=7, n_symbols=4)
    assert isinstance(batch, Batch) and batch.inputs.shape == (5, 7)
    np.testing.assert_array_equal(batch.targets[:, 1:], batch.inputs[:, :-1])
    assert not batch.mask[:, 0].any() and batch.mask[:, 1:].all()
    assert batch.inputs.min() >= 0 and batch.inputs.max() < 4


def test_position_blind_accuracy_on_hand_made_sequences():
    tokens = np.array([[0, 1, 2, 3], [0, 0, 1, 0]])
    # row 0: bags {0}, {0,1}, {0,1,2} -> 1, 1/2, 1/3; row 1: {0}, {0,0}, {0,0,1}
    expected = np.array([(1 + 1) / 2, (0.5 + 1) / 2, (1 / 3 + 2 / 3) / 2])
    np.testing.assert_allclose(position_blind_accuracy(tokens, n_symbols=4), expected)


def test_position_blind_accuracy_is_the_best_rule_over_all_orders():
    """Brute force: average over every order of the earlier tokens of the best
    guess that sees only the bag, which is the most frequent token."""
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 3, size=(4, 5))
    got = position_blind_accuracy(tokens, n_symbols=3)
    for b, i in itertools.product(range(4), range(1, 5)):
        earlier = tokens[b, :i]
        guess = np.bincount(earlier, minlength=3).argmax()
        orders = list(itertools.permutations(earlier))
        hits = [order[-1] == guess for order in orders]
        assert np.isclose(np.mean(hits), np.bincount(earlier).max() / i)
    assert got.shape == (4,) and np.all(got <= 1.0)


def test_rope_logits_do_not_change_when_every_position_shifts():
    params = init_mha_params(6, 1, rng=np.random.default_rng(2))
    tokens = np.random.default_rng(3).integers(0, 6, size=(3, 5))
    base, w = previous_token_logits(params, tokens, rope=True)
    shifted, _ = previous_token_logits(params, tokens, rope=True, offset=77)
    np.testing.assert_allclose(shifted, base, atol=1e-12)
    assert w.shape == (3, 5, 5) and np.all(np.triu(w[0], 1) == 0.0)  # causal


def test_without_rope_the_offset_is_ignored():
    params = init_mha_params(6, 1, rng=np.random.default_rng(2))
    tokens = np.random.default_rng(3).integers(0, 6, size=(3, 5))
    a, _ = previous_token_logits(params, tokens, rope=False)
    b, _ = previous_token_logits(params, tokens, rope=False, offset=9)
    np.testing.assert_array_equal(a, b)


def test_accuracy_per_position_of_perfect_logits_is_one():
    batch = previous_token_batch(np.random.default_rng(4), 3, length=6, n_symbols=5)
    logits = np.eye(5)[batch.targets]  # (B, N, S) argmax = target
    np.testing.assert_array_equal(accuracy_per_position(logits, batch), np.ones(5))


def test_training_is_reproducible_and_learns_with_rope():
    state = np.random.get_state()[1].copy()
    a = train_previous_token(rope=True, rng=np.random.default_rng(0), steps=60)
    b = train_previous_token(rope=True, rng=np.random.default_rng(0), steps=60)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.losses[-5:].mean() < 0.1 * a.losses[0]
    np.testing.assert_array_equal(np.random.get_state()[1], state)

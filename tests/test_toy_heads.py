"""attention_np.train.toy_heads: the two-job task, its trainer and its read-outs."""

import numpy as np
import pytest

from attention_np import init_mha_params
from attention_np.train.toy_heads import (
    TwoJobBatch,
    head_job_shares,
    train_two_job,
    two_job_batch,
    two_job_errors,
)


@pytest.fixture
def batch():
    return two_job_batch(np.random.default_rng(5), 7, length=6, n_content=2)


def test_batch_layout_is_content_flag_and_position(batch):
    x, y, flag = batch
    assert x.shape == (7, 6, 2 + 1 + 6) and y.shape == (7, 6, 4) and flag.shape == (7,)
    np.testing.assert_array_equal(x[..., 2].argmax(axis=1), flag)  # one flag each
    np.testing.assert_array_equal(x[..., 2].sum(axis=1), 1.0)
    np.testing.assert_array_equal(x[0, :, 3:], np.eye(6))  # one-hot positions


def test_targets_are_the_previous_and_the_flagged_content(batch):
    x, y, flag = batch
    content = x[..., :2]
    np.testing.assert_array_equal(y[:, 1:, :2], content[:, :-1])
    np.testing.assert_array_equal(y[:, 0, :2], content[:, 0])  # position 0: itself
    for b in range(7):
        np.testing.assert_array_equal(y[b, :, 2:], np.tile(content[b, flag[b]], (6, 1)))


def test_training_is_reproducible_from_its_seed_and_leaves_the_global_rng_alone():
    state = np.random.get_state()[1].copy()
    a = train_two_job(2, rng=np.random.default_rng(3), steps=5)
    b = train_two_job(2, rng=np.random.default_rng(3), steps=5)
    np.testing.assert_array_equal(a.losses, b.losses)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_training_lowers_the_loss_of_two_heads():
    run = train_two_job(2, rng=np.random.default_rng(0), steps=150)
    assert run.losses[-10:].mean() < 0.5 * run.losses[:10].mean()


def test_a_layer_that_outputs_zero_has_relative_error_one(batch):
    params = init_mha_params(9, 1, rng=np.random.default_rng(0))
    params["W_o"][:] = 0.0
    np.testing.assert_allclose(two_job_errors(params, batch, n_heads=1), 1.0)


def test_shares_sum_to_one_per_job_and_a_deleted_head_has_share_zero(batch):
    params = init_mha_params(9, 3, rng=np.random.default_rng(1))
    shares = head_job_shares(params, batch, n_heads=3)
    assert shares.shape == (3, 2)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    params["W_o"][3:6] = 0.0  # head 1's rows
    np.testing.assert_allclose(head_job_shares(params, batch, n_heads=3)[1], 0.0)


def test_drop_head_leaves_the_params_untouched(batch):
    params = init_mha_params(9, 3, rng=np.random.default_rng(1))
    before = {k: v.copy() for k, v in params.items()}
    dropped = two_job_errors(params, batch, n_heads=3, drop_head=1)
    for key in params:
        np.testing.assert_array_equal(params[key], before[key])
    params["W_o"][3:6] = 0.0
    np.testing.assert_allclose(two_job_errors(params, batch, n_heads=3), dropped)


def test_a_batch_is_a_named_tuple():
    b = two_job_batch(np.random.default_rng(0), 2, length=3, n_content=1)
    assert isinstance(b, TwoJobBatch) and b.x.dtype == np.float64

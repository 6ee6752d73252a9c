"""Claims of lesson 10 (training a tiny transformer), computed from the package.

The lesson trains both models live and then reads the committed checkpoints
(checkpoints/reversal.npz and checkpoints/copy.npz), which the command line made with
the same recipe and seed; on the machine that committed them they are bit-identical
to the notebook's runs. These tests load the same checkpoints instead of retraining
(1300 steps), so most of the file takes a few seconds on one core, and recompute each
claim with the lesson's seeds and sizes; the notebook itself is not executed. Only the
expected answers of exercises 1-3 retrain (about a minute of CPU in all), since they
are about models the lesson does not keep.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from attention_np.analysis import offset_mass, sink_mass
from attention_np.train import TrainConfig, default_model_config, evaluate, train
from attention_np.train import load_checkpoint as _load
from attention_np.train.probe_tasks import (
    copy_query_groups,
    permuted_copy_batch,
    wrong_digit_batch,
)
from attention_np.train.probes import (
    ablate_heads,
    head_outputs,
    probe_accuracy,
    residual_streams,
)
from attention_np.transformer import model_forward

ROOT = Path(__file__).resolve().parents[1]
L = 8
REVERSAL = TrainConfig(task="reversal", length=L, n_symbols=10, steps=1000)
COPY = TrainConfig(task="copy", length=L, n_symbols=10, steps=300)
EVAL_RNG = 10**6  # the seed of every accuracy in the lesson (and of the CLI)


def load(name):
    path = ROOT / "checkpoints" / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"checkpoints/{name}.npz is not in this tree")
    ckpt = _load(path)
    return ckpt["params"], ckpt["model_config"], ckpt["train_config"]


@pytest.fixture(scope="module")
def reversal():
    return load("reversal")


@pytest.fixture(scope="module")
def copy():
    return load("copy")


@pytest.fixture(scope="module")
def reversal_weights(reversal):
    """(n_layers, B, H, N, N) on the 1000 evaluation examples of section 5."""
    params, config, cfg = reversal
    _, cache = model_forward(
        cfg.batch(np.random.default_rng(3), 1000).inputs, params, config
    )
    return cache.weights


@pytest.fixture(scope="module")
def probe_sets():
    kw = dict(length=L, n_symbols=10)
    train = wrong_digit_batch(np.random.default_rng(8), 2000, **kw)
    return train, wrong_digit_batch(np.random.default_rng(9), 2000, **kw)


def accuracy(params, config, cfg):
    return evaluate(params, config, cfg, rng=np.random.default_rng(EVAL_RNG))


def test_the_checkpoints_hold_the_lessons_recipes_and_solve_both_tasks(reversal, copy):
    for (params, config, cfg), recipe in ((reversal, REVERSAL), (copy, COPY)):
        assert cfg == recipe and config == default_model_config(recipe)
        assert sum(p.size for p in params.values()) == 102_539
        scores = accuracy(params, config, cfg)
        assert scores == {"token_accuracy": 1.0, "sequence_accuracy": 1.0}


def test_only_layer1_head0_sits_on_the_mirrored_key_heads_2_and_3_one_key_later(
    reversal_weights,
):
    rows = np.arange(L, 2 * L)
    mirrored = reversal_weights[..., rows, 2 * L - 1 - rows].mean(axis=(1, 3))
    later = reversal_weights[..., rows, 2 * L - rows].mean(axis=(1, 3))
    assert round(mirrored[1, 0], 2) == 0.64 and mirrored[1].argmax() == 0
    assert mirrored[1, 2] < 0.1 and mirrored[1, 3] < 0.1
    assert later[1, 2] > 0.95 and later[1, 3] > 0.7
    assert mirrored[0].max() < 0.3  # layer 0 draws no anti-diagonal


def test_layer0_writes_every_positions_left_neighbour(reversal, probe_sets):
    params, config, _ = reversal
    train, test = probe_sets
    p = np.arange(1, L)
    before_after = []
    for layer in (0, 1):
        tr = residual_streams(train.clean, params, config)[layer][:, p]
        te = residual_streams(test.clean, params, config)[layer][:, p]
        left = (train.digits[:, p - 1], test.digits[:, p - 1])
        before_after.append(probe_accuracy(tr, left[0], te, left[1], n_classes=10))
    assert before_after[0] < 0.15 and before_after[1] > 0.99


def test_a_wrong_fed_digit_leaves_head2_on_key_2L_minus_q_position_beats_content(
    reversal, probe_sets
):
    params, config, _ = reversal
    test = probe_sets[1]
    rows, q, p = np.arange(len(test.query)), test.query, test.source
    logits, cache = model_forward(test.inputs, params, config)
    stays = cache.weights[:, rows, :, q, 2 * L - q].mean(axis=0)[1]  # (H,)
    moves = cache.weights[:, rows, :, q, p].mean(axis=0)[1]
    assert stays[2] > 0.55 and moves[2] < 0.2 and stays[2] > 3 * moves[2]
    _, clean = model_forward(test.clean, params, config)
    before = clean.weights[:, rows, :, q, p].mean(axis=0)[1]  # key p, clean input
    assert before[2] < 5e-4 and moves[2] > 0.15  # head 2: 0.000 -> 0.16
    assert round(before[3], 2) == 0.01 and round(moves[3], 2) == 0.04  # head 3
    pred = logits.argmax(-1)[rows, q]
    right = np.mean(pred == test.digits[rows, 2 * L - 1 - q])
    follow = np.mean(pred == test.digits[rows, p - 1])
    assert right > 0.7 and follow < 0.2


def test_head2s_output_carries_the_answer(reversal, probe_sets):
    params, config, _ = reversal
    train, test = probe_sets
    j = np.arange(1, L)
    out_tr = head_outputs(train.clean, params, config)[1][..., L + j, :]
    out_te = head_outputs(test.clean, params, config)[1][..., L + j, :]
    answer = (train.digits[:, L - 1 - j], test.digits[:, L - 1 - j])
    reads = probe_accuracy(
        out_tr[:, 2], answer[0], out_te[:, 2], answer[1], n_classes=10
    )
    assert reads > 0.99


def test_the_model_needs_head2_not_the_mirror_head0(reversal):
    params, config, cfg = reversal
    without = [
        accuracy(ablate_heads(params, config, 1, [h]), config, cfg)["token_accuracy"]
        for h in range(4)
    ]
    assert [round(without[h], 3) for h in (0, 1, 3)] == [1.0, 1.0, 1.0]
    assert round(without[2], 3) == 0.882
    only_head2 = ablate_heads(params, config, 1, [0, 1, 3])  # exercise 4
    assert round(accuracy(only_head2, config, cfg)["token_accuracy"], 3) == 0.993
    without_2_and_3 = ablate_heads(params, config, 1, [2, 3])  # exercise 4, second part
    assert round(accuracy(without_2_and_3, config, cfg)["token_accuracy"], 3) == 0.639


def copy_weights(copy):
    params, config, cfg = copy
    batch = cfg.batch(np.random.default_rng(6), 200)
    _, cache = model_forward(batch.inputs, params, config)
    return cache.weights, batch.mask.sum(axis=1)


def test_copy_layer1_has_induction_heads_of_different_strengths(copy):
    W, lengths = copy_weights(copy)
    induction = np.mean(
        [
            offset_mass(W[:, b], -l)[..., l + 1 : 2 * l].mean(-1)
            for b, l in enumerate(lengths)
        ],
        axis=0,
    )
    np.testing.assert_allclose(induction[1], [0.77, 0.60, 0.16, 0.47], atol=0.01)
    assert induction[0].max() < 0.1
    prev = offset_mass(W, -1)[..., 1:].mean(axis=(1, 3))  # no crisp previous-token head
    assert prev[0].max() < 0.25 and prev[0].min() > np.mean(1 / np.arange(2, 2 * L + 1))


def test_copy_layer0_spreads_the_predecessor_over_its_four_heads(copy):
    params, config, cfg = copy
    kw = dict(length=L, n_symbols=10)
    train = permuted_copy_batch(np.random.default_rng(8), 2000, **kw)
    test = permuted_copy_batch(np.random.default_rng(9), 2000, **kw)
    p = np.arange(1, L)
    left = (train.inputs[:, p - 1], test.inputs[:, p - 1])
    stream = [
        residual_streams(b.inputs, params, config)[1][:, p] for b in (train, test)
    ]
    assert probe_accuracy(stream[0], left[0], stream[1], left[1], n_classes=10) > 0.98
    heads = [
        head_outputs(b.inputs, params, config)[0][..., p, :] for b in (train, test)
    ]
    one_head = [
        probe_accuracy(heads[0][:, h], left[0], heads[1][:, h], left[1], n_classes=10)
        for h in range(4)
    ]
    assert max(one_head) < 0.7
    acc = lambda h: accuracy(ablate_heads(params, config, 0, h), config, cfg)
    assert min(acc([h])["token_accuracy"] for h in range(4)) > 0.89
    assert acc(range(4))["token_accuracy"] < 0.2


def test_a_permuted_second_half_is_copied_by_the_induction_rule(copy):
    params, config, _ = copy
    perm = permuted_copy_batch(np.random.default_rng(7), 300, length=L, n_symbols=10)
    logits, _ = model_forward(perm.inputs, params, config)
    pred, d = logits.argmax(-1)[:, L + 1 :], perm.disagree
    assert d.sum() == 1603
    assert np.mean(pred[d] == perm.induction[d]) > 0.96
    assert np.mean(pred[d] == perm.in_order[d]) < 0.01


def test_copy_sink_mass_is_high_where_there_is_nothing_to_read_low_at_the_copy(copy):
    W, lengths = copy_weights(copy)
    sink = sink_mass(W, 1)[1]  # (B, H, N) layer 1, weight on key 0
    groups = copy_query_groups(lengths, 2 * L)
    mean = {
        g: np.array([sink[:, h][m].mean() for h in range(4)]) for g, m in groups.items()
    }
    uniform_padding = np.mean(
        np.broadcast_to(1 / np.arange(1, 2 * L + 1), lengths.shape + (2 * L,))[
            groups["padding"]
        ]
    )
    assert mean["copy"].max() < 0.05
    ratio = mean["padding"] / uniform_padding  # "five to seven times" uniform
    assert mean["padding"].min() > 0.39 and 5 < ratio.min() and ratio.max() < 7.1
    assert mean["separator"].min() > 0.5  # the separator outputs x_0: key 0
    assert sink_mass(W, 1)[0][..., 1:].mean() < 0.08  # layer 0


def test_the_reversal_separator_query_puts_no_layer1_weight_on_the_first_token(
    reversal_weights,
):
    """Exercise 5's check."""
    assert sink_mass(reversal_weights, 1)[1][..., L].max() < 1e-6


def _retrained_accuracy(cfg, **model_options):
    """Token accuracy of a model retrained with the lesson's recipe (seed cfg.seed),
    on 1000 new examples (default_rng(10**6)), as the exercises ask."""
    model_config = default_model_config(cfg, **model_options)
    params, _ = train(
        model_config, cfg, rng=np.random.default_rng(cfg.seed), progress=False
    )
    scores = evaluate(params, model_config, cfg, rng=np.random.default_rng(10**6))
    return scores["token_accuracy"]


REVERSAL = TrainConfig(task="reversal", length=8, n_symbols=10, steps=1000)
COPY = TrainConfig(task="copy", length=8, n_symbols=10, steps=300)


def test_exercise_1_one_layer_reverses_but_cannot_copy():
    """Exercise 1: with one layer reversal stays at 1.000, copy falls to 0.469."""
    assert round(_retrained_accuracy(REVERSAL, n_layers=1), 3) == 1.0
    assert round(_retrained_accuracy(COPY, n_layers=1), 3) == 0.469


@pytest.mark.parametrize("pos", ["rope", "sinusoidal"])
def test_exercise_2_both_tasks_reach_1_with_other_positions(pos):
    """Exercise 2: all four runs (two tasks, RoPE and sinusoidal) reach 1.000."""
    for cfg in (REVERSAL, COPY):
        assert round(_retrained_accuracy(cfg, pos=pos), 3) == 1.0, cfg.task


@pytest.mark.parametrize("change", [{"clip": 1e-3}, {"lr": 3e-2}, {"warmup": 1}])
def test_exercise_3_the_recipe_variants_still_reach_1(change):
    """Exercise 3: clip=1e-3, lr=3e-2 and warmup=1 each still reach 1.000."""
    cfg = dataclasses.replace(REVERSAL, **change)
    assert round(_retrained_accuracy(cfg), 3) == 1.0

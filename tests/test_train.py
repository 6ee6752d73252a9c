import dataclasses

import numpy as np
import pytest

from attention_np.train import (
    CheckpointError,
    TrainConfig,
    default_model_config,
    evaluate,
    learning_rate,
    load_checkpoint,
    make_batch,
    save_checkpoint,
    train,
)
from attention_np.train.__main__ import main as train_main
from attention_np.transformer import init_params

# a small reversal setting that reaches 100% token accuracy in ~150 steps (a few s)
FAST = TrainConfig(
    task="reversal", length=4, n_symbols=6, steps=150, lr=1e-2, batch_size=32, warmup=20
)


def test_reversal_batch_targets_are_the_reversed_input(rng):
    batch = make_batch("reversal", rng, 3, length=4, n_symbols=6)
    x = batch.inputs[:, :4]
    assert np.all(batch.inputs[:, 4] == 6)  # the separator
    np.testing.assert_array_equal(batch.targets[:, 4:], x[:, ::-1])
    np.testing.assert_array_equal(batch.mask[0], [False] * 4 + [True] * 4)


def test_copy_batch_has_varying_lengths_distinct_symbols_and_scored_copies(rng):
    batch = make_batch("copy", rng, 64, length=6, n_symbols=10)
    lengths = batch.mask.sum(axis=1)
    assert lengths.min() >= 3 and lengths.max() <= 6 and len(set(lengths)) > 1
    for inp, tgt, m, l in zip(
        batch.inputs, batch.targets, batch.mask, lengths, strict=True
    ):
        x = inp[:l]
        assert len(set(x)) == l and inp[l] == 10
        np.testing.assert_array_equal(tgt[m], x)


def test_batches_depend_only_on_the_rng():
    a = make_batch("copy", np.random.default_rng(3), 4, length=5, n_symbols=7)
    b = make_batch("copy", np.random.default_rng(3), 4, length=5, n_symbols=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_unknown_task_and_too_few_symbols_are_reported(rng):
    with pytest.raises(ValueError, match="task"):
        make_batch("sort", rng, 2, length=3, n_symbols=5)
    with pytest.raises(ValueError, match="n_symbols >= length"):
        make_batch("copy", rng, 2, length=6, n_symbols=5)


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, final_lr_frac=0.1)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert np.all(np.diff(lrs[10:]) <= 0) and lrs[-1] >= 0.1


def test_a_short_run_reaches_99_percent_on_reversal():
    model_config = default_model_config(FAST, d_model=32)
    assert model_config.n_layers == 2
    params, history = train(
        model_config, FAST, rng=np.random.default_rng(0), progress=False
    )
    assert len(history["loss"]) == FAST.steps
    assert history["loss"][-1] < history["loss"][0] / 10
    scores = evaluate(params, model_config, FAST, rng=np.random.default_rng(1))
    assert scores["token_accuracy"] >= 0.99


def test_train_refuses_a_model_that_does_not_fit_the_task():
    small = dataclasses.replace(default_model_config(FAST), max_len=5)
    with pytest.raises(ValueError, match="does not fit"):
        train(small, FAST, rng=np.random.default_rng(0), progress=False)


@pytest.fixture
def checkpoint(tmp_path, rng):
    model_config = default_model_config(FAST, d_model=8, n_heads=2)
    params = init_params(model_config, rng=rng, dtype=np.float32)
    path = tmp_path / "ckpt.npz"
    history = {"step": [0, 1], "loss": [2.0, 1.5], "accuracy": [0.1, 0.2]}
    save_checkpoint(path, params, model_config, FAST, history=history, meta={"a": 1})
    return path, params, model_config


def test_checkpoint_round_trip(checkpoint):
    path, params, model_config = checkpoint
    ckpt = load_checkpoint(path, expected_config=model_config)
    assert ckpt["model_config"] == model_config and ckpt["train_config"] == FAST
    assert ckpt["meta"] == {"a": 1}
    np.testing.assert_array_equal(ckpt["history"]["loss"], [2.0, 1.5])
    assert set(ckpt["params"]) == set(params)
    for k in params:
        np.testing.assert_array_equal(ckpt["params"][k], params[k])


def rewrite(path, drop=None, change=None):
    """Copy the archive without ``drop`` and with ``change`` = (key, array)."""
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files if k != drop}
    if change:
        entries[change[0]] = change[1]
    np.savez(path, **entries)


def test_missing_parameter_is_named(checkpoint):
    path, _, _ = checkpoint
    rewrite(path, drop="param/block1.mlp.W_1")
    with pytest.raises(CheckpointError, match=r"missing \['block1.mlp.W_1'\]"):
        load_checkpoint(path)


def test_wrong_shape_is_named(checkpoint):
    path, _, _ = checkpoint
    rewrite(path, change=("param/head.W", np.zeros((3, 3), np.float32)))
    with pytest.raises(CheckpointError, match=r"'head.W' has shape \(3, 3\)"):
        load_checkpoint(path)


def test_other_model_config_is_refused(checkpoint):
    path, _, model_config = checkpoint
    other = dataclasses.replace(model_config, n_layers=3)
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(path, expected_config=other)


def test_corrupt_config_is_reported(checkpoint):
    path, _, _ = checkpoint
    rewrite(path, change=("model_config", np.array('{"vocab_size": 7}')))
    with pytest.raises(CheckpointError, match="invalid model_config"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content", [b"not a zip file", b"PK\x03\x04 truncated", b""], ids=str
)
def test_a_file_that_is_not_an_npz_is_reported(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.npz"):
        load_checkpoint(path)


def test_a_plain_npz_or_npy_is_not_a_checkpoint(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not an attention_np checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load_checkpoint(tmp_path / "arr.npy")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")


def test_command_line_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "sub" / "rev.npz"
    argv = [
        "reversal",
        "--out",
        str(out),
        "--steps",
        "3",
        "--length",
        "3",
        "--d-model",
        "8",
        "--n-heads",
        "2",
        "--no-progress",
    ]
    assert train_main(argv) == 0
    assert "3 steps" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt["meta"]["steps"] == 3 and ckpt["train_config"].length == 3


def test_training_restores_the_blas_thread_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    cfg = dataclasses.replace(FAST, steps=2)
    model_config = default_model_config(cfg, d_model=8, n_heads=2)
    train(model_config, cfg, rng=np.random.default_rng(0), progress=False)
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before


def test_committed_reversal_checkpoint_loads_and_scores_99_percent():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "checkpoints" / "reversal.npz"
    if not path.exists():
        pytest.skip("checkpoints/reversal.npz is not in this tree")
    ckpt = load_checkpoint(path)
    assert ckpt["model_config"].n_layers == 2
    assert ckpt["train_config"].task == "reversal"
    scores = evaluate(
        ckpt["params"],
        ckpt["model_config"],
        ckpt["train_config"],
        rng=np.random.default_rng(2),
    )
    assert scores["token_accuracy"] >= 0.99

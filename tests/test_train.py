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
    train_step,
)
from attention_np.train.__main__ import main as train_main
from attention_np.transformer import adam_init, init_params

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
    with pytest.raises(CheckpointError, match=r"missing keys \['block1.mlp.W_1'\]"):
        load_checkpoint(path)


def test_wrong_shape_is_named(checkpoint):
    path, _, _ = checkpoint
    rewrite(path, change=("param/head.W", np.zeros((3, 3), np.float32)))
    with pytest.raises(CheckpointError, match=r"'head.W'\] must have shape \(8, 7\)"):
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


# --- configs, divergence, atomic checkpoints ----------------------------------------


def test_train_config_round_trips_through_json_and_normalises_numbers():
    cfg = TrainConfig(lr=1, steps=np.int64(5), beta1=0)
    assert type(cfg.lr) is float and type(cfg.steps) is int
    assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_train_config_json_without_the_adam_betas_takes_the_defaults():
    text = '{"task": "copy", "length": 4, "n_symbols": 6}'
    cfg = TrainConfig.from_json(text)
    assert (cfg.beta1, cfg.beta2) == (0.9, 0.999)


def nan_params(model_config, seed=0):
    params = init_params(
        model_config, rng=np.random.default_rng(seed), dtype=np.float32
    )
    params["embed.W"][0, 0] = np.nan  # every sequence holding token 0 gets NaN logits
    return params


def test_a_non_finite_loss_stops_training_and_leaves_the_given_params_alone():
    cfg = dataclasses.replace(FAST, steps=5)
    model_config = default_model_config(cfg, d_model=8, n_heads=2)
    params = nan_params(model_config)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        train(model_config, cfg, rng=np.random.default_rng(0), params=params)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_a_diverged_train_step_updates_nothing(rng):
    model_config = default_model_config(FAST, d_model=8, n_heads=2)
    params = nan_params(model_config)
    state = adam_init(params)
    before = {k: v.copy() for k, v in params.items()}
    batch = FAST.batch(rng)
    with pytest.raises(FloatingPointError, match="diverged"):
        train_step(params, state, batch, model_config, FAST, 0)
    assert state["t"] == 0 and not any(m.any() for m in state["m"].values())
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_train_updates_given_params_in_place_when_it_succeeds():
    cfg = dataclasses.replace(FAST, steps=2)
    model_config = default_model_config(cfg, d_model=8, n_heads=2)
    params = init_params(model_config, rng=np.random.default_rng(0), dtype=np.float32)
    before = params["head.W"].copy()
    out, _ = train(
        model_config, cfg, rng=np.random.default_rng(0), params=params, progress=False
    )
    assert out is params and not np.array_equal(params["head.W"], before)


def test_command_line_stops_with_exit_status_1_when_the_loss_diverges(
    tmp_path, capsys, monkeypatch
):
    import attention_np.train.loop as loop

    monkeypatch.setattr(loop, "init_params", lambda config, **kw: nan_params(config))
    out = tmp_path / "nan.npz"
    argv = ["reversal", "--out", str(out), "--steps", "3", "--d-model", "8"]
    with pytest.raises(SystemExit) as info:
        train_main([*argv, "--n-heads", "2", "--no-progress"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "error: training diverged" in err and "no checkpoint written" in err
    assert not out.exists()


def test_save_checkpoint_refuses_nan_params_and_writes_nothing(tmp_path):
    model_config = default_model_config(FAST, d_model=8, n_heads=2)
    path = tmp_path / "nan.npz"
    with pytest.raises(ValueError, match=r"params\['embed.W'\] contains NaN"):
        save_checkpoint(path, nan_params(model_config), model_config, FAST)
    assert list(tmp_path.iterdir()) == []


def test_save_checkpoint_replaces_an_existing_file_whole(checkpoint):
    path, params, model_config = checkpoint
    save_checkpoint(path, params, model_config, FAST, meta={"b": 2})
    assert load_checkpoint(path)["meta"] == {"b": 2}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file


def test_a_checkpoint_without_biases_round_trips(tmp_path, rng):
    model_config = default_model_config(FAST, d_model=8, n_heads=2, bias=False)
    params = init_params(model_config, rng=rng, dtype=np.float32)
    save_checkpoint(tmp_path / "nb.npz", params, model_config, FAST)
    ckpt = load_checkpoint(tmp_path / "nb.npz")
    assert ckpt["model_config"].bias is False and "head.b" not in ckpt["params"]


def test_training_never_touches_the_global_random_state():
    cfg = dataclasses.replace(FAST, steps=2)
    model_config = default_model_config(cfg, d_model=8, n_heads=2)
    state = np.random.get_state()[1].copy()
    params, _ = train(model_config, cfg, rng=np.random.default_rng(0), progress=False)
    evaluate(params, model_config, cfg, rng=np.random.default_rng(1), n_examples=8)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_the_same_seed_trains_the_same_parameters():
    cfg = dataclasses.replace(FAST, steps=3)
    model_config = default_model_config(cfg, d_model=8, n_heads=2)
    runs = [
        train(model_config, cfg, rng=np.random.default_rng(5), progress=False)[0]
        for _ in range(2)
    ]
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])

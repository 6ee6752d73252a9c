"""MQAR: the task generator follows Zoology's layout, the model's pieces behave, a
short training run learns, and the benchmark script runs end to end."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from attention_np import recurrences as R
from attention_np.recurrences.mqar_train import (
    adam_update,
    clip_by_global_norm,
    learning_rate,
    mqar_seq_len,
    train_mqar,
)


def test_batch_layout_pairs_then_queries():
    n, N, V = 6, 40, 32
    b = R.mqar_batch(n, seq_len=N, vocab_size=V, batch=50, rng=np.random.default_rng(0))
    assert b.ids.shape == b.targets.shape == b.mask.shape == (50, N)
    keys, values = b.ids[:, 0 : 2 * n : 2], b.ids[:, 1 : 2 * n : 2]
    assert np.all((keys >= 1) & (keys < V // 2)) and np.all(values >= V // 2)
    assert all(len(set(row)) == n for row in keys)  # every key once per sequence
    assert np.all(b.mask.sum(axis=1) == n) and not b.mask[:, : 2 * n].any()
    for row in range(50):  # each query asks a stored key and expects its value
        lookup = dict(zip(keys[row], values[row], strict=True))
        for t in np.flatnonzero(b.mask[row]):
            assert b.targets[row, t] == lookup[b.ids[row, t]]
        assert sorted(b.ids[row, b.mask[row]]) == sorted(keys[row])


def test_queries_follow_zoologys_power_law():
    """power_a = 0.01 puts most queries right after the pairs; 1.0 spreads them."""
    rng = np.random.default_rng(1)
    first = lambda a: R.mqar_batch(4, seq_len=256, vocab_size=64, batch=400, rng=rng,
                                   power_a=a).mask[:, 8:].argmax(axis=1)  # fmt: skip
    assert np.median(first(0.01)) < np.median(first(1.0))


def test_the_same_seed_gives_the_same_batch():
    make = lambda: R.mqar_batch(3, seq_len=16, vocab_size=16, batch=4,
                                rng=np.random.default_rng(5))  # fmt: skip
    for a, b in zip(make(), make(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_masked_cross_entropy_counts_only_the_queries():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 5, 7))
    targets = rng.integers(0, 7, (2, 5))
    mask = np.zeros((2, 5), dtype=bool)
    mask[0, 3] = mask[1, 1] = True
    loss, dlogits, acc = R.masked_cross_entropy(logits, targets, mask)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(logp[0, 3, targets[0, 3]] + logp[1, 1, targets[1, 1]]) / 2
    assert loss == pytest.approx(expected)
    assert np.all(dlogits[~mask] == 0)
    np.testing.assert_allclose(dlogits.sum(axis=-1), 0, atol=1e-12)


def test_adam_and_clipping():
    params, grads, state = {"w": np.ones(3)}, {"w": np.array([3.0, 0.0, -4.0])}, {}
    clipped = clip_by_global_norm(grads, 1.0)
    assert np.linalg.norm(clipped["w"]) == pytest.approx(1.0)
    adam_update(params, clipped, state, lr=0.1)  # the first step moves by lr * sign
    np.testing.assert_allclose(params["w"], [0.9, 1.0, 1.1], atol=1e-6)
    assert learning_rate(0, 100, 1.0) == pytest.approx(0.1)
    assert learning_rate(10, 100, 1.0) == pytest.approx(1.0)
    assert learning_rate(99, 100, 1.0) < 0.01
    assert mqar_seq_len(4) == 64 and mqar_seq_len(32) == 128


@pytest.mark.parametrize("kind", R.KINDS)
def test_mixer_forms_agree(kind):
    rng = np.random.default_rng(3)
    params = R.init_mixer_params(8, 2, kind=kind, rng=rng)
    x = rng.standard_normal((2, 9, 8))
    outs = [R.mixer_forward(x, params, kind=kind, n_heads=2, form=f, chunk_size=4)[0]
            for f in ("recurrent", "parallel", "chunkwise")]  # fmt: skip
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], atol=1e-10)


def test_a_short_training_run_learns_two_pairs():
    _, losses, acc = train_mqar([2], {"mixer": "attention", "n_heads": 1}, steps=150,
                                lr=1e-2, rng=np.random.default_rng(0), d_model=16,
                                vocab_size=16, batch=16)  # fmt: skip
    assert losses[-20:].mean() < 0.5 * losses[:20].mean()
    assert acc[2] > 0.5


PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mqar_bench.py"


def test_the_benchmark_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    spec = importlib.util.spec_from_file_location("mqar_bench", PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--quick", "--workers", "1", "--mixers", "attention", "gated_deltanet"]
    argv += ["--out-dir", str(tmp_path), "--json", str(tmp_path / "mqar.json")]
    assert bench.main(argv) == 0
    assert "Gated DeltaNet" in capsys.readouterr().out
    assert (tmp_path / "mqar_accuracy.png").stat().st_size > 0
    assert '"gated_deltanet"' in (tmp_path / "mqar.json").read_text()
    with pytest.raises(SystemExit):
        bench.parse(["--heads", "3"])  # 64 is not a multiple of 3

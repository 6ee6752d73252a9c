"""The claims of notebook 12 (encoder-decoder and bidirectional attention), computed
from the package with the notebook's seeds: every number or comparison its prose
states that no cell above it prints or asserts.

The two translation models are trained here exactly as in the notebook (300 steps,
seed 1, probe batch of seed 3), so this module takes a while; the MLM and stream
models are the committed checkpoints the notebook loads.
"""

from pathlib import Path

import numpy as np
import pytest

from attention_np.train import (
    TranslateConfig,
    accuracy_per_position,
    evaluate_stream,
    evaluate_translation,
    load_run,
    palindromes,
    train_translation_probed,
    translation_batch,
    translation_model_config,
)
from attention_np.train import translate as task
from attention_np.transformer import encdec_forward, encoder_model_forward

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def probe():
    return translation_batch(np.random.default_rng(3), 300, held_out=True)


@pytest.fixture(scope="module")
def runs(probe):
    """{score: (params, history, seen)} as in the notebook's section 4."""
    show = int(np.argmax(probe.src_lengths == task.MAX_SRC))
    cfg = TranslateConfig(steps=300)
    return {
        score: train_translation_probed(
            translation_model_config(score=score),
            cfg,
            probe,
            rng=np.random.default_rng(1),
            every=25,
            show=show,
        )
        for score in ("dot", "additive")
    }


def chance(probe):
    per_token = np.broadcast_to(1 / probe.src_lengths[:, None], probe.gold.shape)
    return float(per_token[probe.gold >= 0].mean())


def test_alignment_climbs_from_the_random_level_to_about_0_9(runs, probe):
    seen = runs["dot"][2]
    best = seen["alignment"].max(axis=(1, 2))  # best head at each probe step
    assert abs(best[0] - chance(probe)) < 0.05  # step 0: random attention
    assert 0.85 < best[-1] < 0.95  # "about 0.9 in 300 steps"
    every_head = seen["alignment"][-1]
    assert np.all(every_head > chance(probe) + 0.3)  # every head rises


def test_the_two_misses_at_step_300_read_the_source_of_the_word_just_read(runs, probe):
    seen = runs["dot"][2]
    l, h = np.unravel_index(
        np.argmax(seen["alignment"][-1]), seen["alignment"].shape[1:]
    )
    show = int(np.argmax(probe.src_lengths == task.MAX_SRC))
    gold, out = probe.gold[show], probe.tgt_out[show]
    rows = np.flatnonzero(gold >= 0)
    looked = seen["weights"][-1, l, h][rows].argmax(-1)
    missed = rows[looked != gold[rows]]
    adjectives = {task.TGT_WORDS.index(target) for _, target in task.ADJECTIVES}
    verbs = {task.TGT_WORDS.index(target) for _, target in task.VERBS}
    assert len(missed) == 2 and all(out[r] in adjectives for r in missed)
    for r in missed:  # the input of row r is output r - 1, which came from gold[r - 1]
        assert looked[list(rows).index(r)] == gold[r - 1]
    assert any(t in verbs for t in out[rows[looked == gold[rows]]])  # the verb hits


def test_dot_learns_faster_than_additive(runs):
    dot, add = runs["dot"], runs["additive"]
    dot_align = dot[2]["alignment"].max(axis=(1, 2))
    add_align = add[2]["alignment"].max(axis=(1, 2))
    assert np.all(dot_align[1:] > add_align[1:])  # every probe after the first
    assert np.mean(dot[1]["loss"][-50:]) < np.mean(add[1]["loss"][-50:])
    rng = lambda: np.random.default_rng(2)
    config = translation_model_config
    dot_exact = evaluate_translation(dot[0], config(), rng=rng())["exact_match"]
    add_exact = evaluate_translation(add[0], config(score="additive"), rng=rng())
    assert dot_exact >= 0.99 > add_exact["exact_match"]


@pytest.fixture(scope="module")
def mlm():
    return {
        n: load_run(CHECKPOINTS / f"mlm_{n}.npz") for n in ("bidirectional", "causal")
    }


def test_causal_fails_exactly_where_the_mirror_is_to_the_right(mlm):
    cfg = mlm["causal"]["train_config"]
    acc = {
        name: accuracy_per_position(
            run["params"],
            run["model_config"],
            cfg,
            causal=name == "causal",
            rng=np.random.default_rng(5),
        )
        for name, run in mlm.items()
    }
    half = cfg.length
    assert acc["causal"][:half].max() < 0.2  # guessing, 1 in 10
    assert acc["causal"][half:].min() > 0.95
    assert acc["bidirectional"].min() > 0.95


def test_layer_0_head_2_is_a_mirror_head(mlm):
    run, cfg = mlm["bidirectional"], mlm["bidirectional"]["train_config"]
    x = palindromes(np.random.default_rng(7), 300, length=cfg.length, n_symbols=10)
    _, cache = encoder_model_forward(
        x, run["params"], run["model_config"], causal=False
    )
    W = cache.weights[0, :, 2]  # (B, N, N)
    N = x.shape[1]
    on_mirror = W[:, np.arange(N), N - 1 - np.arange(N)].mean(axis=0)  # (N,)
    assert on_mirror.min() > 0.5  # every query, on average


def test_no_strong_sinks_and_the_largest_is_the_decoders_self_attention(runs, probe):
    params = runs["dot"][0]
    _, cache = encdec_forward(
        probe.src,
        probe.tgt_in,
        params,
        translation_model_config(),
        src_lengths=probe.src_lengths,
    )
    after0 = probe.tgt_mask & (np.arange(task.MAX_TGT) > 0)
    rows = after0[None, :, None]
    dec_self = (cache.self_weights[..., 0] * rows).sum(axis=(1, 3)) / after0.sum()
    real = (np.arange(task.MAX_SRC) < probe.src_lengths[:, None])[None, :, None]
    enc = (cache.enc_weights[..., 0] * real).sum(axis=(1, 3)) / real.sum()
    assert dec_self.max() > enc.max() and dec_self.max() < 0.5


@pytest.fixture(scope="module")
def streams():
    run = load_run(CHECKPOINTS / "stream.npz")
    policies = {
        "dense": (0, None),
        "window": (0, 8),
        "1 sink": (1, 7),
        "4 sinks": (4, 4),
    }
    cfg = run["train_config"]
    return cfg.length, {
        name: evaluate_stream(
            run["params"],
            run["model_config"],
            cfg,
            length=4 * cfg.length,
            n_sink=k,
            window=w,
            rng=np.random.default_rng(9),
        )
        for name, (k, w) in policies.items()
    }


def test_streaming_past_the_training_length(streams):
    T, curves = streams
    past = {
        n: (np.nanmean(c["accuracy"][T - 1 :]), np.nanmean(c["loss"][T - 1 :]))
        for n, c in curves.items()
    }
    assert past["dense"][0] < 0.5  # dense fails
    assert past["window"][0] > 0.95  # window-only does not collapse
    assert past["window"][1] > 10 * past["1 sink"][1]  # but BOS helps
    assert past["4 sinks"][1] > max(past["window"][1], past["1 sink"][1])  # worst cache
    dense = curves["dense"]["accuracy"]
    assert dense[T - 1] > 0.9 and np.nanmean(dense[-20:]) < 0.4  # it fails gradually

"""The translation, MLM and stream tasks, their training loops, run checkpoints and
the command line (``python -m attention_np.train translate|mlm|stream``)."""

import numpy as np
import pytest

from attention_np import train as tr
from attention_np.train import translate as T
from attention_np.train.__main__ import main as train_main
from attention_np.transformer import init_encdec_params, init_params

# --- the translation task ------------------------------------------------------------


def test_every_target_word_translates_the_source_word_at_its_gold_position(rng):
    batch = tr.translation_batch(rng, 200)
    noun_of = {s: t for s, t, _ in T.NOUNS}
    meaning = {**noun_of, **dict(T.ADJECTIVES), **dict(T.VERBS)}
    gender = {t: g for _, t, g in T.NOUNS}
    for b in range(200):
        src = tr.src_labels(batch.src[b])
        for word, g in zip(tr.tgt_labels(batch.tgt_out[b]), batch.gold[b], strict=True):
            if word in ("</s>", "_"):
                assert g == -1
            elif word in ("le", "la"):  # the article agrees with the noun it sits on
                assert gender[noun_of[src[g]]] == word
            else:
                assert meaning[src[g]] == word


def test_alignment_is_not_the_identity_and_lengths_differ(rng):
    batch = tr.translation_batch(rng, 200)
    n_tgt = batch.tgt_mask.sum(axis=1) - 1  # without EOS
    assert np.all(n_tgt == batch.src_lengths + 2)  # two articles
    moved = batch.gold[:, 2] != 2  # e.g. the verb comes third, from the end
    assert moved.mean() > 0.5
    assert set(batch.src_lengths) == set(range(3, 8))


def test_held_out_sentences_never_appear_in_training_batches(rng):
    train_src = {tuple(s) for s in tr.translation_batch(rng, 2000).src}
    held = {tuple(s) for s in tr.translation_batch(rng, 500, held_out=True).src}
    assert not train_src & held
    assert all(tr.is_held_out(np.array(s)) for s in held)
    share = np.mean([tr.is_held_out(s) for s in tr.translation_batch(rng, 2000).src])
    assert share == 0  # the training sampler rejects every held-out sentence


def test_one_sentence_in_ten_is_held_out(rng):
    sentences = [
        np.array(T._translate(T._phrase(rng), T._phrase(rng), 0)[0])
        for _ in range(4000)
    ]
    assert abs(np.mean([tr.is_held_out(s) for s in sentences]) - 0.1) < 0.015


def test_teacher_forcing_inputs_are_the_targets_shifted_right(rng):
    batch = tr.translation_batch(rng, 8)
    assert np.all(batch.tgt_in[:, 0] == T.BOS)
    np.testing.assert_array_equal(batch.tgt_in[:, 1:], batch.tgt_out[:, :-1])
    assert batch.src.shape == (8, T.MAX_SRC) and batch.tgt_in.shape == (8, T.MAX_TGT)


def test_batches_depend_only_on_the_rng():
    a = tr.translation_batch(np.random.default_rng(5), 16)
    b = tr.translation_batch(np.random.default_rng(5), 16)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_alignment_scores_count_argmax_hits_on_gold_positions():
    W = np.zeros((1, 1, 2, 3, 4))  # (L, B, H, N, M)
    W[0, 0, 0, [0, 1, 2], [3, 0, 1]] = 1.0  # head 0 puts everything on 3, 0, 1
    W[0, 0, 1, :, 2] = 1.0  # head 1 always on key 2
    gold = np.array([[3, 0, -1]])  # the last token has no gold position
    np.testing.assert_allclose(tr.alignment_scores(W, gold), [[1.0, 0.0]])


def test_a_short_run_translates_held_out_sentences(rng):
    cfg = tr.TranslateConfig(steps=250)
    config = tr.translation_model_config()
    seen = []
    params, history = tr.train_translation(
        config,
        cfg,
        rng=np.random.default_rng(0),
        progress=False,
        callback=lambda step, p: seen.append(step),
        every=100,
    )
    assert seen == [0, 100, 200, 250] and len(history["loss"]) == 250
    scores = tr.evaluate_translation(params, config, rng=np.random.default_rng(1))
    assert scores["exact_match"] >= 0.9 and scores["token_accuracy"] >= 0.98
    beam = tr.evaluate_translation(
        params, config, rng=np.random.default_rng(1), n_examples=200, beam_width=3
    )
    assert beam["exact_match"] >= 0.9


def test_a_fresh_model_aligns_badly(rng):
    config = tr.translation_model_config()
    params = init_encdec_params(config, rng=rng, dtype=np.float32)
    scores = tr.evaluate_translation(params, config, rng=rng, n_examples=200)
    assert scores["exact_match"] == 0.0 and scores["alignment"] < 0.5


# --- MLM and stream ------------------------------------------------------------------


def test_mlm_batches_follow_berts_recipe(rng):
    cfg = tr.MLMConfig(mask_prob=0.15)
    batch = tr.mlm_batch(rng, cfg, 4000)
    np.testing.assert_array_equal(batch.targets, batch.targets[:, ::-1])  # palindromes
    assert batch.mask.any(axis=1).all()  # at least one blank per example
    assert abs(batch.mask.mean() - 0.15) < 0.02
    picked_in, picked_out = batch.inputs[batch.mask], batch.targets[batch.mask]
    masked = picked_in == cfg.mask_id
    kept = picked_in == picked_out
    assert abs(masked.mean() - 0.8) < 0.02
    assert abs(kept.mean() - 0.1 - 0.1 / cfg.n_symbols) < 0.02  # random can hit it
    np.testing.assert_array_equal(batch.inputs[~batch.mask], batch.targets[~batch.mask])


def test_accuracy_per_position_of_a_fresh_model_is_near_chance(rng):
    cfg = tr.MLMConfig()
    config = tr.mlm_model_config(cfg)
    params = init_params(config, rng=rng)
    acc = tr.accuracy_per_position(params, config, cfg, causal=False, rng=rng)
    assert acc.shape == (2 * cfg.length,) and acc.max() < 0.35


def test_fibonacci_streams_follow_their_rule(rng):
    x = tr.fibonacci_streams(rng, 5, length=12, n_symbols=10)
    assert np.all(x[:, 0] == 10)
    np.testing.assert_array_equal(x[:, 3:], (x[:, 2:-1] + x[:, 1:-2]) % 10)


# --- run checkpoints and the command line --------------------------------------------


def test_run_checkpoint_round_trip(tmp_path, rng):
    cfg = tr.MLMConfig(steps=3)
    config = tr.mlm_model_config(cfg)
    params = init_params(config, rng=rng, dtype=np.float32)
    path = tmp_path / "m.npz"
    tr.save_run(path, params, config, cfg, history={"loss": [1.0, 0.5]}, meta={"a": 1})
    run = tr.load_run(path, expected_config=config)
    assert run["model_config"] == config and run["train_config"] == cfg
    assert run["meta"] == {"a": 1} and list(run["history"]["loss"]) == [1.0, 0.5]
    for k in params:
        np.testing.assert_array_equal(run["params"][k], params[k])
    with pytest.raises(tr.CheckpointError, match="made for"):
        tr.load_run(path, expected_config=tr.mlm_model_config(cfg, d_model=16))


def test_a_decoder_only_checkpoint_is_not_a_run_checkpoint(tmp_path, rng):
    cfg = tr.TrainConfig(length=3, n_symbols=4)
    config = tr.default_model_config(cfg, d_model=4, n_heads=2, n_layers=1)
    path = tmp_path / "c.npz"
    tr.save_checkpoint(path, init_params(config, rng=rng), config, cfg)
    with pytest.raises(tr.CheckpointError, match="not an attention_np run checkpoint"):
        tr.load_run(path)


@pytest.mark.parametrize(
    "argv, key",
    [
        (
            ["translate", "--steps", "2", "--d-model", "8", "--n-heads", "2"],
            "exact_match",
        ),
        (["mlm", "--steps", "2", "--d-model", "8", "--causal"], "accuracy_left_half"),
        (
            ["stream", "--steps", "2", "--d-model", "8", "--length", "8"],
            "accuracy_within_length",
        ),
    ],
    ids=["translate", "mlm", "stream"],
)
def test_command_line_writes_a_loadable_run_checkpoint(tmp_path, capsys, argv, key):
    out = tmp_path / "run.npz"
    assert train_main([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"{argv[0]}: 2 steps in" in printed and "CPU" in printed
    run = tr.load_run(out)
    assert key in run["meta"] and run["meta"]["steps"] == 2
    assert len(run["history"]["loss"]) == 2

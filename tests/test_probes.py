"""Probes, ablations and probe inputs (attention_np.train.probes, .probe_tasks)."""

import numpy as np
import pytest

from attention_np.layers import layernorm_forward
from attention_np.train.probe_tasks import (
    copy_query_groups,
    permuted_copy_batch,
    wrong_digit_batch,
)
from attention_np.train.probes import (
    ablate_heads,
    fit_linear_probe,
    head_outputs,
    probe_accuracy,
    probe_predict,
    residual_streams,
)
from attention_np.transformer import (
    TransformerConfig,
    init_params,
    model_forward,
    self_attention_forward,
)

# all sizes different; G < H so the grouped-query path is exercised too
CONFIG = TransformerConfig(
    vocab_size=7, max_len=9, d_model=12, n_heads=3, n_layers=2, n_kv_heads=1
)


@pytest.fixture
def model():
    params = init_params(CONFIG, rng=np.random.default_rng(1))
    for k in params:  # non-trivial layer norms and biases
        if k.endswith(("beta", ".b_v", ".b_o")):
            params[k] = 0.1 * np.random.default_rng(2).standard_normal(params[k].shape)
    ids = np.random.default_rng(3).integers(0, 7, size=(2, 9))
    return params, ids


def test_first_residual_stream_is_layer_norm_of_embedding_plus_position(model):
    params, ids = model
    x = params["embed.W"][ids] + params["pos.W"]  # (B, N, D)
    want, _ = layernorm_forward(
        x, params["block0.ln1.gamma"], params["block0.ln1.beta"]
    )
    np.testing.assert_allclose(residual_streams(ids, params, CONFIG)[0], want)


def test_head_outputs_through_W_o_give_the_attention_output(model):
    params, ids = model
    streams = residual_streams(ids, params, CONFIG)  # (L, B, N, D)
    heads = head_outputs(ids, params, CONFIG)  # (L, B, H, N, d)
    assert heads.shape == (2, 2, 3, 9, 4)
    for layer in range(2):
        attn = {
            k.split(".", 2)[2]: v
            for k, v in params.items()
            if k.startswith(f"block{layer}.attn.")
        }
        want, _ = self_attention_forward(
            streams[layer], attn, n_heads=3, n_kv_heads=1, causal=True
        )
        merged = heads[layer].transpose(0, 2, 1, 3).reshape(2, 9, 12)  # (B, N, D)
        got = merged @ attn["W_o"] + attn["b_o"]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_ablating_every_head_of_a_layer_leaves_only_the_output_bias(model):
    params, ids = model
    ablated = ablate_heads(params, CONFIG, 1, [0, 1, 2])
    assert np.all(ablated["block1.attn.W_o"] == 0)
    assert not np.all(params["block1.attn.W_o"] == 0)  # the original is untouched
    logits, _ = model_forward(ids, ablated, CONFIG)
    # the same model with the layer-1 attention replaced by its bias b_o
    assert np.all(np.isfinite(logits))
    heads = head_outputs(ids, ablated, CONFIG)
    np.testing.assert_allclose(heads, head_outputs(ids, params, CONFIG))


def test_ablating_one_head_zeroes_exactly_its_rows_of_W_o(model):
    params, _ = model
    W_o = ablate_heads(params, CONFIG, 0, [1])["block0.attn.W_o"]  # (H d, D), d = 4
    assert np.all(W_o[4:8] == 0)
    np.testing.assert_array_equal(W_o[:4], params["block0.attn.W_o"][:4])
    np.testing.assert_array_equal(W_o[8:], params["block0.attn.W_o"][8:])


@pytest.mark.parametrize(
    "layer, heads, error",
    [(2, [0], ValueError), (0, [3], ValueError), (0, [-1], ValueError),
     (0.5, [0], TypeError), (0, [True], TypeError)],
)  # fmt: skip
def test_ablate_heads_rejects_layers_and_heads_out_of_range(model, layer, heads, error):
    with pytest.raises(error, match="layer|heads"):
        ablate_heads(model[0], CONFIG, layer, heads)


def test_linear_probe_reads_back_a_linearly_coded_label():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)
    codes = rng.standard_normal((5, 8))  # one direction per class
    features = codes[labels] + 0.01 * rng.standard_normal((400, 8))
    W = fit_linear_probe(features[:300], labels[:300], n_classes=5)
    assert W.shape == (9, 5)
    np.testing.assert_array_equal(probe_predict(W, features[300:]), labels[300:])


def test_linear_probe_is_at_chance_on_unrelated_features():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=4000)
    features = rng.standard_normal((4000, 6))
    W = fit_linear_probe(features[:2000], labels[:2000], n_classes=10)
    accuracy = np.mean(probe_predict(W, features[2000:]) == labels[2000:])
    assert 0.05 < accuracy < 0.15


@pytest.mark.parametrize(
    "features, labels, match",
    [(np.zeros((3, 2)), np.array([0, 1]), "one label per row"),
     (np.zeros((3, 2)), np.array([0, 1, 3]), "labels"),
     (np.zeros((3, 2)), np.array([0.0, 1.0, 2.0]), "labels"),
     (np.zeros(3), np.array([0, 1, 2]), "features")],
)  # fmt: skip
def test_linear_probe_names_a_bad_argument(features, labels, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fit_linear_probe(features, labels, n_classes=3)


def test_probe_predict_checks_the_feature_width():
    with pytest.raises(ValueError, match="features"):
        probe_predict(np.zeros((4, 2)), np.zeros((5, 4)))


def test_wrong_digit_batch_changes_one_fed_digit_to_another_positions_digit():
    L, S = 6, 9
    batch = wrong_digit_batch(np.random.default_rng(0), 500, length=L, n_symbols=S)
    rows = np.arange(500)
    x, q, p = batch.digits, batch.query, batch.source
    assert all(len(set(r)) == L for r in x)  # distinct digits
    assert np.all((q > L) & (q < 2 * L)) and np.all((p >= 1) & (p < L))
    assert np.all(p != 2 * L - q)  # never the digit that was there
    assert set(p) == set(range(1, L)) and set(q) == set(range(L + 1, 2 * L))
    clean = np.concatenate([x, np.full((500, 1), S), x[:, ::-1]], axis=1)[:, :-1]
    np.testing.assert_array_equal(batch.clean, clean)
    changed = batch.inputs != clean
    np.testing.assert_array_equal(changed.sum(axis=1), 1)
    np.testing.assert_array_equal(batch.inputs[rows, q], x[rows, p])
    np.testing.assert_array_equal(clean[rows, q], x[rows, 2 * L - q])


def test_permuted_copy_batch_rules_follow_their_definitions():
    L = 5
    batch = permuted_copy_batch(np.random.default_rng(0), 50, length=L, n_symbols=7)
    for b in range(50):
        x, second = batch.inputs[b, :L], batch.inputs[b, L + 1 :]
        assert batch.inputs[b, L] == 7 and set(second) <= set(x)
        for i, token in enumerate(second):
            where = int(np.flatnonzero(x == token)[0])
            want = x[where + 1] if where + 1 < L else -1
            assert batch.induction[b, i] == want
            assert batch.in_order[b, i] == x[i + 1]
    want = (batch.induction >= 0) & (batch.induction != batch.in_order)
    np.testing.assert_array_equal(batch.disagree, want)


def test_copy_query_groups_cover_every_query_but_the_first_once():
    groups = copy_query_groups(np.array([2, 4, 3]), 8)
    total = sum(m.astype(int) for m in groups.values())  # (B, N)
    np.testing.assert_array_equal(total[:, 0], 0)
    np.testing.assert_array_equal(total[:, 1:], 1)
    np.testing.assert_array_equal(groups["separator"][1], np.arange(8) == 4)
    np.testing.assert_array_equal(groups["copy"][2], np.isin(np.arange(8), [4, 5]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(length=2, n_symbols=5), "length"),
        (dict(length=6, n_symbols=5), "n_symbols"),
    ],
)
def test_probe_batches_name_a_bad_size(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wrong_digit_batch(np.random.default_rng(0), 4, **kwargs)


def test_copy_query_groups_need_room_for_the_longest_example():
    with pytest.raises(ValueError, match="n_positions"):
        copy_query_groups(np.array([3, 5]), 9)


def test_probe_accuracy_flattens_leading_axes_and_scores_held_out_examples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(2, 50, 3))  # (sets, B, positions)
    features = np.eye(4)[labels] + 0.01 * rng.standard_normal((2, 50, 3, 4))
    assert (
        probe_accuracy(features[0], labels[0], features[1], labels[1], n_classes=4) == 1
    )
    shuffled = rng.permutation(labels[1].reshape(-1)).reshape(50, 3)
    wrong = probe_accuracy(features[0], labels[0], features[1], shuffled, n_classes=4)
    assert wrong < 0.5


def test_probe_accuracy_needs_one_label_per_vector():
    with pytest.raises(ValueError, match="train_labels"):
        probe_accuracy(
            np.zeros((5, 3, 2)), np.zeros(5, int), np.zeros((1, 2)), [0], n_classes=2
        )

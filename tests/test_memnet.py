"""End-to-end memory networks: one hop is attention with scale 1; FD-checked grads."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_forward
from attention_np.memory import (
    init_memnet_params,
    memnet_backward,
    memnet_forward,
    position_encoding,
)
from attention_np.memory.tasks import VOCAB, toy_stories

B, N_MEM, J, J_Q, V, D = 2, 4, 3, 2, 7, 5


def _setup(rng, n_hops=3):
    params = init_memnet_params(V, D, n_hops=n_hops, n_memories=6, rng=rng, std=0.5)
    story = rng.integers(0, V, (B, N_MEM, J))
    story[0, 0] = 0  # an empty slot
    return story, rng.integers(1, V, (B, J_Q)), params


@pytest.mark.parametrize("position_enc", [False, True])
def test_one_hop_is_scaled_dot_product_attention_with_scale_one(rng, position_enc):
    story, question, p = _setup(rng, n_hops=1)
    _, cache = memnet_forward(story, question, p, position_enc=position_enc)
    mask = (story > 0).any(axis=-1)[:, None, :]  # (B, 1, n) over the memory slots
    o, _ = attention_forward(
        cache.u[0][:, None, :], cache.m[0], cache.c[0], mask, causal=False, scale=1.0
    )
    np.testing.assert_allclose(cache.u[1] - cache.u[0], o[:, 0], atol=1e-12)


def test_adjacent_tying_hop_keys_are_the_previous_hop_values(rng):
    story, question, p = _setup(rng)
    _, cache = memnet_forward(story, question, p)
    for k in range(len(cache.m) - 1):
        np.testing.assert_array_equal(cache.m[k + 1], cache.c[k])


def test_hop_weights_sum_to_one_and_skip_empty_slots(rng):
    story, question, p = _setup(rng)
    _, cache = memnet_forward(story, question, p)
    w = cache.hop_weights  # (B, K, n)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(w[0, :, 0], 0.0)


def test_a_story_without_sentences_gives_zero_reads_and_no_nan(rng):
    story, question, p = _setup(rng)
    story[1] = 0
    logits, cache = memnet_forward(story, question, p)
    assert np.all(np.isfinite(logits))
    np.testing.assert_array_equal(cache.u[-1][1], cache.u[0][1])  # nothing was read
    grads = memnet_backward(rng.standard_normal(logits.shape), cache)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_padding_word_gets_no_gradient(rng):
    story, question, p = _setup(rng)
    logits, cache = memnet_forward(story, question, p)
    grads = memnet_backward(rng.standard_normal(logits.shape), cache)
    for k in range(3):  # E_3 is also the answer matrix, where word 0 is a logit
        np.testing.assert_array_equal(grads[f"E_{k}"][0], 0.0)


def test_position_encoding_formula():
    l = position_encoding(4, 6)
    j, k = 2, 5  # 1-based word 2, dimension 5
    expected = (1 - j / 4) - (k / 6) * (1 - 2 * j / 4)
    assert l[j - 1, k - 1] == pytest.approx(expected, abs=1e-15)
    # a one-word sentence: l_k1 = k / d, the same for every sentence
    np.testing.assert_allclose(position_encoding(1, 6)[0], np.arange(1, 7) / 6)


@pytest.mark.parametrize("n_hops, position_enc", [(1, False), (3, True)])
def test_backward_matches_finite_differences(rng, n_hops, position_enc):
    story, question, params = _setup(rng, n_hops)
    fd_check(
        lambda p: memnet_forward(story, question, p, position_enc=position_enc),
        memnet_backward,
        params,
        rng,
    )


def test_toy_stories_answers_are_places_and_supports_are_real_sentences(rng):
    data = toy_stories(50, rng=rng)
    places = {"kitchen", "garden", "hallway", "bathroom", "office", "bedroom"}
    assert {VOCAB[a] for a in data["answer"]} <= places
    for s in range(50):
        for slot in data["support"][s]:
            if slot >= 0:
                assert data["story"][s, slot].any()
        sents, _, answer = data["texts"][s]
        assert any(answer in sent for sent in sents)


def test_bad_inputs_are_named(rng):
    story, question, p = _setup(rng)
    with pytest.raises(ValueError, match="story"):
        memnet_forward(story[0], question, p)
    with pytest.raises(ValueError, match="story"):
        memnet_forward(story + V, question, p)
    with pytest.raises(ValueError, match="T_k"):
        memnet_forward(np.zeros((B, 9, J), dtype=int), question, p)


def test_float32_params_give_float32_logits_and_grads(rng):
    params = init_memnet_params(V, D, n_hops=2, n_memories=6, rng=rng, dtype=np.float32)
    story = rng.integers(0, V, (B, N_MEM, J))
    logits, cache = memnet_forward(story, rng.integers(1, V, (B, J_Q)), params)
    assert logits.dtype == np.float32
    grads = memnet_backward(np.ones_like(logits), cache)
    assert set(grads) == set(params)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_an_explicit_mask_hides_a_sentence_from_every_hop(rng):
    story, question, p = _setup(rng)
    mask = (story > 0).any(axis=-1)
    mask[1, 2] = False
    _, cache = memnet_forward(story, question, p, mask)
    np.testing.assert_array_equal(cache.hop_weights[1, :, 2], 0.0)

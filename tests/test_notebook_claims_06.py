"""Claims of notebook 06 (cross-attention), recomputed from the package.

The translation example is rebuilt exactly as in the notebook (same seed, same order
of random draws): one-hot meanings, two codes with orthonormal rows made from a
doubled +-1 table, and projections built from transposes only.
"""

import numpy as np
import pytest

from attention_np import init_mha_params, mha_forward, padding_mask, softmax_forward
from attention_np.additive import additive_attention_forward, luong_attention_forward

BETA, D, D_KV = 16.0, 8, 16


@pytest.fixture(scope="module")
def lesson():
    rng = np.random.default_rng(0)
    rng.standard_normal((2, 4, D)), rng.standard_normal((2, 5, D_KV))  # section 1
    init_mha_params(D, 2, rng=rng, d_kv=D_KV)
    C = np.eye(6)
    en = C[[0, 1, 2, 3, 4]]  # the black cat is sleeping
    fr = np.array([C[0], C[2], C[1], (C[3] + C[4]) / np.sqrt(2)])  # le chat noir dort
    T = np.array([[1.0]])
    for _ in range(4):
        T = np.block([[T, T], [T, -T]])
    G = (T[1:7, :8] * rng.choice([-1.0, 1.0], 8))[:, rng.permutation(8)] / np.sqrt(8)
    A = (T[1:7] * rng.choice([-1.0, 1.0], 16))[:, rng.permutation(16)] / 4
    params = init_mha_params(D, 1, rng=rng, d_kv=D_KV)
    params.update(W_q=BETA * G.T @ G, W_k=A.T @ G, W_v=A.T @ G, W_o=np.eye(D))
    x_en, x_fr = (en @ A)[None], (fr @ G)[None]
    P = mha_forward(x_fr, x_en, params, n_heads=1, causal=False)[1].weights[0, 0]
    return dict(A=A, G=G, en=en, fr=fr, x_en=x_en, x_fr=x_fr, params=params, P=P)


def test_the_doubled_sign_tables_give_codes_with_orthonormal_rows(lesson):
    np.testing.assert_allclose(lesson["A"] @ lesson["A"].T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(lesson["G"] @ lesson["G"].T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(lesson["x_en"][0] @ lesson["A"].T, lesson["en"])


def test_projections_made_of_transposes_draw_the_word_alignment(lesson):
    P = lesson["P"]
    assert list(P[:3].argmax(axis=1)) == [0, 2, 1]  # le-the, chat-cat, noir-black
    s = BETA / np.sqrt(D)  # a matching pair's score; the others score 0
    np.testing.assert_allclose(np.diag(P[:3, [0, 2, 1]]), np.exp(s) / (np.exp(s) + 4))
    np.testing.assert_allclose(P[3, 3:], np.exp(4) / (2 * np.exp(4) + 3))  # dort
    assert P[3, 3] + P[3, 4] > 0.95


def test_each_french_word_receives_its_english_meaning(lesson):
    out = mha_forward(
        lesson["x_fr"], lesson["x_en"], lesson["params"], n_heads=1, causal=False
    )[0]
    read = out[0] @ lesson["G"].T  # (N, 6) concepts received
    assert list(read[:3].argmax(axis=1)) == [0, 2, 1]
    np.testing.assert_allclose(read[3, 3:5], 0.487, atol=5e-3)


def test_additive_score_draws_the_same_alignment(lesson):
    p = {"W_a": 3.0 * lesson["G"].T, "U_a": 3.0 * lesson["A"].T, "v_a": -8 * np.ones(6)}
    x_fr, x_en = lesson["x_fr"], lesson["x_en"]
    P_add = additive_attention_forward(x_fr, x_en, x_en, p, causal=False)[1].weights
    assert list(P_add[0, :3].argmax(axis=1)) == [0, 2, 1]
    assert P_add[0, 3, 3] + P_add[0, 3, 4] > 0.95


def test_additive_score_without_tanh_gives_every_query_the_same_row(lesson):
    W_a, U_a, v_a = 3.0 * lesson["G"].T, 3.0 * lesson["A"].T, -8 * np.ones(6)
    e = (lesson["x_fr"][0] @ W_a @ v_a)[:, None] + (lesson["x_en"][0] @ U_a @ v_a)
    P, _ = softmax_forward(e)
    np.testing.assert_allclose(P, np.broadcast_to(P[0], P.shape), atol=1e-12)


def test_luong_general_score_is_the_dot_product_of_projections(lesson):
    p = lesson["params"]
    W_general = p["W_q"] @ p["W_k"].T / np.sqrt(D)
    x_fr, x_en = lesson["x_fr"], lesson["x_en"]
    _, cache = luong_attention_forward(x_fr, x_en, x_en, W_general, causal=False)
    np.testing.assert_allclose(cache.weights[0], lesson["P"], atol=1e-12)


def test_the_padded_batch_aligns_the_real_words_and_spreads_the_padded_query(lesson):
    """Section 4's batch: sentence 1 is "the cat is sleeping <pad>" and
    "le chat dort <pad>", padding vectors are zero."""
    C, A, G = np.eye(6), lesson["A"], lesson["G"]
    en_2 = np.array([C[0], C[2], C[3], C[4], np.zeros(6)])
    fr_2 = np.array([C[0], C[2], (C[3] + C[4]) / np.sqrt(2), np.zeros(6)])
    x_en = np.concatenate([lesson["x_en"], (en_2 @ A)[None]])
    x_fr = np.concatenate([lesson["x_fr"], (fr_2 @ G)[None]])
    pad = padding_mask([5, 4], 5)
    P = mha_forward(x_fr, x_en, lesson["params"], pad, n_heads=1, causal=False)[1]
    P = P.weights[:, 0]  # (2, N, M)
    np.testing.assert_allclose(P[0], lesson["P"], atol=1e-12)  # sentence 0 unchanged
    assert np.all(P[1, :, 4] == 0.0)  # nobody reads the padded English word
    assert list(P[1, :2].argmax(axis=1)) == [0, 1]  # le-the, chat-cat
    dort = np.exp(4) / (2 * np.exp(4) + 2)  # scores 4, 4 and 0, 0 on the real words
    np.testing.assert_allclose(P[1, 2, 2:4], dort)  # dort: is, sleeping
    np.testing.assert_allclose(P[1, 3, :4], 0.25, atol=1e-12)  # the zero query

"""Claims of notebook 04 (Q, K, V projections and self-attention), recomputed from the
package with the notebook's sentence, designed matrices and seed."""

import functools

import numpy as np
import pytest

from attention_np import (
    attention_backward,
    attention_forward,
    attention_weights,
    linear_backward,
    linear_forward,
)

WORDS = ["the", "small", "cat", "sat", "on", "the", "warm", "mat"]
TAGS_OF = ["DET", "ADJ", "NOUN", "VERB", "PREP", "DET", "ADJ", "NOUN"]
TAGS = ["DET", "ADJ", "NOUN", "VERB", "PREP"]
VOCAB = ["the", "small", "cat", "sat", "on", "warm", "mat"]
SEEKS = {"DET": "NOUN", "ADJ": "NOUN", "NOUN": "VERB", "VERB": "NOUN", "PREP": "NOUN"}
N = len(WORDS)
X = np.concatenate(
    [
        np.eye(len(TAGS))[[TAGS.index(t) for t in TAGS_OF]],
        np.eye(len(VOCAB))[[VOCAB.index(w) for w in WORDS]],
    ],
    axis=1,
)  # (8, 12)
D = X.shape[1]
READS = [2, 2, 3, 2, 7, 7, 7, 4]


def designed():
    W_Q, W_K, W_V = np.zeros((D, 5)), np.zeros((D, 5)), np.zeros((D, len(VOCAB)))
    for tag, wanted in SEEKS.items():
        W_Q[TAGS.index(tag), TAGS.index(wanted)] = 10.0
    W_K[:5] = np.eye(5)
    W_V[5:] = np.eye(len(VOCAB))
    return W_Q, W_K, W_V


@functools.cache
def trained(loss="squared"):
    """Section 5's 400 steps of gradient descent, with the notebook's draws.

    ``loss="cross_entropy"`` is exercise 4: -sum T log P, whose gradient reaches
    attention_backward as dout = -T / P (softmax's backward turns it into P - T).
    """
    rng = np.random.default_rng(0)
    rng.permutation(N)  # section 4's shuffle comes first
    X_pos = np.concatenate([X, np.eye(N)], axis=1)
    T = np.eye(N)[READS]
    params = {k: 0.1 * rng.standard_normal((D + N, 8)) for k in ("W_Q", "W_K")}
    losses, first_ok = [], None
    for step in range(400):
        Q, q_cache = linear_forward(X_pos, params["W_Q"])
        K, k_cache = linear_forward(X_pos, params["W_K"])
        out, cache = attention_forward(Q, K, np.eye(N), causal=False)
        losses.append(0.5 * np.sum((out - T) ** 2))
        if first_ok is None and np.all(out[np.arange(N), READS] > 0.8):
            first_ok = step
        dout = out - T if loss == "squared" else -T / out
        dQ, dK, _ = attention_backward(dout, cache)
        params["W_Q"] -= linear_backward(dQ, q_cache)[1]
        params["W_K"] -= linear_backward(dK, k_cache)[1]
    return cache.weights, losses, first_ok


def test_without_projections_the_top_weight_is_the_token_itself_but_only_020():
    P = attention_weights(X, X, causal=False)
    best = P.argmax(axis=1)
    assert all(WORDS[j] == WORDS[i] for i, j in enumerate(best))
    diag = np.diag(P)
    assert set(np.round(diag, 2)) == {0.19, 0.2}  # far from "most" of the weight
    unrelated = [
        P[i, j]
        for i in range(N)
        for j in range(N)
        if TAGS_OF[i] != TAGS_OF[j] and WORDS[i] != WORDS[j]
    ]
    assert 0.10 <= min(unrelated) and max(unrelated) < 0.115


def test_the_self_advantage_is_exp_of_2_over_sqrt_12():
    P = attention_weights(X, X, causal=False)
    np.testing.assert_allclose(P[3, 3] / P[3, 0], np.exp(2 / np.sqrt(12)))
    assert np.exp(2 / np.sqrt(D)) == pytest.approx(1.78, abs=0.005)


def test_three_times_longer_vectors_make_the_self_weight_dominate():
    diag = np.diag(attention_weights(3 * X, 3 * X, causal=False))
    the = [0, 5]
    others = np.delete(diag, the)
    assert 0.90 <= others.min() and others.max() < 0.97
    np.testing.assert_allclose(diag[the], 0.49, atol=0.005)


def test_designed_projections_put_over_093_on_the_wanted_part_of_speech():
    W_Q, W_K, W_V = designed()
    out, cache = attention_forward(X @ W_Q, X @ W_K, X @ W_V, causal=False)
    P = cache.weights
    wanted = np.array(
        [[TAGS_OF[j] == SEEKS[TAGS_OF[i]] for j in range(N)] for i in range(N)]
    )
    mass = (P * wanted).sum(axis=1)
    assert mass.min() > 0.925 and np.allclose(out.sum(axis=1), 1.0)
    assert P[1, 2] == P[1, 7] and round(P[1, 2], 2) == 0.48  # small: cat and mat
    assert round(P[2, 3], 2) == 0.93  # cat reads sat


def test_self_attention_without_positions_is_permutation_equivariant():
    W_Q, W_K, W_V = designed()
    perm = np.random.default_rng(0).permutation(N)
    out, cache = attention_forward(X @ W_Q, X @ W_K, X @ W_V, causal=False)
    Xp = X[perm]
    out_p, cache_p = attention_forward(Xp @ W_Q, Xp @ W_K, Xp @ W_V, causal=False)
    np.testing.assert_allclose(out_p, out[perm], atol=1e-12)
    np.testing.assert_allclose(
        cache_p.weights, cache.weights[perm][:, perm], atol=1e-12
    )


def test_learned_projections_reach_the_target_with_at_least_0990_on_every_token():
    P, losses, first_ok = trained()
    assert round(losses[0], 3) == 3.484 and losses[-1] < 5e-4
    np.testing.assert_array_equal(P.argmax(axis=1), READS)
    assert P[np.arange(N), READS].min() >= 0.990
    assert first_ok == 18
    assert READS[0] == 2 and READS[5] == 7  # the first "the" reads cat, the second mat


def test_exercise_4_cross_entropy_reaches_08_on_every_target_in_7_steps_not_18():
    *_, first_ok = trained("cross_entropy")
    assert first_ok == 7 and trained()[2] == 18

"""Claims of notebook 02 (scaled dot-product attention), recomputed from the package
with the notebook's colour dictionary and its seed (the random draws are replayed in
the notebook's order, so the numbers are the notebook's)."""

import functools

import numpy as np
import pytest

from attention_np import attention_forward, softmax_backward, softmax_forward
from attention_np.naive import attention_naive

K = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.7, 0.7, 0.0]])
V = np.array([[700.0], [530.0], [470.0], [580.0]])  # red, green, blue, yellow (nm)
Q_ORANGE = np.array([[0.9, 0.4, 0.0]])


def lookup(scale):
    out, cache = attention_forward(Q_ORANGE, K, V, causal=False, scale=scale)
    return out[0, 0], cache.weights[0]


@functools.cache
def replay():
    """The notebook's draws from default_rng(0), in order: section 2, the batch
    example, the width sweep of section 3, the d = 256 example."""
    rng = np.random.default_rng(0)
    N, M, d, d_v = 4, 6, 8, 3
    qkv = (rng.standard_normal((N, d)), rng.standard_normal((M, d)))
    qkv += (rng.standard_normal((M, d_v)),)
    for shape in ((2, 3, N, d), (2, 3, M, d), (2, 3, M, d_v)):
        rng.standard_normal(shape)
    widths = 2 ** np.arange(1, 11)
    stats = {"unscaled": [], "scaled": []}
    for d_k in widths:
        q_s = rng.standard_normal((2000, 1, d_k))
        k_s = rng.standard_normal((2000, 16, d_k))
        raw = (q_s @ k_s.transpose(0, 2, 1))[:, 0]
        dP = rng.standard_normal(raw.shape)
        for name, scores in (("unscaled", raw), ("scaled", raw / np.sqrt(d_k))):
            P_s, cache = softmax_forward(scores)
            dS = softmax_backward(dP, cache)
            stats[name].append(
                (
                    scores.var(),
                    P_s.max(axis=1).mean(),
                    np.linalg.norm(dS, axis=1).mean(),
                )
            )
    big = [rng.standard_normal(s) for s in ((6, 256), (6, 256), (6, 2))]
    stats = {k: np.array(v) for k, v in stats.items()}
    return qkv, widths, stats, big


def test_the_answer_crosses_orange_then_tends_to_the_best_keys_value():
    answers = [round(lookup(s)[0]) for s in (0.5, 2, 8, 32, 128, 512)]
    assert answers == [583, 613, 637, 630, 606, 581]
    orange = [a for a in answers if 590 <= a <= 620]
    assert orange == [613, 606]  # passed through twice: scales 2 and 128
    assert abs(lookup(2048)[0] - 580.0) < 1e-6  # the limit: yellow, the argmax key
    assert int(np.argmax(Q_ORANGE @ K.T)) == 3


def test_softmax_with_a_huge_scale_is_one_hot_on_the_argmax_key():
    _, w = lookup(2048)
    np.testing.assert_allclose(w, [0, 0, 0, 1], atol=1e-8)
    assert np.all(lookup(512)[1] > 0)  # every weight still positive at a finite scale


def test_yellow_over_red_weight_ratio_is_exp_of_001_times_the_scale():
    for s in (32, 512):
        _, w = lookup(s)
        assert w[3] / w[0] == pytest.approx(np.exp(0.01 * s), rel=1e-9)


def test_a_tiny_scale_tends_to_the_plain_average_570nm():
    assert lookup(1e-9)[0] == pytest.approx(V.mean()) and V.mean() == 570.0


def test_package_attention_matches_the_hand_computation_and_the_naive_oracle():
    (Q, Kx, Vx), *_ = replay()
    P = softmax_forward(Q @ Kx.T / np.sqrt(8))[0]
    out, cache = attention_forward(Q, Kx, Vx, causal=False)
    np.testing.assert_allclose(out, P @ Vx, atol=1e-12)
    np.testing.assert_allclose(
        attention_naive(Q, Kx, Vx, causal=False)[0], out, atol=1e-12
    )
    assert np.all((out >= Vx.min(axis=0)) & (out <= Vx.max(axis=0)))


def test_unscaled_variance_is_d_within_3_percent_and_scaled_stays_flat():
    _, widths, stats, _ = replay()
    ratio = stats["unscaled"][:, 0] / widths
    assert round(ratio.min(), 3) == 0.976 and round(ratio.max(), 3) == 1.009
    lo, hi = stats["scaled"].min(axis=0), stats["scaled"].max(axis=0)
    np.testing.assert_allclose(lo, [0.976, 0.224, 0.276], atol=5e-4)
    np.testing.assert_allclose(hi, [1.009, 0.247, 0.289], atol=5e-4)


def test_unscaled_softmax_saturates_and_its_gradient_shrinks():
    _, widths, stats, _ = replay()
    u = stats["unscaled"]
    assert round(u[widths == 64, 1][0], 2) == 0.84
    assert np.all(np.diff(u[2:, 2]) < 0)  # |dS| falls from d = 8 on
    assert round(u[-1, 2], 3) == 0.044 and u[:3, 2].min() > 0.28


def test_at_d256_five_unscaled_rows_put_097_on_one_key_and_scaled_rows_at_most_051():
    *_, (Qb, Kb, Vb) = replay()
    raw = attention_forward(Qb, Kb, Vb, causal=False, scale=1.0)[1].weights
    scaled = attention_forward(Qb, Kb, Vb, causal=False)[1].weights
    assert np.sum(raw.max(axis=1) >= 0.97) == 5
    assert 0.28 < scaled.max(axis=1).min() and scaled.max(axis=1).max() < 0.52

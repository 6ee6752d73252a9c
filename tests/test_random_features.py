"""Random features for the softmax kernel (attention_np.efficient.random_features):
both maps are unbiased, Lemma 2's MSE formulas match Monte Carlo, the implied
weights are those of linear attention, and bad inputs are refused by name."""

import numpy as np
import pytest

from attention_np.efficient import favor_forward, favor_omega, linear_attention_weights
from attention_np.efficient.random_features import (
    features,
    kernel_estimates,
    output_error,
    random_feature_weights,
    softmax_kernel_mse,
    trig_features,
)

D = 8


def pair(r, angle):
    """x, y with |x'| = |y'| = r (x' = x / d^(1/4)) at the given angle."""
    x, y = np.zeros(D), np.zeros(D)
    x[0] = r
    y[:2] = r * np.cos(angle), r * np.sin(angle)
    return x * D**0.25, y * D**0.25


@pytest.mark.parametrize("kind", ["positive", "trig"])
def test_both_estimates_are_unbiased(kind):
    x, y = pair(0.8, 2.0)
    est = kernel_estimates(
        x, y, 16, kind=kind, orthogonal=False, draws=4000, rng=np.random.default_rng(0)
    )
    exact = np.exp(x @ y / np.sqrt(D))
    assert abs(est.mean() - exact) < 4 * est.std() / np.sqrt(est.size)


@pytest.mark.parametrize("kind", ["positive", "trig"])
@pytest.mark.parametrize("angle", [1.0, 2.5])
def test_lemma2_mse_matches_monte_carlo(kind, angle):
    x, y = pair(0.7, angle)
    est = kernel_estimates(
        x, y, 32, kind=kind, orthogonal=False, draws=4000, rng=np.random.default_rng(1)
    )
    mse = np.mean((est - np.exp(x @ y / np.sqrt(D))) ** 2)
    np.testing.assert_allclose(mse, softmax_kernel_mse(x, y, 32, kind=kind), rtol=0.12)


def test_positive_map_is_favor_forward_and_trig_has_sin_and_cos():
    rng = np.random.default_rng(2)
    x, omega = rng.standard_normal((5, D)), rng.standard_normal((D, 6))
    np.testing.assert_array_equal(
        features(x, omega, kind="positive"), favor_forward(x, omega)[0]
    )
    phi = trig_features(x, omega)
    assert phi.shape == (5, 12)
    xs = x * D**-0.25
    gram = phi @ phi.T  # at omega = 0 the estimate is exp(|x'|^2/2 + |y'|^2/2)
    phi0 = trig_features(x, np.zeros((D, 6)))
    np.testing.assert_allclose(
        phi0 @ phi0.T, np.exp(0.5 * ((xs**2).sum(1)[:, None] + (xs**2).sum(1)))
    )
    assert np.isfinite(gram).all()


def test_exact_cases_of_lemma2():
    x, y = pair(0.9, np.pi)  # y' = -x': the positive estimate has no variance
    assert softmax_kernel_mse(x, y, 8, kind="positive") < 1e-12
    x, y = pair(0.9, 0.0)  # y' = x': neither has the trigonometric one
    assert softmax_kernel_mse(x, y, 8, kind="trig") == 0.0


@pytest.mark.parametrize("causal", [False, True])
def test_positive_weights_equal_linear_attention_favor_weights(causal):
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 7, D)), rng.standard_normal((2, 7, D))
    omega = favor_omega(D, 32, rng=rng)
    ours = random_feature_weights(q, k, omega, kind="positive", causal=causal)
    theirs = linear_attention_weights(
        q, k, feature_map="favor+", omega=omega, causal=causal, eps=1e-300
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    np.testing.assert_allclose(ours.sum(-1), 1.0)


def test_trig_weights_can_be_negative_but_rows_still_sum_to_one():
    rng = np.random.default_rng(4)
    q, k = (2 * rng.standard_normal((12, D)) for _ in range(2))
    w = random_feature_weights(
        q, k, favor_omega(D, 4, rng=rng), kind="trig", causal=False
    )
    assert (w < 0).any()
    np.testing.assert_allclose(w.sum(-1), 1.0)


def test_output_error_shrinks_with_more_features():
    rng = np.random.default_rng(5)
    q, k, v = (0.5 * rng.standard_normal((16, D)) for _ in range(3))
    err = output_error(
        q,
        k,
        v,
        [4, 256],
        kind="positive",
        orthogonal=True,
        draws=4,
        rng=rng,
        causal=True,
    )
    assert err.shape == (2,) and err[1] < err[0] / 3


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_output_error_takes_the_alignment_of_both_attentions(align):
    rng = np.random.default_rng(6)
    q = 0.3 * rng.standard_normal((6, D))  # N = 6 queries, M = 10 keys
    k, v = (0.3 * rng.standard_normal((10, D)) for _ in range(2))
    opts = dict(kind="positive", orthogonal=True, draws=2, causal=True, align=align)
    err = output_error(q, k, v, [2048], rng=np.random.default_rng(0), **opts)
    # with one alignment for both, only the random-feature noise remains
    assert err[0] < 0.02


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: features(np.ones(D), np.ones((D, 2)), kind="cos"), "kind"),
        (lambda: trig_features(np.ones(3), np.ones((D, 2))), "omega"),
        (lambda: trig_features(np.ones(D, int), np.ones((D, 2))), "x"),
        (lambda: softmax_kernel_mse(np.ones(D), np.ones(3), 4, kind="trig"), "y"),
        (lambda: softmax_kernel_mse(np.ones(D), np.ones(D), 0, kind="trig"), "m"),
        (
            lambda: kernel_estimates(
                np.ones(D),
                np.ones(D),
                4,
                kind="trig",
                orthogonal=True,
                draws=0,
                rng=np.random.default_rng(0),
            ),
            "draws",
        ),
        (
            lambda: random_feature_weights(
                np.ones((3, D)), np.ones((3, D)), np.ones((D, 2)), kind="trig", causal=1
            ),
            "causal",
        ),
    ],
)
def test_bad_inputs_are_refused_by_name(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()

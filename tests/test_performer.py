"""FAVOR+ random features: unbiased for the softmax kernel, error falls with the
number of features, exact causal prefix sums, gradients through the stabilisers."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_forward
from attention_np.efficient.linear_attention import linear_attention_forward
from attention_np.efficient.performer import favor_backward, favor_forward, favor_omega

d = 4


def kernel_estimates(x, y, m, trials, orthogonal, seed=0):
    """phi(x).phi(y) for `trials` independent draws of omega (no stabiliser)."""
    rng = np.random.default_rng(seed)
    est = []
    for _ in range(trials):
        omega = favor_omega(d, m, rng=rng, orthogonal=orthogonal)
        est.append(float(favor_forward(x, omega)[0] @ favor_forward(y, omega)[0]))
    return np.array(est)


def test_omega_is_reproducible_and_orthogonal_within_blocks():
    a = favor_omega(d, 10, rng=np.random.default_rng(3))
    b = favor_omega(d, 10, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (d, 10)
    unit = a[:, :d] / np.linalg.norm(a[:, :d], axis=0)  # the first block of d columns
    np.testing.assert_allclose(unit.T @ unit, np.eye(d), atol=1e-12)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_kernel_estimate_is_unbiased(rng, orthogonal):
    x, y = 0.6 * rng.standard_normal(d), 0.6 * rng.standard_normal(d)
    exact = np.exp(x @ y / np.sqrt(d))  # softmax kernel at scale 1/sqrt(d)
    est = kernel_estimates(x, y, m=8, trials=3000, orthogonal=orthogonal)
    stderr = est.std() / np.sqrt(est.size)
    assert abs(est.mean() - exact) < 4 * stderr


def test_variance_matches_the_positive_feature_mse_formula(rng):
    x, y = 0.5 * rng.standard_normal(d), 0.5 * rng.standard_normal(d)
    xs, ys, m = x * d**-0.25, y * d**-0.25, 8
    sm, s2 = np.exp(xs @ ys), np.sum((xs + ys) ** 2)
    mse = np.exp(s2) * sm**2 * (1 - np.exp(-s2)) / m  # Choromanski et al., Lemma 2
    est = kernel_estimates(x, y, m=m, trials=6000, orthogonal=False)
    assert est.var() == pytest.approx(mse, rel=0.1)


def test_attention_error_falls_with_the_number_of_features():
    errors = []
    for m in (8, 32, 128, 512):
        trial = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            q, k, v = (0.5 * rng.standard_normal((16, 8)) for _ in range(3))
            exact, _ = attention_forward(q, k, v, causal=False)
            omega = favor_omega(8, m, rng=rng)
            out, _ = linear_attention_forward(
                q, k, v, feature_map="favor+", omega=omega, causal=False, eps=1e-300
            )
            trial.append(np.abs(out - exact).mean())
        errors.append(np.mean(trial))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < errors[0] / 4  # Monte-Carlo error ~ 1 / sqrt(m)


def test_causal_favor_equals_masked_dense_with_the_same_features(rng):
    q, k, v = (rng.standard_normal((2, 10, d)) for _ in range(3))
    omega = favor_omega(d, 12, rng=rng)
    out, _ = linear_attention_forward(
        q,
        k,
        v,
        feature_map="favor+",
        omega=omega,
        causal=True,
        form="chunkwise",
        chunk_size=3,
    )
    phi_q = favor_forward(q, omega, stabilize="row")[0]
    phi_k = favor_forward(k, omega, stabilize="all")[0]
    w = np.tril(phi_q @ np.swapaxes(phi_k, -1, -2))  # (2, N, N)
    np.testing.assert_allclose(
        out, w @ v / (w.sum(-1, keepdims=True) + 1e-6), atol=1e-12
    )


def test_output_is_exactly_invariant_to_the_stabilisers(rng):
    q, k, v = (rng.standard_normal((10, d)) for _ in range(3))
    omega = favor_omega(d, 16, rng=rng)
    out, _ = linear_attention_forward(  # eps > 0 but negligible: the ratio alone
        q, k, v, feature_map="favor+", omega=omega, causal=False, eps=1e-300
    )
    phi_q, phi_k = favor_forward(q, omega)[0], favor_forward(k, omega)[0]
    w = phi_q @ phi_k.T  # unstabilised features
    np.testing.assert_allclose(out, w @ v / w.sum(-1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("stabilize", [None, "row", "all"])
def test_feature_backward_matches_finite_differences(rng, stabilize):
    inputs = {"x": rng.standard_normal((2, 5, d)), "omega": favor_omega(d, 6, rng=rng)}
    fd_check(
        lambda p: favor_forward(p["x"], p["omega"], stabilize=stabilize),
        lambda dout, cache: dict(
            zip(("x", "omega"), favor_backward(dout, cache), strict=True)
        ),
        inputs,
        rng,
    )


def test_bad_arguments_are_named(rng):
    with pytest.raises(TypeError, match="rng"):
        favor_omega(d, 8, rng=0)
    with pytest.raises(ValueError, match="stabilize"):
        favor_forward(np.ones((3, d)), favor_omega(d, 8, rng=rng), stabilize="col")


def test_one_vector_gets_the_gradients_of_a_one_row_matrix(rng):
    omega = favor_omega(d, 6, rng=rng)
    x = rng.standard_normal(d)
    phi, cache = favor_forward(x, omega, stabilize="row")
    phi2, cache2 = favor_forward(x[None], omega, stabilize="row")
    dout = rng.standard_normal(phi.shape)
    dx, domega = favor_backward(dout, cache)
    dx2, domega2 = favor_backward(dout[None], cache2)
    np.testing.assert_allclose(dx, dx2[0], atol=1e-14)
    np.testing.assert_allclose(domega, domega2, atol=1e-14)


def test_keys_with_no_positions_give_empty_features(rng):
    omega = favor_omega(d, 6, rng=rng)
    phi, cache = favor_forward(np.ones((2, 0, d)), omega, stabilize="all")
    dx, domega = favor_backward(phi, cache)
    assert phi.shape == (2, 0, 6) and dx.shape == (2, 0, d)
    np.testing.assert_array_equal(domega, 0.0)


def test_features_of_huge_inputs_are_finite(rng):
    omega = favor_omega(d, 6, rng=rng)
    x = 1e4 * rng.standard_normal((3, 5, d))
    for stabilize in (None, "row", "all"):
        phi, cache = favor_forward(x, omega, stabilize=stabilize)
        grads = favor_backward(rng.standard_normal(phi.shape), cache)
        assert all(np.isfinite(a).all() for a in (phi, *grads)), stabilize

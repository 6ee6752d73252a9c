"""TTT with a plain linear inner model (attention_np.memory.ttt_plain)."""

import numpy as np
import pytest

from attention_np.gradcheck import numerical_grads
from attention_np.memory import delta_rule_forward
from attention_np.memory.ttt_plain import (
    plain_l2_grad,
    plain_l2_loss,
    ttt_plain_forward,
)

B, N, F = 2, 9, 4


def _views(rng):
    x_q, x_k, x_v = rng.standard_normal((3, B, N, F))
    return x_q, x_k, x_v, rng.uniform(0.1, 0.9, (B, N))


def test_the_gradient_is_the_derivative_of_the_loss(rng):
    W, x_k, x_v = (
        rng.standard_normal((3, 5)),
        rng.standard_normal(3),
        rng.normal(size=5),
    )
    numeric = numerical_grads(
        lambda p: plain_l2_loss(p["W"], x_k, x_v), {"W": W}, np.array(1.0)
    )["W"]
    np.testing.assert_allclose(plain_l2_grad(W, x_k, x_v), numeric, atol=1e-8)


def test_one_gradient_step_per_token_is_the_delta_rule(rng):
    x_q, x_k, x_v, eta = _views(rng)
    S0 = rng.standard_normal((B, F, F))
    z, cache = ttt_plain_forward(x_q, x_k, x_v, eta, S0)
    out, delta = delta_rule_forward(x_q, x_k, x_v, eta, S0)
    np.testing.assert_allclose(z, out, atol=1e-13)
    np.testing.assert_allclose(cache.final_state, delta.final_state, atol=1e-13)


def test_the_loss_of_a_token_is_taken_before_its_own_step(rng):
    x_q, x_k, x_v, eta = _views(rng)
    _, cache = ttt_plain_forward(x_q, x_k, x_v, eta)
    np.testing.assert_allclose(cache.losses[:, 0], 0.5 * np.sum(x_v[:, 0] ** 2, -1))
    _, first = ttt_plain_forward(x_q[:, :1], x_k[:, :1], x_v[:, :1], eta[:, :1])
    W1 = first.final_state  # the weights the second token is learned from
    np.testing.assert_allclose(
        cache.losses[:, 1], plain_l2_loss(W1, x_k[:, 1], x_v[:, 1]), atol=1e-13
    )


def test_a_zero_rate_learns_nothing(rng):
    x_q, x_k, x_v, _ = _views(rng)
    S0 = rng.standard_normal((B, F, F))
    z, cache = ttt_plain_forward(x_q, x_k, x_v, 0.0, S0)
    np.testing.assert_array_equal(cache.final_state, S0)
    np.testing.assert_allclose(z, x_q @ S0, atol=1e-13)


def test_inputs_are_not_modified(rng):
    x_q, x_k, x_v, eta = _views(rng)
    S0 = rng.standard_normal((B, F, F))
    before = [a.copy() for a in (x_q, x_k, x_v, eta, S0)]
    ttt_plain_forward(x_q, x_k, x_v, eta, S0)
    for a, b in zip((x_q, x_k, x_v, eta, S0), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "change, error, pattern",
    [
        (dict(x_k=np.zeros((B, N, F + 1))), ValueError, "x_k"),
        (dict(x_q=np.zeros((B, N, F), np.float32)), TypeError, "dtype"),
        (dict(eta=-0.1), ValueError, "eta"),
        (dict(eta=True), TypeError, "eta"),
        (dict(S0=np.zeros((B, F, F + 1))), ValueError, "initial_state"),
    ],
)
def test_bad_inputs_are_named(rng, change, error, pattern):
    x_q, x_k, x_v, eta = _views(rng)
    args = dict(x_q=x_q, x_k=x_k, x_v=x_v, eta=eta, S0=None) | change
    with pytest.raises(error, match=pattern):
        ttt_plain_forward(
            args["x_q"], args["x_k"], args["x_v"], args["eta"], args["S0"]
        )


def test_gradient_of_mismatched_shapes_is_named(rng):
    with pytest.raises(ValueError, match="x_k"):
        plain_l2_grad(np.zeros((3, 4)), np.zeros(4), np.zeros(4))

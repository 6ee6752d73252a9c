"""TTT-Linear (Sun et al. 2024): inner gradient, primal == dual, decode == prefill."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np.gradcheck import numerical_grads
from attention_np.memory import (
    init_ttt_linear_params,
    ln_l2_grad_backward,
    ln_l2_grad_forward,
    ln_l2_loss,
    ttt_linear_backward,
    ttt_linear_decode_init,
    ttt_linear_decode_step,
    ttt_linear_forward,
)
from attention_np.memory.tasks import shifting_regression
from attention_np.transformer.layers import layernorm_forward

B, N, F = 2, 7, 4
VIEWS = ("x_q", "x_k", "x_v")


def _setup(rng):
    """x_q, x_k, x_v (B, N, F), eta (B, N), params: the forward's argument order."""
    params = init_ttt_linear_params(F, rng=rng, std=0.5)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
    views = rng.standard_normal((3, B, N, F))
    return (*views, rng.uniform(0.05, 0.5, (B, N)), params)


def _ln(Z, p, eps=1e-6):
    return layernorm_forward(Z, p["gamma"], p["beta"], eps=eps)[0]


def test_inner_gradient_matches_finite_differences_of_the_loss(rng):
    Z, t = rng.standard_normal((2, 3, 5, 6))
    gamma, beta = 1 + 0.3 * rng.standard_normal(6), 0.3 * rng.standard_normal(6)
    G, _ = ln_l2_grad_forward(Z, t, gamma, beta)
    numeric = numerical_grads(
        lambda p: ln_l2_loss(p["Z"], t, gamma, beta), {"Z": Z}, np.ones((3, 5))
    )["Z"]
    np.testing.assert_allclose(G, numeric, atol=1e-8)


def test_inner_gradient_backward_matches_finite_differences(rng):
    inputs = {
        "Z": rng.standard_normal((3, 5, 6)),
        "target": rng.standard_normal((3, 5, 6)),
        "gamma": 1 + 0.3 * rng.standard_normal(6),
        "beta": 0.3 * rng.standard_normal(6),
    }
    fd_check(
        lambda p: ln_l2_grad_forward(*p.values()),
        lambda d, c: dict(zip(inputs, ln_l2_grad_backward(d, c), strict=True)),
        inputs,
        rng,
    )


@pytest.mark.parametrize("mini_batch", [1, 2, 3, N, 16])
@pytest.mark.parametrize("position_scale", [False, True])
def test_primal_equals_dual(rng, mini_batch, position_scale):
    x_q, x_k, x_v, eta, p = _setup(rng)
    kw = dict(mini_batch=mini_batch, position_scale=position_scale)
    z_dual, c_dual = ttt_linear_forward(x_q, x_k, x_v, eta, p, form="dual", **kw)
    z_primal, c_primal = ttt_linear_forward(x_q, x_k, x_v, eta, p, form="primal", **kw)
    np.testing.assert_allclose(z_dual, z_primal, atol=1e-12)
    # the dual form's end-of-batch W equals the primal W at the last token
    for a, b in zip(c_dual.final_state, c_primal.final_state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_mini_batch_one_is_online_gradient_descent(rng):
    x_q, x_k, x_v, eta, p = _setup(rng)
    z, _ = ttt_linear_forward(x_q, x_k, x_v, eta, p, mini_batch=1)
    W = np.broadcast_to(p["W"], (B, F, F)).copy()
    b = np.broadcast_to(p["b"], (B, F)).copy()
    for t in range(N):  # W_t = W_{t-1} - eta_t grad l(W_{t-1}; x_t), then read
        Z = np.einsum("bf,bfg->bg", x_k[:, t], W) + b
        G, _ = ln_l2_grad_forward(Z, x_v[:, t] - x_k[:, t], p["gamma"], p["beta"])
        W -= eta[:, t, None, None] * x_k[:, t, :, None] * G[:, None, :]
        b -= eta[:, t, None] * G
        z_t = x_q[:, t] + _ln(np.einsum("bf,bfg->bg", x_q[:, t], W) + b, p)
        np.testing.assert_allclose(z[:, t], z_t, atol=1e-12)


def test_zero_learning_rate_gives_the_untrained_inner_model(rng):
    x_q, x_k, x_v, _, p = _setup(rng)
    z, _ = ttt_linear_forward(x_q, x_k, x_v, 0.0, p, mini_batch=3)
    np.testing.assert_allclose(z, x_q + _ln(x_q @ p["W"] + p["b"], p), atol=1e-12)


@pytest.mark.parametrize("position_scale", [False, True])
def test_token_by_token_decode_equals_batched_prefill(rng, position_scale):
    x_q, x_k, x_v, eta, p = _setup(rng)
    kw = dict(mini_batch=3, position_scale=position_scale)
    z, cache = ttt_linear_forward(x_q, x_k, x_v, eta, p, **kw)
    state = ttt_linear_decode_init(p, batch=B)
    for t in range(N):
        z_t, state = ttt_linear_decode_step(
            x_q[:, t], x_k[:, t], x_v[:, t], eta[:, t], p, state, **kw
        )
        np.testing.assert_allclose(z_t, z[:, t], atol=1e-12)
    # N = 7 = 2 full mini-batches + 1 token: the running sums carry that token
    assert state["pos"] == N % 3


def test_losses_are_taken_at_the_start_of_each_mini_batch(rng):
    x_q, x_k, x_v, eta, p = _setup(rng)
    _, cache = ttt_linear_forward(x_q, x_k, x_v, eta, p, mini_batch=4)
    first = ln_l2_loss(
        x_k[:, :4] @ p["W"] + p["b"], x_v[:, :4] - x_k[:, :4], p["gamma"], p["beta"]
    )
    np.testing.assert_allclose(cache.losses[:, :4], first, atol=1e-12)


def test_inner_loop_lowers_the_loss_on_a_fixed_task(rng):
    M = rng.standard_normal((F, F))
    x_k = rng.standard_normal((1, 200, F))
    target = _ln(x_k @ M, {"gamma": np.ones(F), "beta": np.zeros(F)})
    p = init_ttt_linear_params(F, rng=rng, std=0.5)
    _, cache = ttt_linear_forward(x_k, x_k, x_k + target, 0.1, p, mini_batch=1)
    assert cache.losses[0, -50:].mean() < 0.1 * cache.losses[0, :10].mean()


@pytest.mark.parametrize("form", ["dual", "primal"])
@pytest.mark.parametrize("mini_batch, position_scale", [(1, False), (3, True)])
def test_outer_loop_backward_matches_finite_differences(
    rng, form, mini_batch, position_scale
):
    x_q, x_k, x_v, eta, params = _setup(rng)
    inputs = {"x_q": x_q, "x_k": x_k, "x_v": x_v, "eta": eta, **params}

    def forward(p):
        weights = {k: p[k] for k in params}
        return ttt_linear_forward(
            p["x_q"], p["x_k"], p["x_v"], p["eta"], weights, form=form,
            mini_batch=mini_batch, position_scale=position_scale,
        )  # fmt: skip

    def backward(dout, cache):
        *d, grads = ttt_linear_backward(dout, cache)
        return {**dict(zip((*VIEWS, "eta"), d, strict=True)), **grads}

    fd_check(forward, backward, inputs, rng)


def test_a_number_eta_gets_a_number_gradient_the_sum_over_tokens(rng):
    x_q, x_k, x_v, _, p = _setup(rng)
    z, cache = ttt_linear_forward(x_q, x_k, x_v, 0.3, p, mini_batch=3)
    dout = rng.standard_normal(z.shape)
    deta = ttt_linear_backward(dout, cache)[3]
    full = np.full((B, N), 0.3)
    _, cache_full = ttt_linear_forward(x_q, x_k, x_v, full, p, mini_batch=3)
    assert np.shape(deta) == ()
    np.testing.assert_allclose(deta, ttt_linear_backward(dout, cache_full)[3].sum())


def test_one_rate_per_sequence_broadcasts_over_the_tokens(rng):
    x_q, x_k, x_v, _, p = _setup(rng)
    eta = rng.uniform(0.1, 0.5, (B, 1))
    z, cache = ttt_linear_forward(x_q, x_k, x_v, eta, p, mini_batch=2)
    z_full, _ = ttt_linear_forward(
        x_q, x_k, x_v, np.repeat(eta, N, axis=1), p, mini_batch=2
    )
    np.testing.assert_array_equal(z, z_full)
    assert ttt_linear_backward(z, cache)[3].shape == (B, 1)


def test_float32_inputs_params_and_a_number_eta_stay_float32(rng):
    x_q, x_k, x_v, _, _ = _setup(rng)
    p = init_ttt_linear_params(F, rng=rng, std=0.5, dtype=np.float32)
    views = [a.astype(np.float32) for a in (x_q, x_k, x_v)]
    z, cache = ttt_linear_forward(*views, 0.1, p, mini_batch=3)
    assert z.dtype == np.float32
    *dviews, deta, grads = ttt_linear_backward(z, cache)
    assert all(g.dtype == np.float32 for g in (*dviews, deta, *grads.values()))


def test_bad_inputs_are_named(rng):
    x_q, x_k, x_v, eta, p = _setup(rng)
    with pytest.raises(ValueError, match="eta"):
        ttt_linear_forward(x_q, x_k, x_v, eta[:, :-1], p)
    with pytest.raises(ValueError, match="x_v"):
        ttt_linear_forward(x_q, x_k, x_v[:, :-1], eta, p)
    with pytest.raises(ValueError, match="form"):
        ttt_linear_forward(x_q, x_k, x_v, eta, p, form="both")
    with pytest.raises(ValueError, match="mini_batch"):
        ttt_linear_forward(x_q, x_k, x_v, eta, p, mini_batch=0)


def test_shifting_regression_returns_the_views_in_the_forwards_order(rng):
    x_q, x_k, x_v, maps = shifting_regression(8, F, rng=rng, shift_at=3)
    np.testing.assert_array_equal(x_q, x_k)  # the task reads with its own keys
    target = _ln(x_k @ maps[0], {"gamma": np.ones(F), "beta": np.zeros(F)})
    np.testing.assert_allclose((x_v - x_k)[:, :3], target[:, :3], atol=1e-12)

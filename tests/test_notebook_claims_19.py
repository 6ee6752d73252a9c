"""Claims of lesson 19 (test-time training), recomputed from the package.

Each test states one sentence of the notebook and checks it with the lesson's own
seeds and sizes (the identities with any seed). The timing claims are read from the
committed benchmark file, benchmarks/results/ttt_forms.json, which the lesson plots:
no test times anything.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from attention_np.gradcheck import numerical_grads
from attention_np.memory import (
    delta_rule_forward,
    init_inplace_ttt_params,
    init_ttt_linear_params,
    inplace_ttt_context_parallel,
    inplace_ttt_forward,
    ln_l2_grad_forward,
    ln_l2_loss,
    ttt_linear_decode_init,
    ttt_linear_decode_step,
    ttt_linear_forward,
)
from attention_np.memory.inplace_drift import update_drift
from attention_np.memory.inplace_ttt import gated_mlp
from attention_np.memory.tasks import permutation_tokens, shifting_regression
from attention_np.memory.ttt_plain import (
    plain_l2_grad,
    plain_l2_loss,
    ttt_plain_forward,
)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks/results/ttt_forms.json"
B, N, F = 2, 20, 8  # sections 1 and 3


def test_ttt_with_a_linear_model_and_one_gradient_step_per_token_is_the_delta_rule():
    rng = np.random.default_rng(0)
    x_q, x_k, x_v = rng.standard_normal((3, B, N, F))
    x_k /= np.linalg.norm(x_k, axis=-1, keepdims=True)
    eta = rng.uniform(0.1, 1.0, (B, N))
    z, cache = ttt_plain_forward(x_q, x_k, x_v, eta)
    out, delta = delta_rule_forward(x_q, x_k, x_v, eta)
    np.testing.assert_allclose(z, out, atol=1e-13)
    np.testing.assert_allclose(cache.final_state, delta.final_state, atol=1e-13)


def test_the_plain_inner_gradient_is_the_derivative_of_the_squared_loss():
    rng = np.random.default_rng(1)
    W, k, v = rng.standard_normal((F, F)), rng.standard_normal(F), rng.normal(size=F)
    fd = numerical_grads(lambda p: plain_l2_loss(p["W"], k, v), {"W": W}, np.array(1.0))
    np.testing.assert_allclose(plain_l2_grad(W, k, v), fd["W"], atol=1e-8)


def test_ttt_linear_inner_gradient_is_layer_norms_backward_of_the_residual():
    rng = np.random.default_rng(2)
    Z, target = rng.standard_normal((2, 4, 6))
    gamma, beta = 1 + 0.2 * rng.standard_normal(6), 0.2 * rng.standard_normal(6)
    G, _ = ln_l2_grad_forward(Z, target, gamma, beta)
    dloss = rng.standard_normal(4)
    fd = numerical_grads(
        lambda p: ln_l2_loss(p["Z"], target, gamma, beta), {"Z": Z}, dloss
    )["Z"]
    np.testing.assert_allclose(dloss[:, None] * G, fd, atol=1e-8)


def _views(seed=3):
    rng = np.random.default_rng(seed)
    x_q, x_k, x_v = rng.standard_normal((3, B, N, F))
    eta = rng.uniform(0.05, 0.3, (B, N))
    return x_q, x_k, x_v, eta, init_ttt_linear_params(F, rng=rng, std=0.3)


@pytest.mark.parametrize("m", [1, 4, 16])
def test_the_dual_form_equals_the_primal_form(m):
    x_q, x_k, x_v, eta, params = _views()
    opts = dict(mini_batch=m, position_scale=True)
    z_d, c_d = ttt_linear_forward(x_q, x_k, x_v, eta, params, **opts)
    z_p, c_p = ttt_linear_forward(x_q, x_k, x_v, eta, params, **opts, form="primal")
    np.testing.assert_allclose(z_d, z_p, atol=1e-12)
    np.testing.assert_allclose(c_d.final_state[0], c_p.final_state[0], atol=1e-12)


def test_token_by_token_decoding_reproduces_the_whole_sequence_forward():
    x_q, x_k, x_v, eta, params = _views()
    state, z = ttt_linear_decode_init(params, batch=B), np.empty_like(x_q)
    for t in range(N):
        z[:, t], state = ttt_linear_decode_step(
            x_q[:, t],
            x_k[:, t],
            x_v[:, t],
            eta[:, t],
            params,
            state,
            mini_batch=16,
            position_scale=True,
        )
    z_pre, _ = ttt_linear_forward(
        x_q, x_k, x_v, eta, params, mini_batch=16, position_scale=True
    )
    np.testing.assert_allclose(z, z_pre, atol=1e-12)


@pytest.mark.parametrize("F_b", [8, 16, 64])
def test_dual_flops_are_0_75_plus_m_over_2f_times_primal_fewer_below_m_f_over_2(F_b):
    for m in range(1, 2 * F_b + 1):
        primal, dual = 8 * m * F_b**2, 6 * m * F_b**2 + 4 * m**2 * F_b
        assert dual / primal == pytest.approx(0.75 + m / (2 * F_b))
        assert (dual < primal) == (2 * m < F_b)
        if m <= F_b:
            assert 0.75 < dual / primal <= 1.25


def test_the_committed_benchmark_shows_the_dual_form_faster_and_pulling_away():
    rows = json.loads(BENCH.read_text())["results"]
    at = {(r["width"], r["mini_batch"]): r for r in rows}
    assert all(r["dual_ms"] < r["primal_ms"] for r in rows)
    for F_b in (16, 64):
        ratio = at[F_b, 64]["primal_ms"] / at[F_b, 64]["dual_ms"]
        assert ratio >= 5 and ratio > at[F_b, 1]["primal_ms"] / at[F_b, 1]["dual_ms"]
    dual_gain = at[64, 1]["dual_ms"] / at[64, 64]["dual_ms"]
    primal_gain = at[64, 1]["primal_ms"] / at[64, 64]["primal_ms"]
    assert dual_gain > 10 and primal_gain < 3


def test_the_inner_loop_re_adapts_after_the_shift_and_mini_batches_follow_slower():
    xs_q, xs_k, xs_v, _ = shifting_regression(
        512, 16, rng=np.random.default_rng(7), batch=16
    )
    p = init_ttt_linear_params(16, rng=np.random.default_rng(8), std=1 / 4)
    loss = {}
    for name, lr, m in [("none", 0.0, 1), ("online", 0.1, 1), ("batch", 0.1, 16)]:
        _, cache = ttt_linear_forward(xs_q, xs_k, xs_v, lr, p, mini_batch=m)
        c = cache.losses.mean(axis=0)
        loss[name] = (c[192:256].mean(), c[256:272].mean(), c[-64:].mean(), c[:16])
    assert min(loss["none"][:3]) > 15
    assert loss["online"][0] < 0.01 and loss["online"][1] > 10
    assert loss["online"][2] < 0.1
    assert loss["online"][0] < loss["batch"][0] < 0.1
    assert loss["online"][2] < loss["batch"][2] < 1.0
    np.testing.assert_allclose(loss["batch"][3], loss["none"][3], rtol=1e-12)  # at W_0


def test_a_zero_conv_is_the_plain_mlp_bit_for_bit_with_the_reference_target_init():
    rng = np.random.default_rng(4)
    p = init_inplace_ttt_params(8, 32, rng=rng)
    p["W_target"] = np.diag(0.02 * rng.standard_normal(8))
    x = rng.standard_normal((2, 42, 8))
    out, _ = inplace_ttt_forward(x, p, chunk_size=8, lr=1.0)
    assert np.array_equal(out, gated_mlp(x, p))


def _in_place_setup():
    rng = np.random.default_rng(4)
    p = init_inplace_ttt_params(8, 32, rng=rng)
    p["conv"] = 0.3 * rng.standard_normal(p["conv"].shape)
    return p, rng.standard_normal((2, 42, 8))


def test_changing_one_token_changes_its_output_and_later_chunks_only():
    p, x = _in_place_setup()
    out, _ = inplace_ttt_forward(x, p, chunk_size=8, lr=1.0)
    x2 = x.copy()
    x2[:, 19] += 1.0
    out2, _ = inplace_ttt_forward(x2, p, chunk_size=8, lr=1.0)
    changed = np.flatnonzero(np.abs(out2 - out).max(axis=(0, 2)) > 0)
    assert changed.tolist() == [19] + list(range(24, 42))


def test_context_parallel_over_any_number_of_ranks_equals_one_process():
    p, x = _in_place_setup()
    ref, _ = inplace_ttt_forward(x, p, chunk_size=8, lr=1.0)
    for n_ranks in (1, 2, 3, 5):
        out, _ = inplace_ttt_context_parallel(
            x, p, chunk_size=8, lr=1.0, n_ranks=n_ranks
        )
        np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.fixture(scope="module")
def next_token():
    """Section 6: token streams, embeddings and the three hand-set layers."""
    rng = np.random.default_rng(5)
    ids, _ = permutation_tokens(512, 32, batch=8, rng=rng, p_jump=0.1)
    emb = rng.standard_normal((32, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    base = init_inplace_ttt_params(32, 256, rng=rng)
    ids_random, _ = permutation_tokens(512, 32, batch=8, rng=rng, p_jump=1.0)
    layers = {}
    for name, offset in [("next", 1), ("same", 0), ("plain", None)]:
        p = dict(base, conv=np.zeros_like(base["conv"]))
        if offset is not None:
            p["conv"][2 + offset] = 1.0
        layers[name] = p
    return ids, emb, layers, ids_random


def test_a_next_token_target_learns_the_permutation_in_context_and_the_others_do_not(
    next_token,
):
    ids, emb, layers, _ = next_token
    last4 = {}
    for name, p in layers.items():
        out, _ = inplace_ttt_forward(emb[ids], p, chunk_size=32, lr=1.0)
        correct = np.argmax(out[:, :-1] @ emb.T, axis=-1) == ids[:, 1:]
        chunks = [correct[:, a : a + 32].mean() for a in range(0, 511, 32)]
        assert chunks[0] <= 0.05  # chunk 0 uses the plain MLP's weights
        last4[name] = np.mean(chunks[-4:])
    assert 0.8 <= last4["next"] <= 0.9 + 0.1 / 32
    assert last4["same"] <= 0.05 and last4["plain"] <= 0.05


def test_repeated_content_makes_the_drift_grow_linearly_unrelated_like_a_random_walk(
    next_token,
):
    ids, emb, layers, ids_random = next_token
    _, cache = inplace_ttt_forward(emb[ids], layers["next"], chunk_size=32, lr=1.0)
    _, cache_r = inplace_ttt_forward(
        emb[ids_random], layers["next"], chunk_size=32, lr=1.0
    )
    perm, rand = update_drift(cache), update_drift(cache_r)
    i = len(perm.drift) - 1
    assert perm.cosine > 0.3 and rand.cosine < 0.1
    assert 0.5 * i * perm.step.mean() < perm.drift[-1] < i * perm.step.mean()
    steps = np.diff(perm.drift[1:])  # a straight line: equal increments
    assert steps.std() < 0.25 * steps.mean()
    walk = np.sqrt(i) * rand.step.mean()  # the random-walk curve, its own step size
    assert walk < rand.drift[-1] < 1.5 * walk  # above it, by the small common part
    assert (round(rand.drift[-1], 1), round(walk, 1)) == (7.6, 5.6)
    assert rand.step.mean() < perm.step.mean()  # why the figure draws each its own line


def test_the_chunk_size_barely_changes_how_far_the_weights_drift_by_a_given_token(
    next_token,
):
    ids, emb, layers, _ = next_token
    at = []
    for C in (16, 32, 64):
        _, cache = inplace_ttt_forward(emb[ids], layers["next"], chunk_size=C, lr=1.0)
        drift = update_drift(cache).drift
        at.append((drift[256 // C], drift[448 // C]))
    at = np.array(at)
    assert np.all(at.max(axis=0) < 1.06 * at.min(axis=0))

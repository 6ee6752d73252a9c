"""Claims of lesson 09 (the transformer block), computed from the package.

Each test re-computes one sentence of notebooks/09_the_transformer_block.ipynb with
the lesson's sizes (and its seeds where the sentence quotes a number); the notebook
itself is not executed. Whole file: a few seconds on one core.
"""

import io

import numpy as np
import pytest

from attention_np import attention_backward, attention_forward
from attention_np.gradcheck import check_layer, numerical_grad
from attention_np.train import TrainConfig, default_model_config, learning_rate
from attention_np.transformer import (
    TransformerConfig,
    adam_init,
    adam_step,
    block_backward,
    block_forward,
    clip_grad_norm,
    cross_entropy_backward,
    cross_entropy_forward,
    gelu_forward,
    global_norm,
    init_block_params,
    init_params,
    layernorm_backward,
    layernorm_forward,
    model_backward,
    model_forward,
)
from attention_np.transformer import block as block_module

REVERSAL = TrainConfig(task="reversal", steps=1000)  # lesson 10's run


def as_dict(dx, grads):
    return {"x": dx, **grads}


def block_check(backward, rng):
    """check_layer's verdict per tensor for the (D, H, F) = (6, 2, 10) block of 4."""
    params = init_block_params(6, 2, 10, rng=rng)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    inputs = {"x": rng.standard_normal((2, 4, 6)), **params}
    report = io.StringIO()
    ok = check_layer(
        lambda p: block_forward(
            p["x"], {k: p[k] for k in params}, n_heads=2, causal=True
        ),
        lambda dout, c: as_dict(*backward(dout, c)),
        inputs,
        rng=rng,
        file=report,
    )
    lines = [line.split() for line in report.getvalue().splitlines()]
    return ok, {words[0]: words[-1] for words in lines}


def test_check_layer_passes_attention_and_fails_a_planted_zero_dv_with_rel_error_1():
    rng = np.random.default_rng(0)
    qkv = {name: rng.standard_normal((2, 4, 3)) for name in "qkv"}
    forward = lambda p: attention_forward(p["q"], p["k"], p["v"], causal=True)
    backward = lambda dout, c: dict(
        zip("qkv", attention_backward(dout, c), strict=True)
    )
    assert check_layer(forward, backward, qkv, rng=rng, file=io.StringIO())
    planted = lambda dout, c: {**backward(dout, c), "v": np.zeros((2, 4, 3))}
    report = io.StringIO()
    assert not check_layer(forward, planted, qkv, rng=rng, file=report)
    v_line = report.getvalue().splitlines()[-1].split()
    assert v_line[0] == "v" and v_line[-1] == "FAIL" and float(v_line[-2]) == 1.0


def test_layer_norm_rows_have_mean_zero_and_variance_one_up_to_eps():
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * rng.standard_normal((2, 5, 8))
    y, _ = layernorm_forward(x, np.ones(8), np.zeros(8))
    assert np.abs(y.mean(-1)).max() < 1e-12
    var = x.var(-1)
    np.testing.assert_allclose(y.var(-1), var / (var + 1e-5), rtol=1e-12)
    assert 0 < np.abs(y.var(-1) - 1).max() < 1e-4


def test_layer_norm_gradient_rows_sum_to_zero_and_are_orthogonal_to_xhat_up_to_eps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5))
    gamma, beta = 1 + 0.1 * rng.standard_normal(5), 0.1 * rng.standard_normal(5)
    dots = {}
    for eps in (1e-5, 1e-2):  # exercise 2: a larger eps, a larger dot product
        _, cache = layernorm_forward(x, gamma, beta, eps=eps)
        dx, _, _ = layernorm_backward(rng.standard_normal((2, 3, 5)), cache)
        assert np.abs(dx.sum(-1)).max() < 1e-14
        dots[eps] = np.abs((dx * cache[0]).sum(-1)).max()
    assert 1e-14 < dots[1e-5] < 1e-3 < dots[1e-2]


def test_gelu_is_slightly_negative_with_minimum_minus_0_17_near_minus_0_75():
    grid = np.linspace(-4, 4, 801)
    g = gelu_forward(grid)[0]
    assert round(g.min(), 3) == -0.170 and round(grid[g.argmin()], 2) == -0.75
    assert np.abs(g[grid >= 3] - grid[grid >= 3]).max() < 0.01  # close to x
    assert np.abs(g[grid <= -3]).max() < 0.01  # close to 0


def test_silent_branches_make_the_block_the_identity_forward_and_backward():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8))
    params = init_block_params(8, 2, 32, rng=rng)
    silent = ("attn.W_o", "attn.b_o", "mlp.W_2", "mlp.b_2")
    params.update({k: np.zeros_like(params[k]) for k in silent})
    y, cache = block_forward(x, params, n_heads=2, causal=True)
    dout = rng.standard_normal(x.shape)
    dx, _ = block_backward(dout, cache)
    assert np.array_equal(y, x) and np.array_equal(dx, dout)


def test_block_backward_agrees_with_finite_differences_for_input_and_all_17_tensors():
    ok, status = block_check(block_backward, np.random.default_rng(0))
    assert ok and len(status) == 17 and set(status.values()) == {"ok"}


def test_a_planted_residual_bug_fails_x_ln1_and_attention_but_not_b_k_ln2_or_mlp():
    """Exercise 1's expected answer: block_backward with dx1 = dx1_ln."""

    def buggy(dout, cache):
        c_ln1, c_attn, c_ln2, c_mlp = cache
        dh2, g_mlp = block_module.mlp_backward(dout, c_mlp)
        dx1_ln, dgamma2, dbeta2 = block_module.layernorm_backward(dh2, c_ln2)
        dx1 = dx1_ln  # the bug
        dh, g_attn = block_module.self_attention_backward(dx1, c_attn)
        dx_ln, dgamma1, dbeta1 = block_module.layernorm_backward(dh, c_ln1)
        grads = {"ln1.gamma": dgamma1, "ln1.beta": dbeta1}
        grads.update(block_module.prefixed(g_attn, "attn"))
        grads.update({"ln2.gamma": dgamma2, "ln2.beta": dbeta2})
        grads.update(block_module.prefixed(g_mlp, "mlp"))
        return dx1 + dx_ln, grads

    ok, status = block_check(buggy, np.random.default_rng(0))
    failed = {name for name, s in status.items() if s == "FAIL"}
    attention = {n for n in status if n.startswith("attn.")} - {"attn.b_k"}
    assert not ok and failed == {"x", "ln1.gamma", "ln1.beta"} | attention


def test_uniform_logits_cost_log_v_and_unscored_positions_get_no_gradient():
    targets = np.random.default_rng(0).integers(0, 11, size=(1, 6))
    scored = np.array([[False, False, False, True, True, True]])
    loss, cache = cross_entropy_forward(np.zeros((1, 6, 11)), targets, scored)
    dlogits = cross_entropy_backward(np.ones(()), cache)
    assert np.isclose(loss, np.log(11))
    assert np.abs(dlogits.sum(-1)).max() < 1e-15 and not dlogits[~scored].any()
    expected = (np.full(11, 1 / 11) - np.eye(11)[targets[0, 3]]) / 3
    np.testing.assert_allclose(dlogits[0, 3], expected, atol=1e-15)


def test_first_adam_step_is_minus_lr_times_the_sign_whatever_the_gradient_scale():
    theta = {"w": np.array([1.0, -2.0, 3.0])}
    g = {"w": np.array([1e-3, -50.0, 0.2])}
    state = adam_init(theta)
    for _ in range(10):  # exercise 4: a constant gradient keeps the step exact
        before = theta["w"].copy()
        adam_step(theta, g, state, lr=0.1)
        np.testing.assert_allclose(theta["w"] - before, -0.1 * np.sign(g["w"]), 1e-4)
    np.testing.assert_allclose(0.1 * 1e-3 / (1e-3 + 1e-8), 0.099999, rtol=1e-6)


def test_the_schedule_peaks_at_step_49_ends_at_a_tenth_and_is_0_55_lr_at_step_525():
    lrs = [learning_rate(t, REVERSAL) for t in range(REVERSAL.steps)]
    assert int(np.argmax(lrs)) == 49 and np.isclose(max(lrs), 3e-3)
    assert np.isclose(lrs[-1], 3e-4, rtol=1e-3)
    assert np.isclose(learning_rate(525, REVERSAL), 1.65e-3)


def test_clipping_rescales_the_global_norm_to_c_and_keeps_the_direction():
    grads = {"W": np.array([[3.0, 0.0], [0.0, 0.0]]), "b": np.array([0.0, 4.0])}
    clipped, norm = clip_grad_norm(grads, 1.0)
    assert norm == 5.0 and np.isclose(global_norm(clipped), 1.0)
    assert all(np.allclose(clipped[k] * 5.0, grads[k]) for k in grads)
    unchanged, _ = clip_grad_norm(grads, 10.0)
    assert all(np.array_equal(unchanged[k], grads[k]) for k in grads)


def test_lesson_10s_model_has_102539_parameters():
    config = default_model_config(REVERSAL)
    params = init_params(config, rng=np.random.default_rng(0), dtype=np.float32)
    assert sum(p.size for p in params.values()) == 102_539


def test_the_untrained_loss_is_near_log_v_plus_half_the_logit_variance():
    config = default_model_config(REVERSAL)
    params = init_params(config, rng=np.random.default_rng(0), dtype=np.float32)
    ids = np.random.default_rng(2).integers(0, 11, size=(256, 16))
    targets = np.random.default_rng(3).integers(0, 11, size=(256, 16))
    logits, _ = model_forward(ids, params, config)
    loss, _ = cross_entropy_forward(logits, targets)
    s2 = float(logits.var(axis=-1).mean())
    assert 0.5 < s2 < 1.5 and loss > np.log(11) + 0.25
    assert abs(float(loss) - (np.log(11) + s2 / 2)) < 0.05


@pytest.mark.parametrize("scale, within", [(1.0, 0.05), (2.0, 0.5)])
def test_doubling_the_head_weights_quadruples_s2_and_loosens_the_approximation(
    scale, within
):
    """Exercise 6: s^2 about four times larger, log V + s^2 / 2 less accurate."""
    config = default_model_config(REVERSAL)
    params = init_params(config, rng=np.random.default_rng(0), dtype=np.float32)
    params["head.W"] = params["head.W"] * scale
    ids = np.random.default_rng(2).integers(0, 11, size=(256, 16))
    targets = np.random.default_rng(3).integers(0, 11, size=(256, 16))
    logits, _ = model_forward(ids, params, config)
    loss, _ = cross_entropy_forward(logits, targets)
    s2 = float(logits.var(axis=-1).mean())
    assert 0.7 * scale**2 < s2 < 0.75 * scale**2  # s^2 = 0.72 at init, seed 0
    gap = abs(float(loss) - (np.log(11) + s2 / 2))
    assert gap < within and (scale == 1.0 or gap > 0.1)


def test_the_whole_model_backward_agrees_with_finite_differences_for_38_tensors():
    rng = np.random.default_rng(0)
    tiny = TransformerConfig(
        vocab_size=5, max_len=6, d_model=8, n_heads=2, n_layers=2, d_mlp=12
    )
    params = {
        k: v + 0.1 * rng.standard_normal(v.shape)
        for k, v in init_params(tiny, rng=rng).items()
    }
    ids, targets = rng.integers(0, 5, size=(2, 2, 6))

    def loss_forward(p):
        logits, cache = model_forward(ids, p, tiny)
        loss, loss_cache = cross_entropy_forward(logits, targets)
        return loss, (cache, loss_cache)

    report = io.StringIO()
    ok = check_layer(
        loss_forward,
        lambda dout, c: model_backward(cross_entropy_backward(dout, c[1]), c[0]),
        params,
        rng=rng,
        file=report,
    )
    assert ok and len(report.getvalue().splitlines()) == len(params) == 38


def test_gelus_tanh_form_derivative_agrees_with_finite_differences_to_1e_6():
    """Exercise 3's expected answer, with the hand-derived derivative."""
    x = np.linspace(-4, 4, 801)
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    d = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)
    numeric = numerical_grad(lambda z: gelu_forward(z)[0], x, np.ones_like(x))
    assert np.abs(d - numeric).max() < 1e-6
    assert np.all(x[d < 0] < -0.75) and np.all(d[x < -0.77] < 0)

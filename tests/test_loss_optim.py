import numpy as np
import pytest

from attention_np.transformer import (
    adam_init,
    adam_step,
    clip_grad_norm,
    cross_entropy_backward,
    cross_entropy_forward,
    global_norm,
    sgd_step,
)


def test_cross_entropy_is_mean_negative_log_probability(rng):
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, (2, 3))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -np.mean(np.log(np.take_along_axis(p, targets[..., None], -1)))
    loss, _ = cross_entropy_forward(logits, targets)
    assert loss.shape == () and float(loss) == pytest.approx(expected, abs=1e-12)


def test_uniform_logits_give_log_vocabulary_size():
    loss, _ = cross_entropy_forward(np.zeros((4, 7)), np.arange(4))
    assert float(loss) == pytest.approx(np.log(7), abs=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    loss, cache = cross_entropy_forward(np.array([[1e4, 0.0, -1e4]]), np.array([1]))
    assert float(loss) == pytest.approx(1e4)
    assert np.all(np.isfinite(cross_entropy_backward(np.float64(1.0), cache)))


def test_masked_positions_get_no_loss_and_no_gradient(rng):
    logits = rng.standard_normal((2, 4, 5))
    targets = rng.integers(0, 5, (2, 4))
    mask = np.array([[True, False, True, True], [False, False, True, False]])
    loss, cache = cross_entropy_forward(logits, targets, mask)
    kept, _ = cross_entropy_forward(logits[mask], targets[mask])
    assert float(loss) == pytest.approx(float(kept), abs=1e-12)
    dlogits = cross_entropy_backward(np.float64(1.0), cache)
    assert np.all(dlogits[~mask] == 0)


def test_all_masked_gives_zero_loss_and_zero_gradient(rng):
    loss, cache = cross_entropy_forward(
        rng.standard_normal((3, 4)), np.zeros(3, int), np.zeros(3, bool)
    )
    assert float(loss) == 0.0
    assert np.all(cross_entropy_backward(np.float64(2.0), cache) == 0)


def test_cross_entropy_gradient_rows_sum_to_zero(rng):
    _, cache = cross_entropy_forward(rng.standard_normal((6, 5)), rng.integers(0, 5, 6))
    dlogits = cross_entropy_backward(np.float64(1.0), cache)
    np.testing.assert_allclose(dlogits.sum(-1), 0, atol=1e-15)


def test_cross_entropy_rejects_bad_targets(rng):
    with pytest.raises(ValueError, match="targets"):
        cross_entropy_forward(np.zeros((3, 4)), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="targets"):
        cross_entropy_forward(np.zeros((3, 4)), np.zeros((3, 1), int))


def test_sgd_step_moves_against_the_gradient(rng):
    params = {"w": rng.standard_normal(3)}
    grads = {"w": rng.standard_normal(3)}
    expected = params["w"] - 0.1 * grads["w"]
    sgd_step(params, grads, lr=0.1)
    np.testing.assert_allclose(params["w"], expected, atol=1e-15)


def test_first_adam_step_has_size_lr_in_every_coordinate(rng):
    params = {"w": rng.standard_normal(5), "b": rng.standard_normal(2)}
    before = {k: v.copy() for k, v in params.items()}
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    adam_step(params, grads, adam_init(params), lr=0.01, eps=1e-300)
    for k in params:  # bias correction: m_hat = g, v_hat = g^2 -> step = lr sign(g)
        np.testing.assert_allclose(
            params[k] - before[k], -0.01 * np.sign(grads[k]), atol=1e-15
        )


def test_adam_minimises_a_quadratic():
    target = np.array([1.0, -2.0, 3.0])
    params = {"w": np.zeros(3)}
    state = adam_init(params)
    for _ in range(500):
        adam_step(params, {"w": 2 * (params["w"] - target)}, state, lr=0.05)
    np.testing.assert_allclose(params["w"], target, atol=1e-3)
    assert state["t"] == 500


def test_adam_weight_decay_shrinks_parameters_without_gradient():
    params = {"w": np.full(2, 4.0)}
    adam_step(params, {"w": np.zeros(2)}, adam_init(params), lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(params["w"], 4.0 * (1 - 0.1 * 0.5))


def test_optimisers_refuse_mismatched_keys():
    params = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="missing keys"):
        sgd_step(params, {"v": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match="missing keys"):
        adam_step(params, {}, adam_init(params), lr=0.1)


def test_clipping_caps_the_global_norm_and_keeps_the_direction(rng):
    grads = {"a": rng.standard_normal(4), "b": rng.standard_normal((2, 3))}
    norm = global_norm(grads)
    clipped, reported = clip_grad_norm(grads, norm / 4)
    assert reported == pytest.approx(norm)
    assert global_norm(clipped) == pytest.approx(norm / 4)
    np.testing.assert_allclose(clipped["b"], grads["b"] / 4, atol=1e-15)


def test_clipping_leaves_small_gradients_alone(rng):
    grads = {"a": rng.standard_normal(4)}
    clipped, _ = clip_grad_norm(grads, 1e6)
    np.testing.assert_array_equal(clipped["a"], grads["a"])


def test_adam_with_beta1_zero_is_rmsprop_with_bias_correction(rng):
    params = {"w": rng.standard_normal(4)}
    before = params["w"].copy()
    state = adam_init(params)
    g1, g2 = rng.standard_normal(4), rng.standard_normal(4)
    adam_step(params, {"w": g1}, state, lr=0.1, beta1=0.0, beta2=0.5, eps=1e-300)
    adam_step(params, {"w": g2}, state, lr=0.1, beta1=0.0, beta2=0.5, eps=1e-300)
    v = (0.5 * 0.5 * g1**2 + 0.5 * g2**2) / (1 - 0.5**2)
    expected = before - 0.1 * np.sign(g1) - 0.1 * g2 / np.sqrt(v)
    np.testing.assert_allclose(params["w"], expected, atol=1e-12)


def test_adam_keeps_float32_parameters_float32(rng):
    params = {"w": rng.standard_normal(3).astype(np.float32)}
    state = adam_init(params)
    adam_step(params, {"w": np.ones(3, np.float32)}, state, lr=0.1)
    assert params["w"].dtype == np.float32 and state["m"]["w"].dtype == np.float32


def test_clipping_returns_new_arrays_and_leaves_the_input_alone(rng):
    grads = {"a": 10 * rng.standard_normal(4)}
    before = grads["a"].copy()
    clipped, _ = clip_grad_norm(grads, 1.0)
    np.testing.assert_array_equal(grads["a"], before)
    assert clipped["a"] is not grads["a"]


def test_global_norm_of_huge_finite_gradients_is_finite():
    grads = {"a": np.full(4, 1e200), "b": np.array([-1e200])}
    assert global_norm(grads) == pytest.approx(np.sqrt(5) * 1e200)


def test_global_norm_is_computed_in_float64_for_float32_gradients():
    grads = {"a": np.full(3, 3e20, np.float32)}  # squares overflow float32
    assert global_norm(grads) == pytest.approx(np.sqrt(3) * 3e20, rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_clipping_refuses_a_non_finite_gradient_and_names_it(bad):
    grads = {"a": np.ones(3), "b": np.array([1.0, bad])}
    with pytest.raises(ValueError, match=r"grads\['b'\] contains"):
        clip_grad_norm(grads, 1.0)


def test_global_norm_of_a_nan_gradient_is_nan():
    assert np.isnan(global_norm({"a": np.array([1.0, np.nan])}))


def test_cross_entropy_nan_logit_at_a_masked_position_gives_zero_gradient_there():
    logits = np.zeros((3, 4))
    logits[1, 2] = np.nan
    mask = np.array([True, False, True])
    loss, cache = cross_entropy_forward(logits, np.zeros(3, int), mask)
    dlogits = cross_entropy_backward(np.float64(1.0), cache)
    assert np.isfinite(float(loss)) and np.all(dlogits[1] == 0)
    assert np.all(np.isfinite(dlogits))


def test_cross_entropy_keeps_float32(rng):
    logits = rng.standard_normal((2, 5)).astype(np.float32)
    loss, cache = cross_entropy_forward(logits, np.array([0, 4]))
    assert loss.dtype == np.float32
    assert cross_entropy_backward(np.float32(1.0), cache).dtype == np.float32

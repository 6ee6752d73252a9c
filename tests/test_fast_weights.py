"""Fast weights (Ba et al. 2016): the memory is decayed attention over past states."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np.memory import (
    fast_weight_attention_matrix,
    fast_weight_read,
    fast_weight_read_attention,
    fast_weight_update,
    fast_weights_backward,
    fast_weights_forward,
    init_fast_weights_params,
)
from attention_np.transformer.layers import layernorm_forward

B, T, D_IN, D_H = 2, 6, 3, 5
LAM, ETA = 0.9, 0.7


def _setup(rng):
    params = init_fast_weights_params(D_IN, D_H, rng=rng)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
    return rng.standard_normal((B, T, D_IN)), params


def test_memory_matrix_equals_explicit_decayed_sum(rng):
    H = rng.standard_normal((B, T, D_H))
    A = np.zeros((B, D_H, D_H))
    for t in range(T):
        A = fast_weight_update(A, H[:, t], lam=LAM, eta=ETA)
    decay = LAM ** np.arange(T - 1, -1, -1)
    explicit = ETA * np.einsum("t,bti,btj->bij", decay, H, H)
    np.testing.assert_allclose(A, explicit, atol=1e-12)


def test_reading_the_matrix_equals_decayed_attention_over_past_states(rng):
    H, h = rng.standard_normal((B, T, D_H)), rng.standard_normal((B, D_H))
    A = np.zeros((B, D_H, D_H))
    for t in range(T):
        A = fast_weight_update(A, H[:, t], lam=LAM, eta=ETA)
    np.testing.assert_allclose(
        fast_weight_read(h, A),
        fast_weight_read_attention(h, H, lam=LAM, eta=ETA),
        atol=1e-12,
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matrix_form_equals_attention_form(rng, activation):
    x, params = _setup(rng)
    kw = dict(lam=LAM, eta=ETA, n_inner=3, activation=activation)
    H_matrix, _ = fast_weights_forward(x, params, form="matrix", **kw)
    H_attention, _ = fast_weights_forward(x, params, form="attention", **kw)
    np.testing.assert_allclose(H_matrix, H_attention, atol=1e-12)


def test_indexing_convention_memory_holds_only_earlier_states(rng):
    # h_2 = f(LN(pre_2 + f(pre_2) A_1)) with A_1 = eta h_1^T h_1, and h_1 sees A_0 = 0
    x, p = _setup(rng)
    H, _ = fast_weights_forward(x, p, lam=LAM, eta=ETA, n_inner=1)
    ln = lambda z: layernorm_forward(z, p["gamma"], p["beta"])[0]
    pre1 = x[:, 0] @ p["C"] + p["b"]
    h1 = np.tanh(ln(pre1))
    pre2 = h1 @ p["W"] + x[:, 1] @ p["C"] + p["b"]
    A1 = ETA * h1[:, :, None] * h1[:, None, :]
    h2 = np.tanh(ln(pre2 + np.einsum("bi,bij->bj", np.tanh(pre2), A1)))
    np.testing.assert_allclose(H[:, 0], h1, atol=1e-12)
    np.testing.assert_allclose(H[:, 1], h2, atol=1e-12)


def test_no_inner_steps_is_a_plain_rnn(rng):
    x, p = _setup(rng)
    H, _ = fast_weights_forward(x, p, n_inner=0)
    h = np.zeros((B, D_H))
    for t in range(T):
        h = np.tanh(h @ p["W"] + x[:, t] @ p["C"] + p["b"])
        np.testing.assert_allclose(H[:, t], h, atol=1e-12)


def test_attention_matrix_rows_reproduce_the_read(rng):
    H = rng.standard_normal((B, T, D_H))
    att = fast_weight_attention_matrix(H, lam=LAM, eta=ETA)
    assert np.all(np.triu(att) == 0)  # only strictly earlier states are read
    for t in range(T):
        read = fast_weight_read_attention(H[:, t], H[:, :t], lam=LAM, eta=ETA)
        from_matrix = np.einsum("bs,bsd->bd", att[:, t], H)
        np.testing.assert_allclose(from_matrix, read, atol=1e-12)


@pytest.mark.parametrize("form", ["matrix", "attention"])
def test_backward_matches_finite_differences(rng, form):
    x, params = _setup(rng)

    def forward(p):
        weights = {k: p[k] for k in params}
        return fast_weights_forward(
            p["x"], weights, lam=LAM, eta=ETA, n_inner=2, form=form
        )

    def backward(dout, cache):
        dx, grads = fast_weights_backward(dout, cache)
        return {"x": dx, **grads}

    fd_check(forward, backward, {"x": x, **params}, rng)


def test_gradient_reaches_earlier_inputs_through_the_memory(rng):
    # with W = 0 the only path from x_1 to h_3 is the fast memory A
    x, p = _setup(rng)
    p["W"] = np.zeros_like(p["W"])
    H, cache = fast_weights_forward(x, p, n_inner=1)
    dH = np.zeros_like(H)
    dH[:, 2] = rng.standard_normal((B, D_H))
    dx, _ = fast_weights_backward(dH, cache)
    assert np.abs(dx[:, 0]).max() > 1e-6
    np.testing.assert_array_equal(dx[:, 3:], 0.0)  # causal: no later input matters


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(lam=1.5), ValueError),
        (dict(form="dense"), ValueError),
        (dict(activation="gelu"), ValueError),
        (dict(n_inner=-1), ValueError),
    ],
)
def test_bad_options_are_reported(rng, kwargs, error):
    x, p = _setup(rng)
    with pytest.raises(error):
        fast_weights_forward(x, p, **kwargs)


def test_wrong_param_shape_is_named(rng):
    x, p = _setup(rng)
    p["C"] = np.zeros((D_IN + 1, D_H))
    with pytest.raises(ValueError, match=r"params\['C'\]"):
        fast_weights_forward(x, p)


def test_float32_inputs_and_params_stay_float32(rng):
    params = init_fast_weights_params(D_IN, D_H, rng=rng, dtype=np.float32)
    x = rng.standard_normal((B, T, D_IN)).astype(np.float32)
    H, cache = fast_weights_forward(x, params, form="attention")
    assert H.dtype == np.float32
    dx, grads = fast_weights_backward(np.ones_like(H), cache)
    assert dx.dtype == np.float32 and set(grads) == set(params)


def test_params_in_another_dtype_than_the_inputs_are_named(rng):
    x, p = _setup(rng)
    p["b"] = p["b"].astype(np.float32)
    with pytest.raises(TypeError, match=r"params\['b'\]"):
        fast_weights_forward(x, p)

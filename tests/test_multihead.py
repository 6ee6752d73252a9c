import numpy as np
import pytest
from conftest import B, M, N, fd_check

from attention_np import (
    attention_forward,
    causal_mask,
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    padding_mask,
    split_heads,
)
from attention_np.naive import mha_naive

D, H, D_KV = 12, 3, 5


def noisy_params(rng, d_kv=None, bias=True):
    params = init_mha_params(D, H, rng=rng, d_kv=d_kv, bias=bias)
    return {k: w + 0.1 * rng.standard_normal(w.shape) for k, w in params.items()}


def test_split_then_merge_is_identity(rng):
    x = rng.standard_normal((B, N, D))
    assert split_heads(x, H).shape == (B, H, N, D // H)
    np.testing.assert_array_equal(merge_heads(split_heads(x, H)), x)


def test_split_puts_consecutive_features_in_one_head(rng):
    x = rng.standard_normal((B, N, D))
    d = D // H
    for h in range(H):
        np.testing.assert_array_equal(
            split_heads(x, H)[:, h], x[..., h * d : (h + 1) * d]
        )


def test_init_shapes_and_keys(rng):
    p = init_mha_params(D, H, rng=rng, d_kv=D_KV)
    assert {k: v.shape for k, v in p.items()} == {
        "W_q": (D, D),
        "W_k": (D_KV, D),
        "W_v": (D_KV, D),
        "W_o": (D, D),
        "b_q": (D,),
        "b_k": (D,),
        "b_v": (D,),
        "b_o": (D,),
    }
    assert set(init_mha_params(D, H, rng=rng, bias=False)) == {
        "W_q",
        "W_k",
        "W_v",
        "W_o",
    }


@pytest.mark.parametrize("masked", [False, True])
def test_self_attention_matches_naive_loop_over_heads(rng, masked):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    mask = causal_mask(N) if masked else None
    out, cache = mha_forward(x, x, params, H, mask)
    out_ref, w_ref = mha_naive(x, x, params, H, mask)
    np.testing.assert_allclose(out, out_ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)
    assert cache.weights.shape == (B, H, N, N)


def test_cross_attention_matches_naive(rng):
    params = noisy_params(rng, d_kv=D_KV)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D_KV))
    mask = padding_mask([M, 2], M)
    out, cache = mha_forward(x_q, x_kv, params, H, mask)
    out_ref, w_ref = mha_naive(x_q, x_kv, params, H, mask)
    np.testing.assert_allclose(out, out_ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)
    assert out.shape == (B, N, D) and cache.weights.shape == (B, H, N, M)


def test_one_head_equals_single_head_attention(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    out, _ = mha_forward(x, x, params, 1)
    q, k, v = (x @ params[f"W_{c}"] + params[f"b_{c}"] for c in "qkv")
    o, _ = attention_forward(q, k, v)
    np.testing.assert_allclose(out, o @ params["W_o"] + params["b_o"], atol=1e-12)


def test_self_attention_backward_matches_finite_differences(rng):
    params = noisy_params(rng)
    inputs = {"x": rng.standard_normal((B, N, D)), **params}
    mask = causal_mask(N)

    def forward(p):
        return mha_forward(p["x"], p["x"], {k: p[k] for k in params}, H, mask)

    def backward(dout, cache):
        dx_q, dx_kv, grads = mha_backward(dout, cache)
        return {"x": dx_q + dx_kv, **grads}  # x feeds Q, K and V: the paths add up

    fd_check(forward, backward, inputs, rng)


@pytest.mark.parametrize("bias", [True, False])
def test_cross_attention_backward_matches_finite_differences(rng, bias):
    params = noisy_params(rng, d_kv=D_KV, bias=bias)
    inputs = {
        "x_q": rng.standard_normal((B, N, D)),
        "x_kv": rng.standard_normal((B, M, D_KV)),
        **params,
    }
    mask = padding_mask([3, 0], M)  # the second sequence is fully masked

    def forward(p):
        return mha_forward(p["x_q"], p["x_kv"], {k: p[k] for k in params}, H, mask)

    def backward(dout, cache):
        dx_q, dx_kv, grads = mha_backward(dout, cache)
        assert set(grads) == set(params)  # keyed exactly like params
        return {"x_q": dx_q, "x_kv": dx_kv, **grads}

    fd_check(forward, backward, inputs, rng)


def test_key_bias_gradient_is_zero(rng):
    # b_k adds q . b_k to every score of a row: softmax is shift-invariant,
    # so b_k cannot change anything
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    out, cache = mha_forward(x, x, params, H, causal_mask(N))
    _, _, grads = mha_backward(rng.standard_normal(out.shape), cache)
    np.testing.assert_allclose(grads["b_k"], 0.0, atol=1e-12)
    assert np.abs(grads["b_q"]).max() > 1e-3  # the others are not zero


def test_causality_of_mha_input_gradient(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, 6, D))
    out, cache = mha_forward(x, x, params, H, causal_mask(6))
    for i in range(6):
        dout = np.zeros_like(out)
        dout[:, i] = rng.standard_normal((B, D))
        dx_q, dx_kv, _ = mha_backward(dout, cache)
        assert np.all((dx_q + dx_kv)[:, i + 1 :] == 0.0)

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_forward, causal_mask, padding_mask
from attention_np.additive import (
    additive_attention_backward,
    additive_attention_forward,
    init_additive_params,
    luong_attention_backward,
    luong_attention_forward,
)

B, N, M, D_q, D_k, A, d_v = 2, 4, 5, 3, 6, 7, 2


def inputs(rng):
    q = rng.standard_normal((B, N, D_q))
    k = rng.standard_normal((B, M, D_k))
    v = rng.standard_normal((B, M, d_v))
    return q, k, v


def bahdanau_loop(q, k, v, params):
    """e_ij = v_a . tanh(W_a^T q_i + U_a^T k_j), one pair at a time."""
    out = np.zeros((B, N, d_v))
    for b in range(B):
        for i in range(N):
            e = [
                params["v_a"]
                @ np.tanh(q[b, i] @ params["W_a"] + k[b, j] @ params["U_a"])
                for j in range(M)
            ]
            w = np.exp(e - np.max(e))
            out[b, i] = (w / w.sum()) @ v[b]
    return out


def test_bahdanau_forward_matches_the_pairwise_loop(rng):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    out, cache = additive_attention_forward(q, k, v, params, causal=False)
    np.testing.assert_allclose(out, bahdanau_loop(q, k, v, params), atol=1e-12)
    np.testing.assert_allclose(cache.weights.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_bahdanau_backward_matches_finite_differences(rng, masked):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    mask = padding_mask([M, 2], M)[:, 0] if masked else None  # (B, 1, M)

    def forward(p):
        weights = {n: p[n] for n in params}
        return additive_attention_forward(
            p["q"], p["k"], p["v"], weights, mask, causal=False
        )

    def backward(dout, cache):
        dq, dk, dv, grads = additive_attention_backward(dout, cache)
        return {"q": dq, "k": dk, "v": dv, **grads}

    fd_check(forward, backward, {"q": q, "k": k, "v": v, **params}, rng)


def test_bahdanau_masked_keys_get_zero_weight(rng):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    _, cache = additive_attention_forward(
        q, k, v, params, padding_mask([3, 5], M)[:, 0], causal=False
    )
    assert np.all(cache.weights[0, :, 3:] == 0)


def test_luong_general_with_scaled_identity_equals_sdpa(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    s = 1 / np.sqrt(D_k)
    out, _ = luong_attention_forward(q, k, v, s * np.eye(D_k), causal=False)
    ref, _ = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_luong_general_with_identity_equals_dot(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    general, _ = luong_attention_forward(q, k, v, np.eye(D_k), causal=False)
    dot, _ = luong_attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(general, dot, atol=1e-12)


def test_luong_dot_backward_matches_finite_differences(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    fd_check(
        lambda p: luong_attention_forward(p["q"], p["k"], p["v"], causal=False),
        lambda dout, cache: dict(
            zip("qkv", luong_attention_backward(dout, cache)[:3], strict=True)
        ),
        {"q": q, "k": k, "v": v},
        rng,
    )


def test_additive_rejects_mismatched_shapes(rng):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    with pytest.raises(ValueError, match="length M"):
        additive_attention_forward(q, k, v[:, :-1], params, causal=False)
    params["v_a"] = params["v_a"][:-1]
    with pytest.raises(ValueError, match=r"params\['W_a'\] must have shape \(3, 6\)"):
        additive_attention_forward(q, k, v, params, causal=False)


ALIGNS = ["top_left", "bottom_right"]


@pytest.mark.parametrize("align", ALIGNS)
def test_bahdanau_causal_equals_the_explicit_mask_anded_with_padding(rng, align):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    pad = padding_mask([M, 3], M)[:, 0]  # (B, 1, M)
    out, cache = additive_attention_forward(
        q, k, v, params, pad, causal=True, align=align
    )
    mask = pad & causal_mask(N, M, align=align)
    ref, ref_cache = additive_attention_forward(q, k, v, params, mask, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)


@pytest.mark.parametrize("align", ALIGNS)
def test_bahdanau_causal_backward_matches_finite_differences(rng, align):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)

    def forward(p):
        weights = {n: p[n] for n in params}
        return additive_attention_forward(
            p["q"], p["k"], p["v"], weights, causal=True, align=align
        )

    def backward(dout, cache):
        dq, dk, dv, grads = additive_attention_backward(dout, cache)
        assert set(grads) == set(params)
        return {"q": dq, "k": dk, "v": dv, **grads}

    fd_check(forward, backward, {"q": q, "k": k, "v": v, **params}, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_additive_params_has_the_asked_dtype(rng, dtype):
    params = init_additive_params(D_q, D_k, A, rng=rng, dtype=dtype)
    assert all(p.dtype == dtype for p in params.values())


@pytest.mark.parametrize("align", ALIGNS)
def test_luong_causal_equals_the_explicit_mask(rng, align):
    q, k, v = inputs(rng)
    W_a = rng.standard_normal((D_q, D_k))
    out, cache = luong_attention_forward(q, k, v, W_a, causal=True, align=align)
    mask = causal_mask(N, M, align=align)
    ref, ref_cache = luong_attention_forward(q, k, v, W_a, mask, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)
    assert cache.weights.shape == (B, N, M)


def test_luong_general_backward_matches_finite_differences(rng):
    q, k, v = inputs(rng)
    fd_check(
        lambda p: luong_attention_forward(
            p["q"], p["k"], p["v"], p["W_a"], causal=True, align="bottom_right"
        ),
        lambda dout, cache: dict(
            zip("q k v W_a".split(), luong_attention_backward(dout, cache), strict=True)
        ),
        {"q": q, "k": k, "v": v, "W_a": 0.5 * rng.standard_normal((D_q, D_k))},
        rng,
    )


def test_luong_dot_returns_none_for_the_absent_w_a(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    out, cache = luong_attention_forward(q, k, v, causal=False)
    assert luong_attention_backward(np.ones_like(out), cache)[3] is None

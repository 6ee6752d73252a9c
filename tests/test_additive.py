import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_forward, padding_mask
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
    out, cache = additive_attention_forward(q, k, v, params)
    np.testing.assert_allclose(out, bahdanau_loop(q, k, v, params), atol=1e-12)
    np.testing.assert_allclose(cache.weights.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_bahdanau_backward_matches_finite_differences(rng, masked):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    mask = padding_mask([M, 2], M)[:, 0] if masked else None  # (B, 1, M)

    def forward(p):
        weights = {n: p[n] for n in params}
        return additive_attention_forward(p["q"], p["k"], p["v"], weights, mask)

    def backward(dout, cache):
        dq, dk, dv, grads = additive_attention_backward(dout, cache)
        return {"q": dq, "k": dk, "v": dv, **grads}

    fd_check(forward, backward, {"q": q, "k": k, "v": v, **params}, rng)


def test_bahdanau_masked_keys_get_zero_weight(rng):
    q, k, v = inputs(rng)
    params = init_additive_params(D_q, D_k, A, rng=rng)
    _, cache = additive_attention_forward(
        q, k, v, params, padding_mask([3, 5], M)[:, 0]
    )
    assert np.all(cache.weights[0, :, 3:] == 0)


def test_luong_general_with_scaled_identity_equals_sdpa(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    s = 1 / np.sqrt(D_k)
    out, _ = luong_attention_forward(q, k, v, s * np.eye(D_k))
    ref, _ = attention_forward(q, k, v)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_luong_general_with_identity_equals_dot(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    general, _ = luong_attention_forward(q, k, v, np.eye(D_k))
    dot, _ = luong_attention_forward(q, k, v)
    np.testing.assert_allclose(general, dot, atol=1e-12)


def test_luong_dot_backward_matches_finite_differences(rng):
    q = rng.standard_normal((B, N, D_k))
    _, k, v = inputs(rng)
    fd_check(
        lambda p: luong_attention_forward(p["q"], p["k"], p["v"]),
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
        additive_attention_forward(q, k, v[:, :-1], params)
    params["v_a"] = params["v_a"][:-1]
    with pytest.raises(ValueError, match="len\\(v_a\\)"):
        additive_attention_forward(q, k, v, params)

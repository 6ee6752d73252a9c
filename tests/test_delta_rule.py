"""Sum rule and delta rule (Schlag et al. 2021), sequential and chunkwise (DeltaNet)."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np.memory import (
    delta_rule_backward,
    delta_rule_chunkwise_backward,
    delta_rule_chunkwise_forward,
    delta_rule_forward,
    sum_rule_backward,
    sum_rule_forward,
    ut_transform,
)

B, H, N, D_K, D_V = 2, 3, 7, 4, 5


def _inputs(rng, n=N):
    q, k = rng.standard_normal((2, B, H, n, D_K))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((B, H, n, D_V))
    return q, k, v, rng.uniform(0.1, 1.0, (B, H, n))


def _householder_loop(q, k, v, beta, S):
    """S_t = (I - beta k^T k) S_{t-1} + beta k^T v, written out with an identity."""
    out = np.empty_like(v)
    eye = np.eye(k.shape[-1])
    for t in range(k.shape[-2]):
        kt, b = k[..., t, :], beta[..., t, None, None]
        S = (eye - b * kt[..., :, None] * kt[..., None, :]) @ S + b * (
            kt[..., :, None] * v[..., t, None, :]
        )
        out[..., t, :] = np.einsum("...k,...kv->...v", q[..., t, :], S)
    return out, S


def test_sum_rule_is_unnormalised_causal_linear_attention(rng):
    q, k, v, _ = _inputs(rng)
    out, _ = sum_rule_forward(q, k, v)
    dense = np.tril(q @ np.swapaxes(k, -1, -2)) @ v  # diagonal included
    np.testing.assert_allclose(out, dense, atol=1e-12)


def test_delta_rule_equals_householder_form(rng):
    q, k, v, beta = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    out, cache = delta_rule_forward(q, k, v, beta, initial_state=S0)
    ref, S_ref = _householder_loop(q, k, v, beta, S0)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(cache.final_state, S_ref, atol=1e-12)


@pytest.mark.parametrize("chunk_size", range(1, N + 2))
def test_chunkwise_equals_sequential_for_every_chunk_size(rng, chunk_size):
    q, k, v, beta = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    seq, c_seq = delta_rule_forward(q, k, v, beta, initial_state=S0)
    chk, c_chk = delta_rule_chunkwise_forward(
        q, k, v, beta, chunk_size=chunk_size, initial_state=S0
    )
    np.testing.assert_allclose(chk, seq, atol=1e-12)
    np.testing.assert_allclose(c_chk.final_state, c_seq.final_state, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, N])
def test_chunkwise_backward_equals_sequential_backward(rng, chunk_size):
    q, k, v, beta = _inputs(rng)
    out, c_seq = delta_rule_forward(q, k, v, beta)
    _, c_chk = delta_rule_chunkwise_forward(q, k, v, beta, chunk_size=chunk_size)
    dout = rng.standard_normal(out.shape)
    for a, b in zip(
        delta_rule_chunkwise_backward(dout, c_chk),
        delta_rule_backward(dout, c_seq),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_ut_transform_solves_the_triangular_system(rng):
    _, k, v, beta = _inputs(rng, n=5)
    A, W, U = ut_transform(k, v, beta)
    T = np.linalg.inv(A) * beta[..., None, :]  # T = A^{-1} diag(beta)
    np.testing.assert_allclose(W, T @ k, atol=1e-12)
    np.testing.assert_allclose(U, T @ v, atol=1e-12)
    np.testing.assert_array_equal(np.triu(A, 1), 0.0)  # unit lower triangular
    np.testing.assert_array_equal(np.diagonal(A, axis1=-2, axis2=-1), 1.0)


def _orthonormal_keys(rng, n):
    Qm, _ = np.linalg.qr(rng.standard_normal((D_K, D_K)))
    return Qm[:n]  # (n, D_K) orthonormal rows


def test_beta_one_with_orthonormal_keys_retrieves_exactly(rng):
    k = _orthonormal_keys(rng, D_K)  # as many pairs as dimensions
    v = rng.standard_normal((D_K, D_V))
    _, cache = delta_rule_forward(k, k, v, np.ones(D_K))
    np.testing.assert_allclose(k @ cache.final_state, v, atol=1e-12)


def test_rewriting_a_key_overwrites_it_and_keeps_the_others(rng):
    k = _orthonormal_keys(rng, 2)
    keys = np.stack([k[0], k[1], k[0]])  # key 0 written twice
    v = rng.standard_normal((3, D_V))
    _, delta = delta_rule_forward(keys, keys, v, np.ones(3))
    np.testing.assert_allclose(k[0] @ delta.final_state, v[2], atol=1e-12)
    np.testing.assert_allclose(k[1] @ delta.final_state, v[1], atol=1e-12)
    _, total = sum_rule_forward(keys, keys, v)  # the sum rule can only add
    np.testing.assert_allclose(k[0] @ total[-1], v[0] + v[2], atol=1e-12)


def test_beta_zero_writes_nothing(rng):
    q, k, v, _ = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    out, cache = delta_rule_forward(q, k, v, np.zeros((B, H, N)), initial_state=S0)
    np.testing.assert_allclose(cache.final_state, S0, atol=0)
    np.testing.assert_allclose(out, q @ S0, atol=1e-12)


def test_sum_rule_retrieval_error_grows_past_the_key_width(rng):
    # more random unit keys than dimensions: crosstalk is unavoidable
    n = 4 * D_K
    k = rng.standard_normal((n, D_K))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((n, D_V))
    _, cache = sum_rule_forward(k, k, v)
    err = np.linalg.norm(k @ cache[-1] - v) / np.linalg.norm(v)
    assert err > 0.5


def test_sum_rule_backward_matches_finite_differences(rng):
    q, k, v, _ = _inputs(rng)
    fd_check(
        lambda p: sum_rule_forward(p["q"], p["k"], p["v"]),
        lambda dout, c: dict(zip("qkv", sum_rule_backward(dout, c), strict=True)),
        {"q": q, "k": k, "v": v},
        rng,
    )


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_delta_rule_backward_matches_finite_differences(rng, chunk_size):
    q, k, v, beta = _inputs(rng)
    if chunk_size is None:
        fwd, bwd = delta_rule_forward, delta_rule_backward
    else:
        fwd = lambda *a: delta_rule_chunkwise_forward(*a, chunk_size=chunk_size)
        bwd = delta_rule_chunkwise_backward
    names = ("q", "k", "v", "beta")
    fd_check(
        lambda p: fwd(p["q"], p["k"], p["v"], p["beta"]),
        lambda dout, c: dict(zip(names, bwd(dout, c), strict=True)),
        dict(zip(names, (q, k, v, beta), strict=True)),
        rng,
    )


def test_mismatched_shapes_are_named(rng):
    q, k, v, beta = _inputs(rng)
    with pytest.raises(ValueError, match="beta"):
        delta_rule_forward(q, k, v, beta[..., :-1])
    with pytest.raises(ValueError, match="initial_state"):
        delta_rule_forward(q, k, v, beta, initial_state=np.zeros((D_K, D_V)))
    with pytest.raises(ValueError, match="chunk_size"):
        delta_rule_chunkwise_forward(q, k, v, beta, chunk_size=0)

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
    out, cache = delta_rule_forward(q, k, v, beta, S0)
    ref, S_ref = _householder_loop(q, k, v, beta, S0)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(cache.final_state, S_ref, atol=1e-12)


@pytest.mark.parametrize("chunk_size", range(1, N + 2))
def test_chunkwise_equals_sequential_for_every_chunk_size(rng, chunk_size):
    q, k, v, beta = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    seq, c_seq = delta_rule_forward(q, k, v, beta, S0)
    chk, c_chk = delta_rule_chunkwise_forward(q, k, v, beta, S0, chunk_size=chunk_size)
    np.testing.assert_allclose(chk, seq, atol=1e-12)
    np.testing.assert_allclose(c_chk.final_state, c_seq.final_state, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, N])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_backward_equals_sequential_backward(rng, chunk_size, with_state):
    q, k, v, beta = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V)) if with_state else None
    out, c_seq = delta_rule_forward(q, k, v, beta, S0)
    _, c_chk = delta_rule_chunkwise_forward(q, k, v, beta, S0, chunk_size=chunk_size)
    dout = rng.standard_normal(out.shape)
    dF = rng.standard_normal((B, H, D_K, D_V))  # and a gradient of the final state
    for a, b in zip(
        delta_rule_chunkwise_backward(dout, c_chk._replace(dfinal_state=dF)),
        delta_rule_backward(dout, c_seq._replace(dfinal_state=dF)),
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
    np.testing.assert_allclose(k[0] @ total.final_state, v[0] + v[2], atol=1e-12)


def test_beta_zero_writes_nothing(rng):
    q, k, v, _ = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    out, cache = delta_rule_forward(q, k, v, np.zeros((B, H, N)), S0)
    np.testing.assert_allclose(cache.final_state, S0, atol=0)
    np.testing.assert_allclose(out, q @ S0, atol=1e-12)


def test_sum_rule_retrieval_error_grows_past_the_key_width(rng):
    # more random unit keys than dimensions: crosstalk is unavoidable
    n = 4 * D_K
    k = rng.standard_normal((n, D_K))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((n, D_V))
    _, cache = sum_rule_forward(k, k, v)
    err = np.linalg.norm(k @ cache.final_state - v) / np.linalg.norm(v)
    assert err > 0.5


QKV = ("q", "k", "v")
FORMS = {
    "sum": (sum_rule_forward, sum_rule_backward, QKV),
    "delta": (delta_rule_forward, delta_rule_backward, (*QKV, "beta")),
    "chunkwise": (
        lambda *a: delta_rule_chunkwise_forward(*a, chunk_size=3),
        delta_rule_chunkwise_backward,
        (*QKV, "beta"),
    ),
}


def _arrays(rng):
    return dict(zip(("q", "k", "v", "beta"), _inputs(rng), strict=True))


@pytest.mark.parametrize("form", FORMS)
def test_backward_matches_finite_differences_including_the_initial_state(rng, form):
    fwd, bwd, names = FORMS[form]
    arrays = _arrays(rng)
    inputs = {n: arrays[n] for n in names}
    inputs["initial_state"] = rng.standard_normal((B, H, D_K, D_V))
    fd_check(
        lambda p: fwd(*p.values()),
        lambda dout, c: dict(zip(inputs, bwd(dout, c), strict=True)),
        inputs,
        rng,
    )


@pytest.mark.parametrize("form", FORMS)
def test_the_final_state_gradient_flows_back_through_the_segment(rng, form):
    fwd, bwd, names = FORMS[form]
    arrays = _arrays(rng)
    inputs = {n: arrays[n] for n in names}
    inputs["initial_state"] = rng.standard_normal((B, H, D_K, D_V))
    dF = rng.standard_normal((B, H, D_K, D_V))

    def forward(p):  # out and final state side by side: one flat output
        out, cache = fwd(*p.values())
        flat = np.concatenate([out.ravel(), cache.final_state.ravel()])
        return flat, cache

    def backward(dflat, cache):
        dout = dflat[: -dF.size].reshape(arrays["v"].shape)
        grads = bwd(
            dout, cache._replace(dfinal_state=dflat[-dF.size :].reshape(dF.shape))
        )
        return dict(zip(inputs, grads, strict=True))

    fd_check(forward, backward, inputs, rng)


@pytest.mark.parametrize("form", FORMS)
def test_the_zero_state_gradient_is_returned_when_no_state_is_given(rng, form):
    fwd, bwd, names = FORMS[form]
    arrays = _arrays(rng)
    args = [arrays[n] for n in names]
    out, cache = fwd(*args)
    dout = rng.standard_normal(out.shape)
    *_, dS0 = bwd(dout, cache)
    _, cache_zero = fwd(*args, np.zeros((B, H, D_K, D_V)))
    *_, dS0_explicit = bwd(dout, cache_zero)
    assert dS0.shape == (B, H, D_K, D_V)
    np.testing.assert_allclose(dS0, dS0_explicit, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("split", [0, 3, N])
def test_two_segments_with_the_carried_state_equal_one_run(rng, form, split):
    fwd, bwd, names = FORMS[form]
    arrays = _arrays(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    whole = [arrays[n] for n in names]
    first = [a[:, :, :split] for a in whole]  # axis 2 is N in (B, H, N[, d])
    second = [a[:, :, split:] for a in whole]
    out, cache = fwd(*whole, S0)
    out1, cache1 = fwd(*first, S0)
    out2, cache2 = fwd(*second, cache1.final_state)
    np.testing.assert_allclose(np.concatenate([out1, out2], axis=-2), out, atol=1e-12)
    np.testing.assert_allclose(cache2.final_state, cache.final_state, atol=1e-12)
    # backward through both segments: segment 2's dinitial_state is segment 1's dfinal
    dout = rng.standard_normal(out.shape)
    *g2, dS1 = bwd(dout[..., split:, :], cache2)
    *g1, dS0 = bwd(dout[..., :split, :], cache1._replace(dfinal_state=dS1))
    *g, dS0_whole = bwd(dout, cache)
    for a, b, c in zip(g1, g2, g, strict=True):
        np.testing.assert_allclose(np.concatenate([a, b], axis=2), c, atol=1e-12)
    np.testing.assert_allclose(dS0, dS0_whole, atol=1e-12)


def test_sum_rule_with_an_initial_state_adds_its_read(rng):
    q, k, v, _ = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    out, cache = sum_rule_forward(q, k, v, S0)
    dense = q @ S0 + np.tril(q @ np.swapaxes(k, -1, -2)) @ v
    np.testing.assert_allclose(out, dense, atol=1e-12)
    final = S0 + np.swapaxes(k, -1, -2) @ v
    np.testing.assert_allclose(cache.final_state, final, atol=1e-12)


def test_the_initial_state_is_not_modified(rng):
    q, k, v, beta = _inputs(rng)
    S0 = rng.standard_normal((B, H, D_K, D_V))
    before = S0.copy()
    for fwd, bwd, names in FORMS.values():
        args = (q, k, v, beta)[: len(names)]
        out, cache = fwd(*args, S0)
        bwd(rng.standard_normal(out.shape), cache._replace(dfinal_state=S0))
    np.testing.assert_array_equal(S0, before)


def test_mismatched_shapes_are_named(rng):
    q, k, v, beta = _inputs(rng)
    with pytest.raises(ValueError, match="beta"):
        delta_rule_forward(q, k, v, beta[..., :-1])
    with pytest.raises(ValueError, match="initial_state"):
        delta_rule_forward(q, k, v, beta, np.zeros((D_K, D_V)))
    with pytest.raises(ValueError, match="chunk_size"):
        delta_rule_chunkwise_forward(q, k, v, beta, chunk_size=0)

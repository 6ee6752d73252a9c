"""Linear attention: the parallel, recurrent and chunkwise forms agree, forward and
backward; feature maps and every form pass finite differences."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np.efficient import kernel_products as kp
from attention_np.efficient.feature_maps import FEATURE_MAPS
from attention_np.efficient.linear_attention import (
    LinearAttentionCache,
    linear_attention_backward,
    linear_attention_forward,
    linear_attention_weights,
)
from attention_np.efficient.linear_streaming import (
    CausalStreamingCache,
    causal_streaming_backward,
    causal_streaming_forward,
    streaming_backward,
    streaming_forward,
)
from attention_np.efficient.performer import favor_omega

B, H, N, d, d_v = 2, 3, 9, 4, 5


def qkv(rng, n=N, m=N):
    return (
        rng.standard_normal((B, H, n, d)),
        rng.standard_normal((B, H, m, d)),
        rng.standard_normal((B, H, m, d_v)),
    )


def run(q, k, v, **options):
    out, cache = linear_attention_forward(q, k, v, **options)
    return out, cache


@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "dpfp"])
def test_noncausal_equals_the_dense_formula(rng, feature_map):
    q, k, v = qkv(rng, n=7, m=N)
    out, _ = run(q, k, v, feature_map=feature_map, causal=False, eps=1e-6)
    fwd = FEATURE_MAPS[feature_map][0]
    w = fwd(q)[0] @ np.swapaxes(fwd(k)[0], -1, -2)  # (B, H, N, M) kernel matrix
    expected = (w @ v) / (w.sum(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("chunk_size", [1, 2, 4, 9, 20])
def test_causal_forms_equal_the_masked_parallel_form(rng, form, chunk_size):
    q, k, v = qkv(rng)
    ref, ref_cache = run(q, k, v, causal=True, form="parallel")
    out, cache = run(q, k, v, causal=True, form=form, chunk_size=chunk_size)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = linear_attention_backward(dout, cache)
    ref_grads = linear_attention_backward(dout, ref_cache)
    for g, g_ref in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


def test_recurrent_form_is_an_rnn_with_a_constant_size_state(rng):
    # S_i = S_{i-1} + phi(k_i) v_i^T, z_i = z_{i-1} + phi(k_i): one step at a time
    q, k, v = (a[0, 0] for a in qkv(rng))
    phi = FEATURE_MAPS["elu+1"][0]
    state, z, rows = np.zeros((d, d_v)), np.zeros(d), []
    for i in range(N):
        state += np.outer(phi(k[i])[0], v[i])
        z += phi(k[i])[0]
        rows.append(phi(q[i])[0] @ state / (phi(q[i])[0] @ z + 1e-6))
    out, _ = run(q, k, v, causal=True, form="recurrent")
    np.testing.assert_allclose(out, np.array(rows), atol=1e-12)


def test_product_backward_formulas_match_dense_masked(rng):
    a, b = rng.random((2, N, 3)), rng.random((2, N, 3))
    c, dy = rng.standard_normal((2, N, 4)), rng.standard_normal((2, N, 4))
    _, cache = kp.parallel_causal_forward(a, b, c)
    ref = kp.parallel_causal_backward(dy, cache)
    for forward, backward in (
        (kp.recurrent_forward, kp.recurrent_backward),
        (lambda *x: kp.chunkwise_forward(*x, chunk_size=4), kp.chunkwise_backward),
    ):
        grads = backward(dy, forward(a, b, c)[1])
        for g, g_ref in zip(grads, ref, strict=True):
            np.testing.assert_allclose(g, g_ref, atol=1e-12)


@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "dpfp"])
def test_feature_map_backward_matches_finite_differences(rng, feature_map):
    forward, backward = FEATURE_MAPS[feature_map]
    x = rng.standard_normal((2, 5, 3))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink of relu
    fd_check(
        lambda p: forward(p["x"]),
        lambda dout, cache: {"x": backward(dout, cache)},
        {"x": x},
        rng,
    )


def test_features_are_non_negative(rng):
    x = 3 * rng.standard_normal((50, 4))
    for name, (forward, _) in FEATURE_MAPS.items():
        assert np.all(forward(x)[0] >= 0), name
    assert np.all(FEATURE_MAPS["elu+1"][0](x)[0] > 0)


@pytest.mark.parametrize(
    "causal, form",
    [(False, "parallel"), (True, "parallel"), (True, "recurrent"), (True, "chunkwise")],
)
@pytest.mark.parametrize("feature_map", ["elu+1", "favor+"])
def test_backward_matches_finite_differences(rng, causal, form, feature_map):
    q, k, v = (a[:, :2, :5] for a in qkv(rng))
    omega = favor_omega(d, 6, rng=rng) if feature_map == "favor+" else None

    def forward(p):
        return linear_attention_forward(
            p["q"],
            p["k"],
            p["v"],
            feature_map=feature_map,
            causal=causal,
            form=form,
            chunk_size=2,
            omega=omega,
        )

    def backward(dout, cache):
        return dict(zip("qkv", linear_attention_backward(dout, cache), strict=True))

    fd_check(forward, backward, {"q": q, "k": k, "v": v}, rng)


def test_causality_through_the_backward(rng):
    q, k, v = qkv(rng)
    out, cache = run(q, k, v, causal=True, form="chunkwise", chunk_size=4)
    dout = np.zeros_like(out)
    dout[..., 5, :] = rng.standard_normal(dout[..., 5, :].shape)  # one position only
    dq, dk, dv = linear_attention_backward(dout, cache)
    assert np.all(dq[..., 6:, :] == 0) and np.all(dq[..., :5, :] == 0)
    assert np.all(dk[..., 6:, :] == 0) and np.all(dv[..., 6:, :] == 0)
    assert np.any(dk[..., :6, :] != 0)


@pytest.mark.parametrize("causal", [False, True])
def test_implied_weights_reproduce_the_output(rng, causal):
    q, k, v = qkv(rng)
    out, _ = run(q, k, v, causal=causal)
    weights = linear_attention_weights(q, k, causal=causal)
    np.testing.assert_allclose(weights @ v, out, atol=1e-12)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    if causal:
        assert np.all(np.triu(weights, 1) == 0)


def test_shared_keys_across_heads_get_summed_gradients(rng):
    q, k, v = qkv(rng)
    k1, v1 = k[:, :1], v[:, :1]
    out, cache = run(q, k1, v1, causal=True, form="chunkwise", chunk_size=3)
    ref, ref_cache = run(q, np.repeat(k1, H, 1), np.repeat(v1, H, 1), causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = linear_attention_backward(dout, cache)
    _, dk_ref, dv_ref = linear_attention_backward(dout, ref_cache)
    assert dk.shape == k1.shape
    np.testing.assert_allclose(dk, dk_ref.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(dv, dv_ref.sum(1, keepdims=True), atol=1e-12)


def test_float32_stays_float32(rng):
    q, k, v = (a.astype(np.float32) for a in qkv(rng))
    out, cache = run(q, k, v, causal=True, form="chunkwise")
    grads = linear_attention_backward(np.ones_like(out), cache)
    assert {a.dtype for a in (out, *grads)} == {np.dtype(np.float32)}


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"feature_map": "tanh", "causal": False}, ValueError, "feature_map"),
        ({"form": "recurrent", "causal": False}, ValueError, "causal"),
        ({"form": "fast", "causal": True}, ValueError, "form"),
        ({"feature_map": "favor+", "causal": False}, ValueError, "omega"),
        ({"chunk_size": 0, "causal": True}, ValueError, "chunk_size"),
    ],
)
def test_bad_options_are_named(rng, options, error, match):
    q, k, v = qkv(rng)
    with pytest.raises(error, match=match):
        linear_attention_forward(q, k, v, **options)


def dense_reference(q, k, v, feature_map, offset):
    """out = A v with A = tril(phi_q phi_k^T, offset) normalised: the plain formula."""
    phi = FEATURE_MAPS[feature_map][0]
    w = phi(q)[0] @ np.swapaxes(phi(k)[0], -1, -2)  # (B, H, N, M)
    w = w if offset is None else np.tril(w, k=offset)
    return (w @ v) / (w.sum(-1, keepdims=True) + 1e-6)


@pytest.mark.parametrize("form", ["parallel", "recurrent", "chunkwise"])
@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
@pytest.mark.parametrize("n, m", [(4, 7), (7, 4)])
def test_causal_with_n_not_m_follows_the_alignment(rng, form, align, n, m):
    q, k, v = qkv(rng, n=n, m=m)
    offset = 0 if align == "top_left" else m - n  # key j visible when j <= i + offset
    out, cache = run(q, k, v, causal=True, align=align, form=form, chunk_size=3)
    np.testing.assert_allclose(
        out, dense_reference(q, k, v, "elu+1", offset), atol=1e-12
    )


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_causal_forms_with_n_not_m_have_the_parallel_gradients(rng, form, align):
    q, k, v = qkv(rng, n=5, m=8)
    ref, ref_cache = run(q, k, v, causal=True, align=align, form="parallel")
    out, cache = run(q, k, v, causal=True, align=align, form=form, chunk_size=3)
    dout = rng.standard_normal(out.shape)
    grads = linear_attention_backward(dout, cache)
    for g, g_ref in zip(grads, linear_attention_backward(dout, ref_cache), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


@pytest.mark.parametrize("form", ["parallel", "recurrent", "chunkwise"])
def test_causal_n_not_m_backward_matches_finite_differences(rng, form):
    q, k, v = (a[:1, :2] for a in qkv(rng, n=3, m=5))

    def forward(p):
        return linear_attention_forward(
            p["q"],
            p["k"],
            p["v"],
            causal=True,
            align="bottom_right",
            form=form,
            chunk_size=2,
        )

    def backward(dout, cache):
        return dict(zip("qkv", linear_attention_backward(dout, cache), strict=True))

    fd_check(forward, backward, {"q": q, "k": k, "v": v}, rng)


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_implied_weights_follow_the_alignment(rng, align):
    q, k, v = qkv(rng, n=4, m=7)
    out, _ = run(q, k, v, causal=True, align=align)
    weights = linear_attention_weights(q, k, causal=True, align=align)
    np.testing.assert_allclose(weights @ v, out, atol=1e-12)
    offset = 0 if align == "top_left" else 3
    assert np.all(np.triu(weights, offset + 1) == 0)


def test_bottom_right_last_query_sees_every_key(rng):
    q, k, v = qkv(rng, n=1, m=6)  # a KV-cache step: one new query, six keys
    out, _ = run(q, k, v, causal=True, align="bottom_right", form="recurrent")
    full, _ = run(q, k, v, causal=False)
    np.testing.assert_allclose(out, full, atol=1e-12)


def test_recurrent_form_without_causal_is_an_error(rng):
    q, k, v = qkv(rng)
    with pytest.raises(ValueError, match="causal=True"):
        linear_attention_forward(q, k, v, causal=False, form="recurrent")


def test_causal_is_required(rng):
    q, k, v = qkv(rng)
    with pytest.raises(TypeError, match="causal"):
        linear_attention_forward(q, k, v)


@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "dpfp"])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_streaming_non_causal_form_equals_the_unchunked_product(feature_map, chunk):
    # linear_attention_forward streams non-causal attention through row chunks;
    # any chunk size (dividing N or not) gives the one-product result a (b^T c)
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 3, n, 4)) for n in (7, 5, 5))
    phi = FEATURE_MAPS[feature_map]
    shapes = (q.shape, k.shape, v.shape)
    out, cache = streaming_forward(q, k, v, phi, eps=1e-6, shapes=shapes, chunk=chunk)
    v1 = np.concatenate([v, np.ones(v.shape[:-1] + (1,))], -1)
    y, product_cache = kp.global_forward(phi[0](q)[0], phi[0](k)[0], v1)
    np.testing.assert_allclose(out, y[..., :-1] / (y[..., -1:] + 1e-6), atol=1e-12)
    dout = rng.standard_normal(out.shape)
    fd_check(
        lambda p: streaming_forward(
            p["q"], p["k"], p["v"], phi, eps=1e-6, shapes=shapes, chunk=chunk
        ),
        lambda d, c: dict(zip("qkv", streaming_backward(d, c), strict=True)),
        {"q": q, "k": k, "v": v},
        rng,
    )
    grads = streaming_backward(dout, cache)
    assert [g.shape for g in grads] == [a.shape for a in (q, k, v)]


@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "dpfp"])
@pytest.mark.parametrize(
    ("chunk", "chunk_size", "n_chunks"),
    [(1, 1, 11), (4, 2, 3), (5, 2, 3), (3, 4, 3), (20, 4, 1)],
)
def test_causal_streaming_equals_the_masked_parallel_form(
    feature_map, chunk, chunk_size, n_chunks
):
    # the causal chunkwise form streams chunks of rows carrying the state between
    # them; chunks are rounded to a multiple of chunk_size (5 -> 4, 3 -> 4) and
    # need not divide N = 11, and the result is the masked O(N^2) product tril(a b^T) c
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 3, 11, n)) for n in (4, 4, 5))
    phi = FEATURE_MAPS[feature_map]
    shapes = (q.shape, k.shape, v.shape)
    options = dict(eps=1e-6, shapes=shapes, chunk_size=chunk_size, chunk=chunk)
    out, cache = causal_streaming_forward(q, k, v, phi, **options)
    assert len(cache.states[0]) == n_chunks
    ref, ref_cache = linear_attention_forward(
        q, k, v, feature_map=feature_map, causal=True, form="parallel"
    )
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for g, g_ref in zip(
        causal_streaming_backward(dout, cache),
        linear_attention_backward(dout, ref_cache),
        strict=True,
    ):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)
    fd_check(
        lambda p: causal_streaming_forward(p["q"], p["k"], p["v"], phi, **options),
        lambda d, c: dict(zip("qkv", causal_streaming_backward(d, c), strict=True)),
        {"q": q, "k": k, "v": v},
        rng,
    )


def test_causal_chunkwise_streams_for_row_wise_feature_maps_only(rng):
    q, k, v = qkv(rng)
    _, cache = run(q, k, v, causal=True, form="chunkwise")
    assert isinstance(cache, CausalStreamingCache)
    omega = favor_omega(d, 8, rng=rng)
    _, cache = run(
        q, k, v, causal=True, form="chunkwise", feature_map="favor+", omega=omega
    )
    assert isinstance(cache, LinearAttentionCache)


def test_causal_streaming_of_an_empty_sequence():
    q = k = v = np.ones((2, 0, 4))
    out, cache = linear_attention_forward(q, k, v, causal=True, form="chunkwise")
    assert out.shape == (2, 0, 4)
    assert [g.shape for g in linear_attention_backward(out, cache)] == [(2, 0, 4)] * 3


def test_streaming_with_no_keys_gives_zeros():
    q, k, v = np.ones((1, 3, 4)), np.ones((1, 0, 4)), np.ones((1, 0, 2))
    out, _ = linear_attention_forward(q, k, v, causal=False)
    assert out.shape == (1, 3, 2) and np.all(out == 0.0)

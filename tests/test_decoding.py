import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_backward, attention_forward, causal_mask
from attention_np.decoding import (
    KVCache,
    cached_attention,
    gqa_attention_backward,
    gqa_attention_forward,
    kv_cache_bytes,
    repeat_kv,
)
from attention_np.naive import attention_naive

B, H, N, M, d, d_v = 2, 6, 4, 5, 3, 7


def gqa_inputs(rng, G, n=N, m=M):
    q = rng.standard_normal((B, H, n, d))
    k = rng.standard_normal((B, G, m, d))
    v = rng.standard_normal((B, G, m, d_v))
    return q, k, v


def test_repeat_kv_gives_head_h_the_group_h_div_h_over_g(rng):
    k = rng.standard_normal((B, 3, M, d))
    rep = repeat_kv(k, H)  # H / G = 2 heads per group
    assert rep.shape == (B, H, M, d)
    for h in range(H):
        np.testing.assert_array_equal(rep[:, h], k[:, h // 2])


@pytest.mark.parametrize("G", [1, 2, 3, 6])
def test_gqa_equals_mha_with_repeated_keys_and_values(rng, G):
    q, k, v = gqa_inputs(rng, G)
    mask = causal_mask(N, M, align="bottom_right")
    out, cache = gqa_attention_forward(q, k, v, mask, causal=False)
    ref, ref_cache = attention_forward(
        q, repeat_kv(k, H), repeat_kv(v, H), mask, causal=False
    )
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, ref_cache.weights, atol=1e-12)


@pytest.mark.parametrize("G", [1, 2, 3])
def test_shared_key_gradient_is_the_sum_over_its_heads(rng, G):
    q, k, v = gqa_inputs(rng, G)
    dout = rng.standard_normal((B, H, N, d_v))
    out, cache = gqa_attention_forward(q, k, v, causal=False)
    dq, dk, dv = gqa_attention_backward(dout, cache)
    _, ref_cache = attention_forward(q, repeat_kv(k, H), repeat_kv(v, H), causal=False)
    dq_ref, dk_rep, dv_rep = attention_backward(dout, ref_cache)
    per = H // G
    np.testing.assert_allclose(dq, dq_ref, atol=1e-12)
    np.testing.assert_allclose(dk, dk_rep.reshape(B, G, per, M, d).sum(2), atol=1e-12)
    np.testing.assert_allclose(dv, dv_rep.reshape(B, G, per, M, d_v).sum(2), atol=1e-12)


@pytest.mark.parametrize("G", [1, 2])
def test_gqa_backward_matches_finite_differences(rng, G):
    q, k, v = gqa_inputs(rng, G)
    mask = rng.random((B, H, N, M)) > 0.3
    mask[0, 1, 2] = False  # a fully masked row
    fd_check(
        lambda p: gqa_attention_forward(p["q"], p["k"], p["v"], mask, causal=False),
        lambda dout, cache: dict(
            zip("qkv", gqa_attention_backward(dout, cache), strict=True)
        ),
        {"q": q, "k": k, "v": v},
        rng,
    )


def test_gqa_per_head_mask_goes_to_the_right_head(rng):
    q, k, v = gqa_inputs(rng, 2)
    mask = np.ones((1, H, N, M), bool)
    mask[0, 4, :, 0] = False  # only head 4 may not see key 0
    _, cache = gqa_attention_forward(q, k, v, mask, causal=False)
    assert np.all(cache.weights[:, 4, :, 0] == 0)
    assert np.all(cache.weights[:, [0, 1, 2, 3, 5], :, 0] > 0)


def test_gqa_refuses_group_count_not_dividing_heads(rng):
    q, k, v = gqa_inputs(rng, 4)
    with pytest.raises(ValueError, match="G heads"):
        gqa_attention_forward(q, k, v, causal=False)


def full_causal(q, k, v):
    return gqa_attention_forward(q, k, v, causal=True)[0]


@pytest.mark.parametrize("G", [H, 2, 1])
def test_one_token_at_a_time_decoding_equals_full_causal_attention(rng, G):
    T = 7
    q, k, v = gqa_inputs(rng, G, T, T)
    cache = KVCache(B, G, d, T, d_v=d_v)
    steps = []
    for t in range(T):
        sl = slice(t, t + 1)
        steps.append(
            cached_attention(q[:, :, sl], k[:, :, sl], v[:, :, sl], cache, causal=True)
        )
    full = full_causal(q, k, v)
    np.testing.assert_allclose(np.concatenate(steps, axis=2), full, atol=1e-14)


def test_prefill_then_single_steps_equals_full_causal_attention(rng):
    T, P = 8, 5  # a 5-token prompt in one call, then 3 decode steps
    q, k, v = gqa_inputs(rng, 2, T, T)
    cache = KVCache(B, 2, d, T, d_v=d_v)
    outs = [cached_attention(q[:, :, :P], k[:, :, :P], v[:, :, :P], cache, causal=True)]
    for t in range(P, T):
        sl = slice(t, t + 1)
        outs.append(
            cached_attention(q[:, :, sl], k[:, :, sl], v[:, :, sl], cache, causal=True)
        )
    full = full_causal(q, k, v)
    np.testing.assert_allclose(np.concatenate(outs, axis=2), full, atol=1e-14)
    assert cache.length == T


def test_decode_step_matches_the_naive_loop(rng):
    q, k, v = gqa_inputs(rng, H, 1, M)
    cache = KVCache(B, H, d, M, d_v=d_v)
    cache.append(k[:, :, :-1], v[:, :, :-1])
    out = cached_attention(q, k[:, :, -1:], v[:, :, -1:], cache, causal=True)
    np.testing.assert_allclose(
        out, attention_naive(q, k, v, causal=False)[0], atol=1e-12
    )


def test_cache_grows_by_the_number_of_new_tokens(rng):
    cache = KVCache(1, 2, d, 6)
    lengths = []
    for n in (3, 1, 2):
        k_all, _ = cache.append(*rng.standard_normal((2, 1, 2, n, d)))
        lengths.append(k_all.shape[2])
    assert lengths == [3, 4, 6] and cache.length == 6
    assert cache.nbytes == 2 * 1 * 2 * 6 * d * 8


def test_cache_overflow_and_wrong_shapes_are_reported(rng):
    cache = KVCache(1, 2, d, 2)
    with pytest.raises(ValueError, match="cache full"):
        cache.append(*rng.standard_normal((2, 1, 2, 3, d)))
    with pytest.raises(ValueError, match="k_new"):
        cache.append(
            rng.standard_normal((1, 3, 1, d)), rng.standard_normal((1, 3, 1, d))
        )


def test_kv_cache_bytes_formula():
    # 2 (K and V) * layers * G * d * T * batch * bytes
    assert kv_cache_bytes(32, 32, 128, 4096, 1) == 2 * 32 * 32 * 128 * 4096 * 2
    mha, gqa, mqa = (kv_cache_bytes(32, g, 128, 4096) for g in (32, 8, 1))
    assert mha == 4 * gqa == 32 * mqa


def test_kv_cache_bytes_matches_the_cache_objects():
    caches = [KVCache(3, 2, 4, 10) for _ in range(5)]
    expected = kv_cache_bytes(5, 2, 4, 10, 3, bytes_per_elem=8)
    assert sum(c.nbytes for c in caches) == expected


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_gqa_causal_flag_equals_the_explicit_causal_mask(rng, align):
    q, k, v = gqa_inputs(rng, 2)
    out, cache = gqa_attention_forward(q, k, v, causal=True, align=align)
    mask = causal_mask(N, M, align=align)
    ref, ref_cache = gqa_attention_forward(q, k, v, mask, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)


def test_non_causal_cached_attention_sees_every_cached_and_new_key(rng):
    q, k, v = gqa_inputs(rng, 2, 3, M)
    cache = KVCache(B, 2, d, M, d_v=d_v)
    cache.append(k[:, :, :2], v[:, :, :2])
    out = cached_attention(q, k[:, :, 2:], v[:, :, 2:], cache, causal=False)
    ref, _ = gqa_attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(out, ref, atol=1e-14)


def test_cached_attention_mask_is_anded_with_the_causal_rule(rng):
    T = 6
    q, k, v = gqa_inputs(rng, 2, T, T)
    pad = np.ones((B, 1, 1, T), bool)
    pad[1, ..., :2] = False  # sequence 1: its first two tokens are padding
    cache = KVCache(B, 2, d, T, d_v=d_v)
    outs = []
    for t in range(T):
        sl = slice(t, t + 1)
        step_mask = pad[..., : t + 1]  # (B, 1, 1, t + 1): the keys cached so far
        outs.append(
            cached_attention(
                q[:, :, sl], k[:, :, sl], v[:, :, sl], cache, step_mask, causal=True
            )
        )
    ref, _ = gqa_attention_forward(q, k, v, pad, causal=True)
    np.testing.assert_allclose(np.concatenate(outs, axis=2), ref, atol=1e-14)


def filled_cache(rng):
    cache = KVCache(B, 2, d, 4, d_v=d_v)
    cache.append(rng.standard_normal((B, 2, 2, d)), rng.standard_normal((B, 2, 2, d_v)))
    return cache


FAILED_CALLS = {
    "2 new queries, 1 new key": (
        lambda q, k, v: (q, k[:, :, :1], v[:, :, :1]),
        {"extra": 1},
    ),
    "float32 keys for a float64 cache": (
        lambda q, k, v: (q, k.astype(np.float32), v.astype(np.float32)),
        {},
    ),
    "float32 queries": (lambda q, k, v: (q.astype(np.float32), k, v), {}),
    "cache full": (lambda q, k, v: (q, k, v), {"extra": 2}),
    "mask of the wrong shape": (
        lambda q, k, v: (q, k, v),
        {"mask": np.ones((B, H, 1, 2), bool)},
    ),
    "float mask": (lambda q, k, v: (q, k, v), {"mask": np.ones((1, 3))}),
    "causal='no'": (lambda q, k, v: (q, k, v), {"causal": "no"}),
    "scale NaN": (lambda q, k, v: (q, k, v), {"scale": np.nan}),
    "5 query heads over 2 groups": (lambda q, k, v: (q[:, :5], k, v), {}),
    "values of another width": (lambda q, k, v: (q, k, v[..., :2]), {}),
}


@pytest.mark.parametrize("name", FAILED_CALLS)
def test_a_failed_cached_attention_call_leaves_the_cache_unchanged(rng, name):
    cache = filled_cache(rng)
    before = cache.k.copy(), cache.v.copy(), cache.length
    make, options = FAILED_CALLS[name]
    options = dict(options)
    n = 1 + options.pop("extra", 0)
    q, k, v = gqa_inputs(rng, 2, n, n)
    kw = {"causal": True, **options}
    with pytest.raises((ValueError, TypeError)):
        cached_attention(*make(q, k, v), cache, **kw)
    assert cache.length == before[2]
    np.testing.assert_array_equal(cache.k, before[0])
    np.testing.assert_array_equal(cache.v, before[1])


@pytest.mark.parametrize("dtype", [int, np.int32, bool, np.complex128])
def test_a_kv_cache_of_a_non_float_dtype_is_refused(dtype):
    with pytest.raises(TypeError, match="dtype"):
        KVCache(1, 2, d, 4, dtype=dtype)


def test_kv_cache_keeps_its_float_dtype(rng):
    cache = KVCache(1, 2, d, 4, dtype=np.float32)
    k_all, v_all = cache.append(*rng.standard_normal((2, 1, 2, 1, d), np.float32))
    assert k_all.dtype == v_all.dtype == np.float32


def test_repeat_kv_refuses_zero_heads(rng):
    with pytest.raises(ValueError, match="n_heads"):
        repeat_kv(rng.standard_normal((B, 2, M, d)), 0)

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
from attention_np.decoding import KVCache
from attention_np.multihead import BIAS_KEYS
from attention_np.naive import mha_naive
from attention_np.positional import rope_forward
from attention_np.transformer import self_attention_forward

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


@pytest.mark.parametrize("how", ["unmasked", "causal mask", "causal=True"])
def test_self_attention_matches_naive_loop_over_heads(rng, how):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    mask = causal_mask(N) if how == "causal mask" else None
    causal = how == "causal=True"
    out, cache = mha_forward(x, x, params, mask, n_heads=H, causal=causal)
    out_ref, w_ref = mha_naive(x, x, params, mask, n_heads=H, causal=causal)
    np.testing.assert_allclose(out, out_ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)
    assert cache.weights.shape == (B, H, N, N)


def test_cross_attention_matches_naive(rng):
    params = noisy_params(rng, d_kv=D_KV)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D_KV))
    mask = padding_mask([M, 2], M)
    out, cache = mha_forward(x_q, x_kv, params, mask, n_heads=H, causal=False)
    out_ref, w_ref = mha_naive(x_q, x_kv, params, mask, n_heads=H, causal=False)
    np.testing.assert_allclose(out, out_ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)
    assert out.shape == (B, N, D) and cache.weights.shape == (B, H, N, M)


def test_one_head_equals_single_head_attention(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    out, _ = mha_forward(x, x, params, n_heads=1, causal=False)
    q, k, v = (x @ params[f"W_{c}"] + params[f"b_{c}"] for c in "qkv")
    o, _ = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(out, o @ params["W_o"] + params["b_o"], atol=1e-12)


def test_self_attention_backward_matches_finite_differences(rng):
    params = noisy_params(rng)
    inputs = {"x": rng.standard_normal((B, N, D)), **params}

    def forward(p):
        weights = {k: p[k] for k in params}
        return mha_forward(p["x"], p["x"], weights, n_heads=H, causal=True)

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
        weights = {k: p[k] for k in params}
        return mha_forward(p["x_q"], p["x_kv"], weights, mask, n_heads=H, causal=False)

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
    out, cache = mha_forward(x, x, params, n_heads=H, causal=True)
    _, _, grads = mha_backward(rng.standard_normal(out.shape), cache)
    np.testing.assert_allclose(grads["b_k"], 0.0, atol=1e-12)
    assert np.abs(grads["b_q"]).max() > 1e-3  # the others are not zero


def test_causality_of_mha_input_gradient(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, 6, D))
    out, cache = mha_forward(x, x, params, n_heads=H, causal=True)
    for i in range(6):
        dout = np.zeros_like(out)
        dout[:, i] = rng.standard_normal((B, D))
        dx_q, dx_kv, _ = mha_backward(dout, cache)
        assert np.all((dx_q + dx_kv)[:, i + 1 :] == 0.0)


# --- causal=, align= -----------------------------------------------------------------


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_cross_attention_causal_flag_equals_the_explicit_mask(rng, align):
    params = noisy_params(rng, d_kv=D_KV)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D_KV))
    pad = padding_mask([M, 3], M)
    out, cache = mha_forward(
        x_q, x_kv, params, pad, n_heads=H, causal=True, align=align
    )
    mask = pad & causal_mask(N, M, align=align)
    ref, ref_cache = mha_forward(x_q, x_kv, params, mask, n_heads=H, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)
    naive, _ = mha_naive(x_q, x_kv, params, pad, n_heads=H, causal=True, align=align)
    np.testing.assert_allclose(out, naive, atol=1e-12)


def test_self_attention_forward_is_mha_forward_of_x_with_itself(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    out, cache = self_attention_forward(x, params, n_heads=H, causal=True)
    ref, ref_cache = mha_forward(x, x, params, n_heads=H, causal=True)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)


# --- grouped-query attention: n_kv_heads ---------------------------------------------

HG, DG = 4, 16  # query heads and width for the GQA and RoPE tests: d = 4


def repeated_kv_params(params, G):
    """MHA params whose key/value heads are the G groups repeated H/G times each."""
    d = DG // HG
    out = dict(params)
    for name in ("W_k", "W_v", "b_k", "b_v"):
        if name in params:
            w = params[name]  # (..., G d)
            heads = w.reshape(w.shape[:-1] + (G, d))  # (..., G, d)
            out[name] = np.repeat(heads, HG // G, axis=-2).reshape(w.shape[:-1] + (DG,))
    return out


def gqa_params(rng, G, bias=True):
    params = init_mha_params(DG, HG, rng=rng, n_kv_heads=G, bias=bias)
    return {k: w + 0.1 * rng.standard_normal(w.shape) for k, w in params.items()}


def test_init_with_n_kv_heads_gives_narrow_key_value_projections(rng):
    p = init_mha_params(DG, HG, rng=rng, n_kv_heads=2, d_kv=D_KV)
    shapes = {k: v.shape for k, v in p.items()}
    assert shapes["W_k"] == shapes["W_v"] == (D_KV, 2 * (DG // HG))
    assert shapes["b_k"] == shapes["b_v"] == (2 * (DG // HG),)
    assert shapes["W_q"] == shapes["W_o"] == (DG, DG)


@pytest.mark.parametrize("G", [1, HG // 2])
def test_gqa_equals_mha_with_repeated_key_value_heads(rng, G):
    params = gqa_params(rng, G)
    x = rng.standard_normal((B, N, DG))
    kw = {"n_heads": HG, "causal": True}
    out, cache = mha_forward(x, x, params, n_kv_heads=G, **kw)
    ref, ref_cache = mha_forward(x, x, repeated_kv_params(params, G), **kw)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, ref_cache.weights, atol=1e-12)


@pytest.mark.parametrize("G", [1, HG // 2])
def test_gqa_key_value_grads_are_the_sums_over_their_repeated_heads(rng, G):
    params = gqa_params(rng, G)
    x_q, x_kv = rng.standard_normal((B, N, DG)), rng.standard_normal((B, M, DG))
    kw = {"n_heads": HG, "causal": True, "align": "bottom_right"}
    out, cache = mha_forward(x_q, x_kv, params, n_kv_heads=G, **kw)
    _, ref_cache = mha_forward(x_q, x_kv, repeated_kv_params(params, G), **kw)
    dout = rng.standard_normal(out.shape)
    dx_q, dx_kv, grads = mha_backward(dout, cache)
    ref_q, ref_kv, ref = mha_backward(dout, ref_cache)
    np.testing.assert_allclose(dx_q, ref_q, atol=1e-12)
    np.testing.assert_allclose(dx_kv, ref_kv, atol=1e-12)
    for name in ("W_k", "W_v", "b_k", "b_v"):
        summed = ref[name].reshape(ref[name].shape[:-1] + (G, HG // G, DG // HG))
        summed = summed.sum(axis=-2).reshape(params[name].shape)
        np.testing.assert_allclose(grads[name], summed, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("G", [1, HG // 2, HG])
def test_params_without_biases_work_and_grads_have_exactly_their_keys(rng, G):
    params = gqa_params(rng, G, bias=False)
    assert not set(BIAS_KEYS) & set(params)
    x = rng.standard_normal((B, N, DG))
    out, cache = mha_forward(
        x, x, params, n_heads=HG, n_kv_heads=G, causal=True, positions=np.arange(N)
    )
    _, _, grads = mha_backward(rng.standard_normal(out.shape), cache)
    assert set(grads) == set(params)
    zero = {n: np.zeros(w.shape[1]) for n, w in params.items()}
    with_zero_bias = {**params, **{f"b_{n[2:]}": z for n, z in zero.items()}}
    ref, _ = mha_forward(
        x,
        x,
        with_zero_bias,
        n_heads=HG,
        n_kv_heads=G,
        causal=True,
        positions=np.arange(N),
    )
    np.testing.assert_allclose(out, ref, atol=1e-14)


# --- RoPE: positions -----------------------------------------------------------------


def test_positions_rotate_queries_and_keys_of_every_head(rng):
    params = gqa_params(rng, 2)
    x = rng.standard_normal((B, N, DG))
    pos = np.array([3, 0, 7, 2])
    out, _ = mha_forward(
        x, x, params, n_heads=HG, n_kv_heads=2, causal=True, positions=pos
    )
    d = DG // HG

    def heads(name, n):  # (B, n, N, d) projected and rotated
        t = (x @ params[f"W_{name}"] + params[f"b_{name}"]).reshape(B, N, n, d)
        return rope_forward(t.transpose(0, 2, 1, 3), pos)[0]

    q, k = heads("q", HG), np.repeat(heads("k", 2), 2, axis=1)
    v = np.repeat(
        (x @ params["W_v"] + params["b_v"]).reshape(B, N, 2, d).transpose(0, 2, 1, 3),
        2,
        axis=1,
    )
    o, _ = attention_forward(q, k, v, causal=True)
    ref = o.transpose(0, 2, 1, 3).reshape(B, N, DG) @ params["W_o"] + params["b_o"]
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_positions_of_shape_b_n_give_each_sequence_its_own_positions(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    pos = np.array([[0, 1, 2, 3], [5, 9, 6, 7]])  # (B, N)
    kw = {"n_heads": H, "causal": True}
    out, _ = mha_forward(x, x, params, positions=pos, **kw)
    for b in range(B):
        ref, _ = mha_forward(x[b : b + 1], x[b : b + 1], params, positions=pos[b], **kw)
        np.testing.assert_allclose(out[b : b + 1], ref, atol=1e-12)


def test_positions_of_shape_n_and_b_n_agree_when_rows_repeat(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, N, D))
    pos = np.array([4, 1, 2, 8])
    kw = {"n_heads": H, "causal": False}
    a, _ = mha_forward(x, x, params, positions=pos, **kw)
    b, _ = mha_forward(x, x, params, positions=np.stack([pos, pos]), **kw)
    np.testing.assert_array_equal(a, b)


# --- KV cache: token-by-token decoding ---------------------------------------------


@pytest.mark.parametrize("G", [1, HG // 2, HG])
@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_decoding_step_by_step_equals_the_full_causal_forward(rng, G, rope):
    T, P = 6, 2  # a 2-token prefill, then 4 single-token steps
    params = gqa_params(rng, G)
    x = rng.standard_normal((B, T, DG))
    kw = {"n_heads": HG, "n_kv_heads": G, "causal": True}
    pos = np.arange(T) if rope else None
    full, _ = mha_forward(x, x, params, positions=pos, **kw)
    cache = KVCache(B, G, DG // HG, T)
    outs = []
    for start, stop in [(0, P)] + [(t, t + 1) for t in range(P, T)]:
        xs = x[:, start:stop]
        step_pos = np.arange(start, stop) if rope else None
        out, c = mha_forward(
            xs,
            xs,
            params,
            positions=step_pos,
            kv_cache=cache,
            align="bottom_right",
            **kw,
        )
        assert c.weights.shape == (B, HG, stop - start, stop)
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-12)
    assert cache.length == T


def test_kv_cache_forward_has_no_backward(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, 1, D))
    cache = KVCache(B, H, D // H, 4)
    out, c = mha_forward(x, x, params, n_heads=H, causal=True, kv_cache=cache)
    with pytest.raises(ValueError, match="kv_cache"):
        mha_backward(np.ones_like(out), c)


def test_kv_cache_step_with_top_left_causal_is_refused_and_changes_nothing(rng):
    params = noisy_params(rng)
    x = rng.standard_normal((B, 2, D))
    cache = KVCache(B, H, D // H, 4)
    mha_forward(x, x, params, n_heads=H, causal=True, kv_cache=cache)  # prefill
    before = cache.k.copy(), cache.v.copy(), cache.length
    with pytest.raises(ValueError, match="align"):
        mha_forward(x[:, :1], x[:, :1], params, n_heads=H, causal=True, kv_cache=cache)
    assert cache.length == before[2]
    np.testing.assert_array_equal(cache.k, before[0])
    np.testing.assert_array_equal(cache.v, before[1])

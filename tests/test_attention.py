import warnings

import numpy as np
import pytest
from conftest import D_HEAD, D_V, B, H, M, N, fd_check

from attention_np import attention as attention_module
from attention_np import (
    attention_backward,
    attention_forward,
    attention_weights,
    causal_mask,
    combine_masks,
    padding_mask,
)
from attention_np.naive import attention_naive


def qkv(rng, n=N, m=M, k_heads=H, dtype=np.float64):
    q = rng.standard_normal((B, H, n, D_HEAD))
    k = rng.standard_normal((B, k_heads, m, D_HEAD))
    v = rng.standard_normal((B, k_heads, m, D_V))
    return (a.astype(dtype) for a in (q, k, v))


def grads_dict(dout, cache):
    return dict(zip("qkv", attention_backward(dout, cache), strict=False))


def fully_masked(rng):
    mask = rng.random((B, H, N, M)) > 0.4
    mask[1, 2, 3] = False
    mask[0, 0, 0] = False
    return mask


MASKS = {
    "none": lambda rng: None,
    "causal": lambda rng: causal_mask(N, M),
    "causal bottom-right": lambda rng: causal_mask(N, M, align="bottom_right"),
    "padding": lambda rng: padding_mask([3, 5], M),
    "padding+causal": lambda rng: combine_masks(
        padding_mask([2, 0], M), causal_mask(N, M)
    ),
    "random with fully masked rows": fully_masked,
}


@pytest.mark.parametrize("mask_name", MASKS)
def test_forward_matches_naive_oracle(rng, mask_name):
    q, k, v = qkv(rng)
    mask = MASKS[mask_name](rng)
    out, cache = attention_forward(q, k, v, mask, causal=False)
    out_ref, w_ref = attention_naive(q, k, v, mask, causal=False)
    np.testing.assert_allclose(out, out_ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)
    np.testing.assert_allclose(
        attention_weights(q, k, mask, causal=False), w_ref, atol=1e-12
    )


@pytest.mark.parametrize("mask_name", MASKS)
def test_backward_matches_finite_differences(rng, mask_name):
    q, k, v = qkv(rng)
    mask = MASKS[mask_name](rng)
    fd_check(
        lambda p: attention_forward(p["q"], p["k"], p["v"], mask, causal=False),
        grads_dict,
        {"q": q, "k": k, "v": v},
        rng,
    )


def test_default_scale_is_one_over_sqrt_d(rng):
    q, k, v = qkv(rng)
    out_default, _ = attention_forward(q, k, v, causal=False)
    out_explicit, _ = attention_forward(
        q, k, v, scale=1 / np.sqrt(D_HEAD), causal=False
    )
    np.testing.assert_allclose(out_default, out_explicit, atol=1e-14)
    out_scaled, _ = attention_forward(q, k, v, scale=0.3, causal=False)
    np.testing.assert_allclose(
        out_scaled, attention_naive(q, k, v, scale=0.3, causal=False)[0], atol=1e-12
    )


def test_weights_rows_sum_to_one_or_zero_and_masked_are_exactly_zero(rng):
    q, k, _ = qkv(rng)
    mask = fully_masked(rng)
    w = attention_weights(q, k, mask, causal=False)
    assert np.all(w[~np.broadcast_to(mask, w.shape)] == 0.0)
    sums = w.sum(-1)
    full = ~mask.any(-1)
    np.testing.assert_allclose(sums[~full], 1.0, atol=1e-14)
    assert np.all(sums[full] == 0.0)


def test_fully_masked_row_gives_zero_output_and_zero_grads_without_warnings(rng):
    q, k, v = qkv(rng)
    mask = np.ones((B, H, N, M), bool)
    mask[1, 2, 3] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        out, cache = attention_forward(q, k, v, mask, causal=False)
        dout = rng.standard_normal(out.shape)
        dq, dk, dv = attention_backward(dout, cache)
    assert np.all(out[1, 2, 3] == 0.0) and np.all(cache.weights[1, 2, 3] == 0.0)
    assert np.all(dq[1, 2, 3] == 0.0)
    for g in (out, dq, dk, dv):
        assert np.all(np.isfinite(g))
    # the masked row contributes nothing to dk, dv: same grads as zeroing its dout
    dout2 = dout.copy()
    dout2[1, 2, 3] = 0.0
    _, dk2, dv2 = attention_backward(dout2, cache)
    np.testing.assert_allclose(dk, dk2, atol=1e-14)
    np.testing.assert_allclose(dv, dv2, atol=1e-14)


def test_every_row_fully_masked(rng):
    q, k, v = qkv(rng)
    out, cache = attention_forward(q, k, v, np.zeros((N, M), bool), causal=False)
    assert np.all(out == 0.0)
    assert all(np.all(g == 0.0) for g in attention_backward(np.ones_like(out), cache))


def test_causality_through_the_backward_with_a_causal_mask(rng):
    q, k, v = qkv(rng, n=5, m=5)
    out, cache = attention_forward(q, k, v, causal_mask(5), causal=False)
    for i in range(5):
        dout = np.zeros_like(out)  # a random upstream gradient at position i only
        dout[..., i, :] = rng.standard_normal(dout[..., i, :].shape)
        dq, dk, dv = attention_backward(dout, cache)
        assert np.all(dk[..., i + 1 :, :] == 0.0) and np.all(dv[..., i + 1 :, :] == 0.0)
        assert np.all(dq[..., np.arange(5) != i, :] == 0.0)
        assert np.abs(dk[..., : i + 1, :]).sum() > 0


def test_rowsum_identity_used_by_the_backward(rng):
    q, k, v = qkv(rng)
    out, cache = attention_forward(q, k, v, fully_masked(rng), causal=False)
    dout = rng.standard_normal(out.shape)
    dP = dout @ np.swapaxes(v, -1, -2)
    np.testing.assert_allclose(
        (dP * cache.weights).sum(-1), (dout * out).sum(-1), atol=1e-13
    )


def test_shared_kv_heads_broadcast_and_sum_their_gradient(rng):
    q, k, v = qkv(rng, k_heads=1)
    out, cache = attention_forward(q, k, v, causal=False)
    k_rep, v_rep = np.repeat(k, H, axis=1), np.repeat(v, H, axis=1)
    out_rep, cache_rep = attention_forward(q, k_rep, v_rep, causal=False)
    np.testing.assert_allclose(out, out_rep, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    _, dk, dv = attention_backward(dout, cache)
    _, dk_rep, dv_rep = attention_backward(dout, cache_rep)
    assert dk.shape == k.shape
    np.testing.assert_allclose(dk, dk_rep.sum(1, keepdims=True), atol=1e-13)
    np.testing.assert_allclose(dv, dv_rep.sum(1, keepdims=True), atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_and_grads_keep_the_input_dtype(rng, dtype):
    q, k, v = qkv(rng, dtype=dtype)
    out, cache = attention_forward(q, k, v, causal_mask(N, M), causal=False)
    assert out.dtype == dtype and cache.weights.dtype == dtype
    assert all(g.dtype == dtype for g in attention_backward(out.copy(), cache))
    ref, _ = attention_naive(q, k, v, causal_mask(N, M), causal=False)
    tol = {np.float16: 2e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=tol)


def test_huge_float32_scores_do_not_overflow(rng):
    q, k, v = qkv(rng, dtype=np.float32)
    q *= 3e2  # scores of magnitude ~1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = attention_forward(q, k, v, fully_masked(rng), causal=False)
        grads = attention_backward(
            rng.standard_normal(out.shape).astype(np.float32), cache
        )
    assert all(np.all(np.isfinite(a)) for a in (out, cache.weights, *grads))


def test_rows_with_far_apart_maxima_use_their_own_shift(rng, monkeypatch):
    q, k, v = qkv(rng)
    q[0, 0, 0] *= 200.0  # one row's scores are ~100x larger than the others'
    ref_out, ref_w = attention_naive(q, k, v, causal=False)
    out, cache = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)
    monkeypatch.setattr(attention_module, "_BLOCK_BYTES", 1)  # one row per block
    out1, cache1 = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(out1, ref_out, atol=1e-12)
    np.testing.assert_allclose(cache1.weights, ref_w, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_unshifted_exp_equals_the_textbook_row_max_shift(rng, monkeypatch, dtype, tol):
    # |q_i| |k_j| <= EXP_BOUND here, so exp(S) runs unshifted; with no bound at all
    # every block subtracts its row max (the textbook): the same softmax
    q, k, v = qkv(rng, dtype=dtype)
    mask = fully_masked(rng)
    out, cache = attention_forward(q, k, v, mask, causal=True)
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = attention_backward(dout, cache)
    assert cache.p.max() > 1.0  # no row was shifted to a max of exp(0) = 1
    monkeypatch.setattr(attention_module, "EXP_BOUND", {})
    out1, cache1 = attention_forward(q, k, v, mask, causal=True)
    assert cache1.p.max() <= 1.0
    np.testing.assert_allclose(out1, out, atol=tol)
    np.testing.assert_allclose(cache1.weights, cache.weights, atol=tol)
    for a, b in zip(attention_backward(dout, cache1), grads, strict=True):
        np.testing.assert_allclose(a, b, atol=tol * 10)


def test_dropout_zero_equals_no_dropout(rng):
    q, k, v = qkv(rng)
    out0, _ = attention_forward(
        q, k, v, dropout_p=0.0, rng=np.random.default_rng(0), causal=False
    )
    np.testing.assert_array_equal(out0, attention_forward(q, k, v, causal=False)[0])


def test_dropout_is_inverted_and_unbiased(rng):
    q, k, v = qkv(rng)
    exact, _ = attention_forward(q, k, v, causal=False)
    gen = np.random.default_rng(5)
    outs = [
        attention_forward(q, k, v, dropout_p=0.5, rng=gen, causal=False)[0]
        for _ in range(4000)
    ]
    np.testing.assert_allclose(np.mean(outs, axis=0), exact, atol=0.06)
    out, cache = attention_forward(
        q, k, v, dropout_p=0.5, rng=np.random.default_rng(1), causal=False
    )
    dropped = cache.weights * cache.keep / 0.5
    np.testing.assert_allclose(out, dropped @ v, atol=1e-12)


def test_dropout_backward_matches_finite_differences(rng):
    q, k, v = qkv(rng)
    fd_check(
        lambda p: attention_forward(
            p["q"],
            p["k"],
            p["v"],
            causal_mask(N, M),
            dropout_p=0.3,
            rng=np.random.default_rng(3),
            causal=False,
        ),
        grads_dict,
        {"q": q, "k": k, "v": v},
        rng,
    )


def test_dropout_same_seed_same_result(rng):
    q, k, v = qkv(rng)
    a, _ = attention_forward(
        q, k, v, dropout_p=0.2, rng=np.random.default_rng(9), causal=False
    )
    b, _ = attention_forward(
        q, k, v, dropout_p=0.2, rng=np.random.default_rng(9), causal=False
    )
    np.testing.assert_array_equal(a, b)


def test_zero_length_queries_give_empty_output(rng):
    q, k, v = qkv(rng, n=0)
    out, cache = attention_forward(q, k, v, causal=False)
    assert out.shape == (B, H, 0, D_V)
    dq, dk, dv = attention_backward(out, cache)
    assert dq.shape == q.shape and np.all(dk == 0) and np.all(dv == 0)


def test_zero_length_keys_give_zero_output(rng):
    q, k, v = qkv(rng, m=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = attention_forward(q, k, v, causal=False)
        dq, dk, dv = attention_backward(rng.standard_normal(out.shape), cache)
    assert out.shape == (B, H, N, D_V) and np.all(out == 0.0)
    assert cache.weights.shape == (B, H, N, 0)
    assert np.all(dq == 0.0) and dk.shape == k.shape and dv.shape == v.shape


def test_unbatched_two_dimensional_inputs(rng):
    q, k, v = (
        rng.standard_normal((3, 4)),
        rng.standard_normal((6, 4)),
        rng.standard_normal((6, 2)),
    )
    out, _ = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(
        out, attention_naive(q, k, v, causal=False)[0], atol=1e-12
    )


def test_nan_policy_non_finite_inputs_propagate_to_their_rows_only(rng):
    # documented in the README: inputs are not scanned (it would cost a pass); a NaN in
    # query i poisons output row i and nothing else, and no exception is raised
    q, k, v = qkv(rng)
    q[0, 1, 2, 3] = np.nan
    with np.errstate(invalid="ignore"):
        out, _ = attention_forward(q, k, v, causal=False)
    assert np.all(np.isnan(out[0, 1, 2]))
    rest = np.ones(out.shape[:-1], bool)
    rest[0, 1, 2] = False
    assert np.all(np.isfinite(out[rest]))


# --- causal= and align= --------------------------------------------------------------

ALIGNS = ["top_left", "bottom_right"]
SIZES = [(4, 5), (5, 3), (4, 4)]  # N < M, N > M (bottom-right hides whole rows), N = M


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("n, m", SIZES)
def test_causal_equals_the_explicit_causal_mask(rng, align, n, m):
    q, k, v = qkv(rng, n=n, m=m)
    out, cache = attention_forward(q, k, v, causal=True, align=align)
    ref, ref_cache = attention_forward(
        q, k, v, causal_mask(n, m, align=align), causal=False
    )
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("n, m", [(150, 170), (170, 150)])
@pytest.mark.parametrize("block_bytes", [1 << 21, 5000])
def test_causal_rule_in_blocks_of_many_rows_equals_the_explicit_mask(
    rng, monkeypatch, align, n, m, block_bytes
):
    # blocks of more than 64 rows: the diagonal is masked 64 rows at a time, and the
    # keys in the future of a whole block get weight 0 without an exp
    monkeypatch.setattr(attention_module, "_BLOCK_BYTES", block_bytes)
    q, k, v = (a[:1, :1] for a in qkv(rng, n=n, m=m))
    out, cache = attention_forward(q, k, v, causal=True, align=align)
    mask = causal_mask(n, m, align=align)
    ref, ref_cache = attention_forward(q, k, v, mask, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.p, ref_cache.p)
    naive, _ = attention_naive(q, k, v, causal=True, align=align)
    np.testing.assert_allclose(out, naive, atol=1e-12)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("n, m", SIZES)
def test_causal_weights_equal_the_explicit_causal_mask(rng, align, n, m):
    q, k, _ = qkv(rng, n=n, m=m)
    w = attention_weights(q, k, causal=True, align=align)
    ref = attention_weights(q, k, causal_mask(n, m, align=align), causal=False)
    np.testing.assert_array_equal(w, ref)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("n, m", SIZES)
def test_causal_matches_the_naive_oracle(rng, align, n, m):
    q, k, v = qkv(rng, n=n, m=m)
    out, cache = attention_forward(q, k, v, causal=True, align=align)
    ref, w_ref = attention_naive(q, k, v, causal=True, align=align)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(cache.weights, w_ref, atol=1e-12)


def test_the_two_alignments_differ_when_n_is_not_m(rng):
    q, k, v = qkv(rng)  # N = 4 < M = 5
    top, _ = attention_forward(q, k, v, causal=True, align="top_left")
    bottom, _ = attention_forward(q, k, v, causal=True, align="bottom_right")
    assert np.abs(top - bottom).max() > 1e-3


def test_align_is_ignored_without_causal(rng):
    q, k, v = qkv(rng)
    a, _ = attention_forward(q, k, v, causal=False, align="top_left")
    b, _ = attention_forward(q, k, v, causal=False, align="bottom_right")
    np.testing.assert_array_equal(a, b)


def test_bottom_right_with_more_queries_than_keys_gives_zero_rows(rng):
    q, k, v = qkv(rng, n=5, m=3)  # queries 0 and 1 lie before every key
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = attention_forward(q, k, v, causal=True, align="bottom_right")
        grads = attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(out[..., :2, :] == 0.0) and np.all(grads[0][..., :2, :] == 0.0)
    assert np.all(np.isfinite(out[..., 2:, :])) and np.all(out[..., 2:, :] != 0.0)


@pytest.mark.parametrize("align", ALIGNS)
def test_causal_and_a_padding_mask_are_anded(rng, align):
    q, k, v = qkv(rng)
    pad = padding_mask([3, 1], M)
    out, cache = attention_forward(q, k, v, pad, causal=True, align=align)
    both = combine_masks(pad, causal_mask(N, M, align=align))
    ref, ref_cache = attention_forward(q, k, v, both, causal=False)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cache.weights, ref_cache.weights)
    w = attention_weights(q, k, pad, causal=True, align=align)
    np.testing.assert_array_equal(w, ref_cache.weights)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("masked", [False, True])
def test_causal_backward_matches_finite_differences(rng, align, masked):
    q, k, v = qkv(rng)
    mask = padding_mask([4, 2], M) if masked else None
    fd_check(
        lambda p: attention_forward(
            p["q"], p["k"], p["v"], mask, causal=True, align=align
        ),
        grads_dict,
        {"q": q, "k": k, "v": v},
        rng,
    )


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("n, m", [(4, 6), (6, 4)])
def test_causal_flag_through_the_backward_reaches_only_allowed_keys(rng, align, n, m):
    q, k, v = qkv(rng, n=n, m=m)
    out, cache = attention_forward(q, k, v, causal=True, align=align)
    offset = 0 if align == "top_left" else m - n
    for i in range(n):
        dout = np.zeros_like(out)  # a one-hot upstream gradient at query i
        dout[..., i, :] = 1.0
        dq, dk, dv = attention_backward(dout, cache)
        allowed = np.arange(m) <= i + offset  # (M,) keys query i may attend
        assert np.all(dk[..., ~allowed, :] == 0.0)
        assert np.all(dv[..., ~allowed, :] == 0.0)
        assert np.all(dq[..., np.arange(n) != i, :] == 0.0)
        if allowed.any():
            assert np.all(np.abs(dv[..., allowed, :]).sum(-1) > 0)


def test_causal_must_be_given():
    q = np.ones((2, 3))
    with pytest.raises(TypeError, match="causal"):
        attention_forward(q, q, q)  # no default: a guess would change the result


# --- NaN and inf in inputs (README: they propagate to the rows they touch) ----------


def rows_with_nan(a):
    return np.isnan(a).any(axis=-1)


def test_nan_in_a_key_reaches_only_the_queries_that_may_attend_it(rng):
    q, k, v = qkv(rng)
    k[0, 1, 2, 0] = np.nan  # key j = 2 of batch 0, head 1
    with np.errstate(invalid="ignore"):
        out, _ = attention_forward(q, k, v, causal=True)
    expected = np.zeros(out.shape[:-1], bool)
    expected[0, 1, 2:] = True  # causal (top-left): queries i >= 2 may attend key 2
    np.testing.assert_array_equal(rows_with_nan(out), expected)


def test_nan_in_a_value_reaches_every_query_of_its_head_even_masked_ones(rng):
    # 0 * NaN = NaN in P @ V, so masking key j does not protect against NaN in v[j]
    q, k, v = qkv(rng)
    v[0, 1, 4, 3] = np.nan  # key 4: causally hidden from every query (N = 4)
    with np.errstate(invalid="ignore"):
        out, _ = attention_forward(q, k, v, causal=True)
    nan = np.isnan(out)
    assert nan[0, 1, :, 3].all() and nan.sum() == out.shape[-2]


def test_inf_in_a_query_makes_only_its_output_row_nan(rng):
    q, k, v = qkv(rng)
    q[1, 0, 3, 2] = np.inf
    with np.errstate(invalid="ignore"):
        out, _ = attention_forward(q, k, v, causal=False)
    expected = np.zeros(out.shape[:-1], bool)
    expected[1, 0, 3] = True
    np.testing.assert_array_equal(rows_with_nan(out), expected)
    assert np.isnan(out[1, 0, 3]).all()


def test_backward_nan_in_a_query_spreads_to_every_key_and_value_grad_of_its_head(rng):
    # backward: dk = dS^T q and dv = P^T dout mix all queries of a (batch, head)
    q, k, v = qkv(rng)
    q[0, 1, 2, 3] = np.nan
    with np.errstate(invalid="ignore"):
        out, cache = attention_forward(q, k, v, causal=False)
        dq, dk, dv = attention_backward(rng.standard_normal(out.shape), cache)
    expected_dq = np.zeros(dq.shape[:-1], bool)
    expected_dq[0, 1, 2] = True
    np.testing.assert_array_equal(rows_with_nan(dq), expected_dq)
    for grad in (dk, dv):
        assert np.isnan(grad[0, 1]).all() and np.isnan(grad).sum() == grad[0, 1].size

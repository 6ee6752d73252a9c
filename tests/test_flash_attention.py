"""Tiled attention with an online softmax == core attention, no (N, M) arrays."""

import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import fd_check

from attention_np import (
    attention_backward,
    attention_forward,
    causal_mask,
    combine_masks,
    padding_mask,
)
from attention_np.efficient import flash as flash_module
from attention_np.efficient import (
    flash_attention_backward,
    flash_attention_forward,
    peak_bytes,
)
from attention_np.efficient.tiles import tile_schedule
from attention_np.naive import attention_naive
from attention_np.validate import default_workers

B, H, N, M, d, d_v = 2, 3, 13, 11, 6, 7
BLOCKS = [(1, 1), (4, 3), (5, 11), (13, 11), (64, 64), (3, 512)]


def qkv(rng, n=N, m=M, k_heads=H, dtype=np.float64):
    q = rng.standard_normal((B, H, n, d)).astype(dtype)
    k = rng.standard_normal((B, k_heads, m, d)).astype(dtype)
    v = rng.standard_normal((B, k_heads, m, d_v)).astype(dtype)
    return q, k, v


def fully_masked(rng):
    mask = rng.random((B, H, N, M)) > 0.5
    mask[1, 2, 4] = False  # one query of batch 1, head 2 sees no key
    mask[0, 0, :, 3:7] = False  # a band of keys nobody sees
    return mask


MASKS = {
    "none": lambda rng: None,
    "padding": lambda rng: padding_mask([M, 4], M),
    "padding with an empty sequence": lambda rng: padding_mask([0, 6], M),
    "random with fully masked rows": fully_masked,
}
CAUSAL = ("no", "top_left", "bottom_right")


def reference(q, k, v, mask, causal):
    """The core attention with the same rule written as an explicit mask."""
    if causal in ("top_left", "bottom_right"):
        mask = combine_masks(mask, causal_mask(N, M, align=causal))
    return attention_forward(q, k, v, mask, causal=False)


def flash(q, k, v, mask, causal, blocks=(4, 3)):
    kwargs = {"causal": False} if causal == "no" else {"causal": True, "align": causal}
    bq, bk = blocks
    return flash_attention_forward(q, k, v, mask, block_q=bq, block_k=bk, **kwargs)


@pytest.mark.parametrize("blocks", BLOCKS)
@pytest.mark.parametrize("causal", CAUSAL)
def test_forward_equals_core_for_any_block_size(rng, blocks, causal):
    q, k, v = qkv(rng)
    out, _ = flash(q, k, v, None, causal, blocks)
    np.testing.assert_allclose(out, reference(q, k, v, None, causal)[0], atol=1e-12)


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("causal", CAUSAL)
def test_forward_and_backward_equal_core_with_masks(rng, mask_name, causal):
    q, k, v = qkv(rng)
    mask = MASKS[mask_name](rng)
    out, cache = flash(q, k, v, mask, causal)
    ref, ref_cache = reference(q, k, v, mask, causal)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = flash_attention_backward(dout, cache)
    for g, g_ref in zip(grads, attention_backward(dout, ref_cache), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


@pytest.mark.parametrize("blocks", BLOCKS)
def test_backward_equals_core_for_any_block_size(rng, blocks):
    q, k, v = qkv(rng)
    mask = causal_mask(N, M)
    out, cache = flash_attention_forward(
        q, k, v, causal=True, block_q=blocks[0], block_k=blocks[1]
    )
    _, ref_cache = attention_forward(q, k, v, mask, causal=False)
    dout = rng.standard_normal(out.shape)
    grads = flash_attention_backward(dout, cache)
    for g, g_ref in zip(grads, attention_backward(dout, ref_cache), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


def test_forward_equals_the_loop_oracle(rng):
    q, k, v = qkv(rng)
    mask = fully_masked(rng)
    out, _ = flash_attention_forward(q, k, v, mask, causal=False, block_q=4, block_k=3)
    expected = attention_naive(q, k, v, mask, causal=False)[0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("causal", CAUSAL)
def test_lse_is_the_logsumexp_of_the_masked_scores(rng, causal):
    q, k, v = qkv(rng)
    mask = fully_masked(rng)
    _, cache = flash(q, k, v, mask, causal)
    if causal != "no":
        mask = mask & causal_mask(N, M, align=causal)
    s = np.where(mask, q @ np.swapaxes(k, -1, -2) / np.sqrt(d), -np.inf)
    with np.errstate(divide="ignore"):  # log(0) = -inf for fully masked rows
        expected = np.log(np.sum(np.exp(s), axis=-1))
    np.testing.assert_allclose(cache.lse, expected, atol=1e-12)


def test_fully_masked_rows_give_zeros_minus_inf_lse_and_zero_grads(rng):
    q, k, v = qkv(rng)
    mask = fully_masked(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning anywhere
        out, cache = flash_attention_forward(
            q, k, v, mask, causal=False, block_q=2, block_k=4
        )
        dout = rng.standard_normal(out.shape)
        dq, dk, dv = flash_attention_backward(dout, cache)
    assert np.all(out[1, 2, 4] == 0) and cache.lse[1, 2, 4] == -np.inf
    assert np.all(dq[1, 2, 4] == 0)
    assert np.all(dk[0, 0, 3:7] == 0) and np.all(dv[0, 0, 3:7] == 0)
    assert all(np.isfinite(g).all() for g in (out, dq, dk, dv))


def test_scores_outside_the_unshifted_exp_window_are_still_exact(rng):
    # rows whose max is far outside EXP_RANGE take the shifted path; mix both kinds
    q, k, v = qkv(rng)
    q[:, :, ::2] *= 60.0  # scores ~ +-1000: exp without the row max would overflow
    out, cache = flash_attention_forward(q, k, v, causal=True, block_q=4, block_k=3)
    ref, ref_cache = attention_forward(q, k, v, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = flash_attention_backward(dout, cache)
    for g, g_ref in zip(grads, attention_backward(dout, ref_cache), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-9 * np.abs(g_ref).max())


def test_shared_keys_across_heads_get_summed_gradients(rng):
    q, k, v = qkv(rng, k_heads=1)
    out, cache = flash_attention_forward(q, k, v, causal=True, block_q=5, block_k=4)
    _, ref_cache = attention_forward(q, k, v, causal=True)
    dout = rng.standard_normal(out.shape)
    grads = flash_attention_backward(dout, cache)
    assert grads[1].shape == k.shape and grads[2].shape == v.shape
    for g, g_ref in zip(grads, attention_backward(dout, ref_cache), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


def test_float32_stays_float32_and_matches_float64(rng):
    q, k, v = qkv(rng, dtype=np.float32)
    out, cache = flash_attention_forward(q, k, v, causal=True, block_q=4, block_k=3)
    dq, dk, dv = flash_attention_backward(np.ones_like(out), cache)
    assert {a.dtype for a in (out, cache.lse, dq, dk, dv)} == {np.dtype(np.float32)}
    ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_finite_differences(rng, causal):
    q, k, v = (a[:, :2, :5] for a in qkv(rng, n=5, m=4))
    mask = padding_mask([4, 3], 4)

    def forward(p):
        return flash_attention_forward(
            p["q"], p["k"], p["v"], mask, causal=causal, block_q=2, block_k=3
        )

    def backward(dout, cache):
        return dict(zip("qkv", flash_attention_backward(dout, cache), strict=True))

    fd_check(forward, backward, {"q": q, "k": k, "v": v}, rng)


def test_causal_skips_tiles_in_the_future(rng, monkeypatch):
    tiles = tile_schedule(8, 8, 2, 2, causal=True)
    computed = np.zeros((4, 4), dtype=bool)
    for rows, cols, masked in tiles:
        computed[rows.start // 2, cols.start // 2] = True
        assert masked == (rows.start == cols.start)  # only diagonal tiles are masked
    np.testing.assert_array_equal(computed, np.tri(4, dtype=bool))
    calls = []
    real = flash_module.tile_sums
    monkeypatch.setattr(
        flash_module,
        "tile_sums",
        lambda *args: calls.append(args[-1].shape) or real(*args),
    )
    q = rng.standard_normal((8, 4))
    flash_attention_forward(q, q, q, causal=True, block_q=2, block_k=2)
    assert len(calls) == len(tiles) == 10  # 10 of the 16 tiles


def test_causal_key_tiles_are_cut_at_the_diagonal():
    tiles = tile_schedule(8, 8, 4, 8, causal=True)
    spans = [(r.start, c.start, c.stop, m) for r, c, m in tiles]
    assert spans == [(0, 0, 4, True), (4, 0, 4, False), (4, 4, 8, True)]


def test_all_false_mask_tiles_are_skipped():
    mask = np.zeros((8, 8), dtype=bool)
    mask[:4, :4] = True  # only the top-left quarter may attend
    tiles = tile_schedule(8, 8, 4, 4, causal=False, mask=mask)
    assert [(r.start, c.start, m) for r, c, m in tiles] == [(0, 0, False)]


def test_no_n_by_m_array_is_allocated(rng):
    n = 1024
    q, k, v = (rng.standard_normal((n, 16)) for _ in range(3))
    full = n * n * 8  # one (N, M) float64 array: 8 MiB
    tiles = dict(causal=False, block_q=64, block_k=128, workers=1)
    out, cache = flash_attention_forward(q, k, v, **tiles)
    dout = rng.standard_normal(out.shape)
    fwd = peak_bytes(lambda: flash_attention_forward(q, k, v, **tiles))
    bwd = peak_bytes(lambda: flash_attention_backward(dout, cache))
    core = peak_bytes(lambda: attention_forward(q, k, v, causal=False))
    assert core > full  # the measurement sees an (N, M) array when there is one
    assert fwd < full / 16 and bwd < full / 8


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"block_q": 0}, ValueError, "block_q"),
        ({"block_k": 2.5}, TypeError, "block_k"),
        ({"align": "middle"}, ValueError, "align"),
    ],
)
def test_bad_options_are_named(rng, kwargs, error, match):
    q, k, v = qkv(rng)
    with pytest.raises(error, match=match):
        flash_attention_forward(q, k, v, causal=True, **kwargs)


def test_peak_bytes_measures_above_what_a_tracing_caller_already_holds():
    tracemalloc.start()
    try:
        held = np.ones(1 << 20)  # 8 MiB allocated before the measurement
        peak = peak_bytes(lambda: np.ones(1 << 17))  # 1 MiB inside it
        assert tracemalloc.is_tracing()  # the caller's tracing stays on
    finally:
        tracemalloc.stop()
    assert held.nbytes > peak >= (1 << 17) * 8
    assert not tracemalloc.is_tracing()


def test_backward_names_a_wrong_dout(rng):
    q, k, v = qkv(rng)
    out, cache = flash_attention_forward(q, k, v, causal=False)
    with pytest.raises(ValueError, match="dout"):
        flash_attention_backward(out[..., :-1], cache)


def test_rows_with_tiny_or_huge_sums_take_the_shifted_path_exactly(rng):
    q, k, v = qkv(rng, dtype=np.float32)
    k[..., 0] = 1.0  # a shared direction: q[..., 0] moves all of a row's scores
    q[:, :, 0::3, 0] = -250.0  # every score ~ -100: exp underflows without a shift
    q[:, :, 1::3, 0] = 250.0  # every score ~ +100: exp overflows without a shift
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = flash_attention_forward(
            q, k, v, causal=False, block_q=4, block_k=3
        )
    ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=False)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    assert np.all(np.isfinite(cache.lse))


def test_float16_has_no_unshifted_window_and_still_works(rng):
    q, k, v = qkv(rng, dtype=np.float16)
    out, _ = flash_attention_forward(q, k, v, causal=False, block_q=4, block_k=3)
    ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=False)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, ref, atol=1e-2)


@pytest.mark.parametrize("causal", [False, True])
def test_threads_over_heads_give_bitwise_the_same_results(rng, causal):
    q, k, v = qkv(rng, k_heads=1)  # shared keys: each head writes its own slices
    mask = fully_masked(rng)
    options = dict(causal=causal, block_q=4, block_k=3)
    results = []
    for workers in (1, 2, 3, None):  # None: validate.default_workers()
        out, cache = flash_attention_forward(q, k, v, mask, workers=workers, **options)
        dout = np.random.default_rng(7).standard_normal(out.shape)
        results.append((out, cache.lse, *flash_attention_backward(dout, cache)))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_workers_default_to_the_cores_this_process_may_use(rng):
    q, k, v = qkv(rng)
    _, cache = flash_attention_forward(q, k, v, causal=True)
    assert cache.plan.workers == default_workers()

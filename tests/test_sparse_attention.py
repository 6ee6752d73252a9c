"""Sparse patterns: allowed counts, BigBird symmetry and seeds; the banded sliding
window equals dense masked attention, forward and backward, in O(N w) memory."""

import warnings

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_backward, attention_forward, padding_mask
from attention_np.efficient import flash_attention_forward, peak_bytes
from attention_np.efficient.banded import (
    sliding_window_attention_backward,
    sliding_window_attention_forward,
)
from attention_np.efficient.sparse_masks import (
    bigbird_layout,
    bigbird_mask,
    dilated_mask,
    sliding_window_mask,
    strided_mask,
)


def qkv(rng, n, k_heads=3):
    q = rng.standard_normal((2, 3, n, 4))
    k = rng.standard_normal((2, k_heads, n, 4))
    v = rng.standard_normal((2, k_heads, n, 5))
    return q, k, v


def test_causal_window_row_i_sees_min_i_plus_1_w_keys():
    mask = sliding_window_mask(12, 4, causal=True)
    np.testing.assert_array_equal(mask.sum(-1), np.minimum(np.arange(12) + 1, 4))
    assert not np.any(np.triu(mask, 1))  # nothing from the future


def test_bidirectional_window_is_symmetric_with_half_width_each_side():
    mask = sliding_window_mask(12, 5, causal=False)
    np.testing.assert_array_equal(mask, mask.T)
    assert mask[6].sum() == 5 and mask[0].sum() == 3  # |i - j| <= 2


def test_dilated_window_keys_are_spaced_by_the_dilation():
    mask = dilated_mask(20, 3, 4, causal=True)
    assert np.flatnonzero(mask[19]).tolist() == [11, 15, 19]
    assert mask[2].sum() == 1  # only itself: 2 - 4 < 0


def test_strided_keys_are_multiples_of_the_stride_behind():
    mask = strided_mask(10, 3, causal=True)
    assert np.flatnonzero(mask[9]).tolist() == [0, 3, 6, 9]


def test_bigbird_global_rows_and_columns_are_full():
    mask = bigbird_mask(40, 4, rng=np.random.default_rng(0), n_random=2)
    assert mask[:4].all() and mask[-4:].all()  # global rows: first and last block
    assert mask[:, :4].all() and mask[:, -4:].all()  # global columns


def test_bigbird_random_blocks_are_reproducible_from_the_seed():
    a = bigbird_layout(12, rng=np.random.default_rng(5))
    b = bigbird_layout(12, rng=np.random.default_rng(5))
    c = bigbird_layout(12, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bigbird_rows_have_window_global_and_random_blocks():
    layout = bigbird_layout(12, rng=np.random.default_rng(1), n_random=3)
    np.testing.assert_array_equal(layout[1:-1].sum(-1)[1:-1], 3 + 2 + 3)
    assert layout.sum() < 12 * 12


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "n, window", [(1, 3), (9, 1), (17, 2), (17, 4), (16, 5), (10, 40)]
)
def test_banded_equals_dense_masked(rng, causal, n, window):
    q, k, v = qkv(rng, n, k_heads=1)
    out, cache = sliding_window_attention_forward(q, k, v, window=window, causal=causal)
    ref, ref_cache = attention_forward(
        q, k, v, sliding_window_mask(n, window, causal=causal), causal=False
    )
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = sliding_window_attention_backward(dout, cache)
    for g, g_ref in zip(grads, attention_backward(dout, ref_cache), strict=True):
        assert g.shape == g_ref.shape
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


def test_banded_with_padding_gives_zero_rows_without_warnings(rng):
    q, k, v = qkv(rng, 11)
    mask = padding_mask([11, 6], 11)  # keys 6.. of sequence 1 are padding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = sliding_window_attention_forward(
            q, k, v, mask, window=3, causal=False
        )
        sliding_window_attention_backward(rng.standard_normal(out.shape), cache)
    dense = mask & sliding_window_mask(11, 3, causal=False)
    ref, _ = attention_forward(q, k, v, dense, causal=False)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert np.all(out[1, :, 8:] == 0)  # rows 8..10 see only padding


def test_banded_backward_matches_finite_differences(rng):
    q, k, v = (a[:1, :2] for a in qkv(rng, 7))

    def forward(p):
        return sliding_window_attention_forward(
            p["q"], p["k"], p["v"], window=3, causal=True
        )

    def backward(dout, cache):
        return dict(
            zip("qkv", sliding_window_attention_backward(dout, cache), strict=True)
        )

    fd_check(forward, backward, {"q": q, "k": k, "v": v}, rng)


def test_banded_memory_grows_with_n_times_w_not_n_squared(rng):
    n, w = 4096, 16
    q, k, v = (rng.standard_normal((n, 8)) for _ in range(3))
    peak = peak_bytes(
        lambda: sliding_window_attention_forward(q, k, v, window=w, causal=True)
    )
    assert peak < n * n * 8 / 16  # the dense (N, N) scores would be 128 MiB
    assert peak < 16 * n * w * 8  # a few (N, 2w) arrays and the gathered k, v


def test_flash_skips_tiles_outside_a_block_sparse_pattern(rng):
    q, k, v = qkv(rng, 32)
    mask = bigbird_mask(32, 4, rng=np.random.default_rng(0), n_random=1)
    out, _ = flash_attention_forward(q, k, v, mask, causal=False, block_q=4, block_k=4)
    expected = attention_forward(q, k, v, mask, causal=False)[0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sliding_window_mask(5, 0, causal=True), ValueError, "window"),
        (lambda: dilated_mask(5, 2, 1.5, causal=True), TypeError, "dilation"),
        (lambda: bigbird_layout(4, rng=1), TypeError, "rng"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_banded_needs_self_attention(rng):
    q, _, _ = qkv(rng, 5)
    k, v = q[..., :4, :], q[..., :4, :]
    with pytest.raises(ValueError, match="N == M"):
        sliding_window_attention_forward(q, k, v, window=2, causal=True)


@pytest.mark.parametrize("causal", [True, False])
def test_band_blocks_cover_the_window_and_stay_linear(causal):
    from attention_np.efficient.banded import band_blocks

    n, w = 50, 7
    covered = np.zeros((n, n), dtype=bool)
    for rows, cols in band_blocks(n, w, causal=causal):
        covered[rows, cols] = True
    assert np.all(covered[sliding_window_mask(n, w, causal=causal)])
    assert covered.sum() <= 3 * n * w  # O(N w) cells, not N^2


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [lambda n: 2 * n + 1, lambda n: 10**9])
def test_a_window_covering_every_key_is_full_attention(rng, causal, window):
    q, k, v = qkv(rng, 9)
    mask = rng.random((2, 1, 9, 9)) > 0.3
    w = window(9)  # a huge window costs no more than one covering the sequence
    out, _ = sliding_window_attention_forward(q, k, v, mask, window=w, causal=causal)
    expected, _ = attention_forward(q, k, v, mask, causal=causal)
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_align_is_accepted_and_changes_nothing_when_n_equals_m(rng, align):
    q, k, v = qkv(rng, 7)
    out, _ = sliding_window_attention_forward(
        q, k, v, window=3, causal=True, align=align
    )
    ref, _ = sliding_window_attention_forward(q, k, v, window=3, causal=True)
    np.testing.assert_array_equal(out, ref)
    for build in (
        lambda **kw: sliding_window_mask(7, 3, causal=True, **kw),
        lambda **kw: dilated_mask(7, 2, 2, causal=True, **kw),
        lambda **kw: strided_mask(7, 3, causal=True, **kw),
    ):
        np.testing.assert_array_equal(build(align=align), build())


@pytest.mark.parametrize(
    "build",
    [
        lambda: sliding_window_mask(6, 2),
        lambda: dilated_mask(6, 2, 2),
        lambda: strided_mask(6, 2),
    ],
)
def test_causal_is_required_by_every_mask_builder(build):
    with pytest.raises(TypeError, match="causal"):
        build()


def test_bidirectional_dilated_and_strided_masks_are_symmetric():
    for mask in (
        dilated_mask(15, 5, 3, causal=False),
        strided_mask(15, 4, causal=False),
    ):
        np.testing.assert_array_equal(mask, mask.T)

"""Claims of lesson 16 (sparse attention), recomputed from the package with the
lesson's sizes and seeds. Timings cannot be re-measured by a test; the last test
checks that the committed benchmarks/results/16_sparse_attention.json, which the
lesson plots, still shows what its prose says. Memory is recomputed, because
tracemalloc's peak depends only on the shapes."""

import json
from functools import partial
from pathlib import Path

import numpy as np

from attention_np import attention_backward, attention_forward, padding_mask
from attention_np.efficient import (
    bigbird_mask,
    dilated_mask,
    peak_bytes,
    sliding_window_attention_backward,
    sliding_window_attention_forward,
    sliding_window_mask,
    strided_mask,
)
from attention_np.efficient.banded import band_blocks
from attention_np.efficient.tiles import tile_schedule


def reach(steps, layers, N=128):
    """Boolean reach after each layer: r[i, j] = position j can influence i."""
    r = np.eye(N, dtype=int)
    out = []
    for layer in range(layers):
        r = ((steps[layer % len(steps)].astype(int) @ r) > 0).astype(int)
        out.append(r.astype(bool))
    return out


def test_bigbird_with_blocks_of_4_is_dense_at_32_tokens_and_sparse_at_256():
    small = bigbird_mask(32, 4, rng=np.random.default_rng(0), n_random=1)
    large = bigbird_mask(256, 4, rng=np.random.default_rng(0), n_random=1)
    assert small.mean() > 0.75 and large.mean() < 0.13


def test_every_pattern_of_the_figure_is_sparse_at_256_tokens():
    N = 256
    masks = [
        sliding_window_mask(N, 16, causal=True),
        sliding_window_mask(N, 16, causal=False),
        dilated_mask(N, 8, 4, causal=True),
        strided_mask(N, 16, causal=True),
        sliding_window_mask(N, 16, causal=True) | strided_mask(N, 16, causal=True),
        bigbird_mask(N, 4, rng=np.random.default_rng(0), n_random=1),
    ]
    assert max(m.mean() for m in masks) < 0.13


def test_windows_and_bigbird_keep_linearly_many_pairs_strides_quadratically_many():
    sizes = [128, 256, 512, 1024, 2048]
    slope = lambda c: np.polyfit(np.log(sizes), np.log(c), 1)[0]
    window = [sliding_window_mask(n, 64, causal=True).sum() for n in sizes]
    strided = [strided_mask(n, 16, causal=True).sum() for n in sizes]
    bigbird = [
        bigbird_mask(n, 16, rng=np.random.default_rng(0), n_random=2).sum()
        for n in sizes
    ]
    assert slope(window) < 1.15 and slope(bigbird) < 1.15 and slope(strided) > 1.9
    np.testing.assert_allclose(strided[-1] / 2048**2, 1 / 32, rtol=0.01)  # 1 / (2 s)


def test_a_global_token_leaks_every_later_position_into_token_64_in_two_layers():
    N = 128
    local = sliding_window_mask(N, 4, causal=True)
    column0 = np.arange(N)[None, :] == 0
    row0 = np.arange(N)[:, None] == 0
    leaky = reach([local | column0 | row0], 2)
    assert leaky[0][64, 65:].sum() == 0 and leaky[1][64, 65:].sum() == N - 65
    assert leaky[1][-1].all()  # and every position reaches the last one
    causal = reach([local | column0], 8)
    assert all(r[64, 65:].sum() == 0 for r in causal)
    assert (
        causal[1][-1].sum() == reach([local], 2)[1][-1].sum() + 1
    )  # one more: token 0


def test_dilation_reaches_four_times_as_far_with_the_same_count():
    N = 128
    plain = reach([sliding_window_mask(N, 4, causal=True)], 8)
    dilated = reach([dilated_mask(N, 4, 4, causal=True)], 8)
    for p, d in zip(plain, dilated, strict=True):
        far = lambda r: N - 1 - np.flatnonzero(r[-1]).min()
        assert far(d) == 4 * far(p) and d[-1].sum() == p[-1].sum()


def test_window_plus_stride_reaches_every_earlier_position_in_two_layers():
    for N, s in [(64, 8), (100, 10), (256, 16)]:
        union = sliding_window_mask(N, s, causal=True) | strided_mask(N, s, causal=True)
        two = (union.astype(int) @ union.astype(int)) > 0
        np.testing.assert_array_equal(two, np.tri(N, dtype=bool))


def test_padding_rows_give_exactly_zero_weights_output_and_gradients():
    rng = np.random.default_rng(0)
    N = 12
    x = rng.standard_normal((1, N, 16))
    mask = sliding_window_mask(N, 3, causal=False) & padding_mask([9], N)[0, 0]
    mask[9:] = False
    out, cache = attention_forward(x, x, x, mask, causal=False)
    assert (out[0, 9:] == 0).all() and (cache.weights[0, 9:] == 0).all()
    grads = attention_backward(rng.standard_normal(out.shape), cache)
    assert all(np.isfinite(g).all() for g in grads)
    assert all((g[0, 9:] == 0).all() for g in grads)  # "exactly 0, with no NaN"


def test_banded_attention_equals_dense_masked_attention_forward_and_backward():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 3, 100, 16)) for _ in range(3))
    for causal in (True, False):
        out, cache = sliding_window_attention_forward(q, k, v, window=12, causal=causal)
        mask = sliding_window_mask(100, 12, causal=causal)
        ref, ref_cache = attention_forward(q, k, v, mask, causal=False)
        np.testing.assert_allclose(out, ref, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        pairs = zip(
            sliding_window_attention_backward(dout, cache),
            attention_backward(dout, ref_cache),
            strict=True,
        )
        for a, b in pairs:
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_banded_memory_grows_linearly_and_dense_masked_quadratically():
    rng = np.random.default_rng(2)
    sizes, band, dense = [512, 1024, 2048, 4096], [], []
    for n in sizes:
        q, k, v = (rng.standard_normal((n, 64)).astype(np.float32) for _ in range(3))
        mask = sliding_window_mask(n, 128, causal=True)
        dense.append(
            peak_bytes(partial(attention_forward, q, k, v, mask, causal=False))
        )
        band.append(
            peak_bytes(
                partial(
                    sliding_window_attention_forward, q, k, v, window=128, causal=True
                )
            )
        )
    slope = lambda y: np.polyfit(np.log(sizes), np.log(y), 1)[0]
    assert slope(band) < 1.0
    # dense: the (N, N) float32 weights plus a linear part, which flattens the fitted
    # slope at small N; the last doubling is close to 4x
    assert all(p >= 4 * n * n for p, n in zip(dense, sizes, strict=True))
    assert slope(dense) > 1.75 and dense[-1] / dense[-2] > 3.6


def test_aligned_bigbird_computes_a_falling_fraction_of_the_tiles():
    fractions = []
    for n in [512, 1024, 2048, 4096]:
        mask = bigbird_mask(n, 64, rng=np.random.default_rng(0), n_random=3)
        tiles = tile_schedule(n, n, 64, 64, causal=False, mask=mask)
        fractions.append(len(tiles) / (n // 64) ** 2)
        assert fractions[-1] == mask.mean()  # aligned blocks: tiles == blocks
    assert (np.diff(fractions) < 0).all() and fractions[-1] < 0.16


def test_alternating_window_and_dilation_reaches_between_the_two_and_fills_holes():
    N = 128
    local = sliding_window_mask(N, 4, causal=True)
    dilated = dilated_mask(N, 4, 4, causal=True)
    far = lambda r: N - 1 - np.flatnonzero(r[-1]).min()
    after4 = {
        name: reach(steps, 4)[3]
        for name, steps in [
            ("plain", [local]),
            ("dilated", [dilated]),
            ("alternating", [local, dilated]),
        ]
    }
    assert [far(after4[n]) for n in ("plain", "dilated", "alternating")] == [12, 48, 30]
    assert after4["alternating"][-1].sum() == 31 and after4["plain"][-1].sum() == 13


def test_banded_blocks_have_w_minus_1_rows_causal_and_half_w_bidirectional():
    N, w = 64, 8
    for causal, b, keys in [(True, w - 1, 2 * (w - 1)), (False, w // 2, 3 * (w // 2))]:
        spans = band_blocks(N, w, causal=causal)
        rows, cols = spans[3]  # an interior block
        assert rows.stop - rows.start == b and cols.stop - cols.start == keys


def test_benchmark_file_dense_is_fastest_only_at_256_and_slopes_are_ordered():
    path = (
        Path(__file__).resolve().parents[1]
        / "benchmarks/results/16_sparse_attention.json"
    )
    bench = json.loads(path.read_text())
    sizes = np.array(bench["sizes"])
    t = {n: np.array([r["cpu_s"] for r in ts]) for n, ts in bench["times"].items()}
    dense, tiled, band = t["dense masked"], t["tiled, skipping tiles"], t["banded"]
    assert sizes[0] == 256 and dense[0] < min(tiled[0], band[0])
    assert (dense[1:] > np.maximum(tiled[1:], band[1:])).all()  # slowest from 512 on
    slope = lambda y: np.polyfit(np.log(sizes[-3:]), np.log(y[-3:]), 1)[0]
    assert slope(dense) > 1.9 and 0.8 < slope(band) < 1.1
    assert slope(band) < slope(tiled) < slope(dense)

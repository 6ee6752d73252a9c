"""Claims of lesson 14 (FlashAttention: tiling, the online softmax, the IO argument),
recomputed from the package with the lesson's rows, sizes and seeds.

The IO claims use the simulator of attention_np.efficient.io_model at the lesson's
sizes (N = 2048, d = 64, S = 2^16 unless varied). Timings cannot be re-measured by a
test; the last tests check that the committed benchmarks/results/14_flash_attention_
tiling.json, which the lesson plots, still shows what its prose says about it.
"""

import json
from pathlib import Path

import numpy as np

from attention_np import attention_backward, attention_forward
from attention_np.efficient import (
    block_attention_forward,
    flash_attention_backward,
    flash_attention_forward,
    flash_attention_reference,
    online_softmax_step,
    peak_bytes,
)
from attention_np.efficient.io_model import (
    standard_attention_io,
    theorem2_bounds,
    tiled_attention_io,
)
from attention_np.efficient.tiles import blocks, tile_schedule

BENCH = Path(__file__).resolve().parents[1] / "benchmarks/results"
ROW = np.array([2.0, 1.5, 1.8, 1.2, 0.5, 1.9, 1.0, 0.3, 5.0, 0.2, -1.0, 0.4])
N0, D0, S0 = 2048, 64, 2**16


def io_total(schedule, N, d, S):
    return schedule(N, d, S, causal=False)[1].total


def test_the_running_sum_drops_when_a_block_raises_the_max():
    m, l, sums = -np.inf, 0.0, []
    for cols in blocks(ROW.size, 4):
        m, l = online_softmax_step(m, l, ROW[cols])
        sums.append(l)
    np.testing.assert_allclose(sums, [2.875, 4.553, 1.247], atol=1e-3)
    assert m == 5.0 and np.isclose(l, np.exp(ROW - 5.0).sum())


def test_partial_results_merge_exactly_through_their_log_sum_exps():
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal((6, 8)),
        rng.standard_normal((10, 8)),
        rng.standard_normal((10, 8)),
    )
    out_a, a = block_attention_forward(q, k[:4], v[:4], causal=False)
    out_b, b = block_attention_forward(q, k[4:], v[4:], causal=False)
    lse = np.logaddexp(a.lse, b.lse)
    merged = np.exp(a.lse - lse)[:, None] * out_a + np.exp(b.lse - lse)[:, None] * out_b
    np.testing.assert_allclose(
        merged, attention_forward(q, k, v, causal=False)[0], atol=1e-12
    )


def test_the_plain_loop_and_the_optimised_kernel_are_exactly_standard_attention():
    rng = np.random.default_rng(1)
    q, k, v = (
        rng.standard_normal((50, 16)),
        rng.standard_normal((70, 16)),
        rng.standard_normal((70, 12)),
    )
    for causal in (False, True):
        standard, _ = attention_forward(q, k, v, causal=causal)
        for bq, bk in [(1, 1), (7, 13), (16, 32)]:
            ref, ref_cache = flash_attention_reference(
                q, k, v, causal=causal, block_q=bq, block_k=bk
            )
            fast, cache = flash_attention_forward(
                q, k, v, causal=causal, block_q=bq, block_k=bk
            )
            np.testing.assert_allclose(ref, standard, atol=1e-12)
            np.testing.assert_allclose(fast, standard, atol=1e-12)
            np.testing.assert_allclose(ref_cache.lse, cache.lse, atol=1e-12)


def test_tiled_io_falls_almost_like_one_over_s_within_theorem_2s_order():
    S = np.array([2**e for e in range(11, 18)])  # d^2 / 2 ... N d
    tiled = np.array([io_total(tiled_attention_io, N0, D0, s) for s in S])
    slope = np.polyfit(np.log(S), np.log(tiled), 1)[0]
    assert -0.95 < slope < -0.8
    ratio = tiled / np.array([theorem2_bounds(N0, D0, s)[1] for s in S])
    assert ratio.min() > 5 and ratio.max() < 11  # Theta(N^2 d^2 / S)


def test_standard_io_is_about_4_n_squared_once_s_is_many_d_squared():
    for S in (2**16, 2**17):  # 16 and 32 d^2
        assert 1.0 < io_total(standard_attention_io, N0, D0, S) / (4 * N0**2) < 1.2
    assert io_total(standard_attention_io, N0, D0, 2**11) > 3 * 4 * N0**2  # S = d^2/2


def test_tiling_pays_only_when_s_is_above_about_d_squared():
    ratio = {
        S: io_total(standard_attention_io, N0, D0, S)
        / io_total(tiled_attention_io, N0, D0, S)
        for S in (2**10, 2**11, 2**16)
    }
    assert ratio[2**10] < 1 < ratio[2**11] < 1.2  # S = d^2/4, d^2/2
    assert 9 < ratio[2**16] < 10  # S = 16 d^2


def test_standard_over_tiled_grows_with_n_then_levels_off():
    sizes = [256, 512, 1024, 2048, 4096, 8192, 16384]
    ratio = np.array(
        [
            io_total(standard_attention_io, n, D0, S0)
            / io_total(tiled_attention_io, n, D0, S0)
            for n in sizes
        ]
    )
    assert (np.diff(ratio) > 0).all()
    assert ratio[0] < 6 and 10 < ratio[-1] < 11
    assert (
        ratio[-1] / ratio[-2] < 1.02
    )  # levelled off: a constant factor, not an exponent


def test_tiled_io_grows_about_like_d_squared():
    d = np.array([16, 32, 64, 128, 256])
    tiled = np.array([io_total(tiled_attention_io, N0, x, S0) for x in d])
    slope = np.polyfit(np.log(d), np.log(tiled), 1)[0]
    assert 1.6 < slope < 2.0


def test_causal_tiles_cover_one_half_plus_block_q_over_2n():
    n = 1024
    for bq in (64, 128, 512):
        tiles = tile_schedule(n, n, bq, 256, causal=True)
        area = sum((r.stop - r.start) * (c.stop - c.start) for r, c, _ in tiles) / n**2
        assert area == 0.5 + bq / (2 * n)


def test_tiled_memory_at_16384_is_below_a_quarter_of_standard_at_4096():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((4096, 64)).astype(np.float32) for _ in range(3))
    standard = peak_bytes(lambda: attention_forward(q, k, v, causal=False))
    q, k, v = (rng.standard_normal((16384, 64)).astype(np.float32) for _ in range(3))
    tiled = peak_bytes(
        lambda: flash_attention_forward(q, k, v, causal=False, workers=1)
    )
    assert tiled < standard / 4 and tiled < 6 * 2**20


def test_the_backward_by_recomputation_equals_the_standard_backward():
    rng = np.random.default_rng(3)
    q, k, v = (
        rng.standard_normal((2, 3, 37, 8)),
        rng.standard_normal((2, 3, 29, 8)),
        rng.standard_normal((2, 3, 29, 5)),
    )
    out, cache = flash_attention_forward(q, k, v, causal=True, block_q=8, block_k=16)
    _, ref = attention_forward(q, k, v, causal=True)
    dout = rng.standard_normal(out.shape)
    for g, g_ref in zip(
        flash_attention_backward(dout, cache),
        attention_backward(dout, ref),
        strict=True,
    ):
        np.testing.assert_allclose(g, g_ref, atol=1e-12)


def bench_file():
    return json.loads((BENCH / "14_flash_attention_tiling.json").read_text())


def test_benchmark_file_the_optimised_kernel_beats_the_loop_and_tiny_tiles_are_slow():
    rows = bench_file()["reference_vs_optimised"]["rows"]
    for row in rows:
        assert row["optimised"]["cpu_s"] < row["reference"]["cpu_s"]
    slowest = max(rows, key=lambda r: r["reference"]["cpu_s"])
    assert slowest["tiles"] == [16, 16]


def test_benchmark_file_causal_tiling_beats_standard_and_64_tiles_are_slowest():
    rows = bench_file()["tile_sizes"]["rows"]
    standard = rows["standard"]
    tiled = {name: r for name, r in rows.items() if name != "standard"}
    for r in tiled.values():  # with a causal mask every tiled variant is faster
        assert r["causal"]["cpu_s"] < standard["causal"]["cpu_s"]
    no_mask = {name: r["no mask"]["cpu_s"] for name, r in rows.items()}
    assert max(no_mask, key=no_mask.get) == "tiles 64x64"
    for name in ("tiles 128x256", "tiles 256x512", "tiles 256x1024"):
        assert no_mask[name] < 1.05 * no_mask["standard"]  # close to or below

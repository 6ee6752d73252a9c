"""Claims of lesson 13 (the quadratic wall), recomputed from the package.

Timings cannot be re-measured by a test; the lesson reads them from the committed
benchmarks/results/13_the_quadratic_wall.json, and the last tests check that this
file still shows what the prose says about it (re-running the benchmark on another
machine may change that, and then the prose must change too). The memory claims are
recomputed, because tracemalloc's peak depends only on the shapes. Sizes as in the
lesson.
"""

import json
from functools import partial
from pathlib import Path

import numpy as np

from attention_np import attention_backward, attention_forward
from attention_np.efficient import peak_bytes

BENCH = Path(__file__).resolve().parents[1] / "benchmarks/results"
MEM_SIZES = [1024, 2048, 4096]  # the sizes the lesson fits (N >= 1024), d = 64


def peaks():
    rng = np.random.default_rng(0)
    out = []
    for n in MEM_SIZES:
        q, k, v = (rng.standard_normal((n, 64)).astype(np.float32) for _ in range(3))
        call = partial(attention_forward, q, k, v, causal=False)
        call()  # warm-up: a first call also starts the worker thread pool
        out.append(peak_bytes(call))
    return np.array(out)


def test_one_layer_of_32_heads_at_128k_tokens_needs_a_tebibyte_of_bf16_scores():
    assert 32 * 131_072**2 * 2 == 2**40
    assert 32 * 4 * 131_072**2 * 128 > 2.8e14  # 4 N^2 d flops per head, d = 128


def test_peak_memory_is_the_score_matrix_plus_three_to_four_n_by_d_arrays():
    p = peaks()
    n = np.array(MEM_SIZES)
    extra = (p - 4 * n**2) / (n * 64 * 4)  # in (N, d) float32 arrays
    assert ((extra > 3.0) & (extra < 4.1)).all()


def test_the_fitted_memory_exponent_is_below_2_so_the_fit_falls_below_the_floor():
    p = peaks()
    coef = np.polyfit(np.log(MEM_SIZES), np.log(p), 1)
    assert 1.7 < coef[0] < 1.95
    for n in [16_384, 65_536, 262_144]:
        assert np.exp(np.polyval(coef, np.log(n))) < 4 * n * n  # the scores alone


def test_the_cache_keeps_the_n_by_n_weights_n_over_d_times_the_output():
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal((1, 4, 1024, 64)).astype(np.float32) for _ in range(3)
    )
    out, cache = attention_forward(q, k, v, causal=False)
    assert cache.p.shape == (1, 4, 1024, 1024)
    assert cache.p.nbytes == 1024 // 64 * out.nbytes
    grads = attention_backward(rng.standard_normal(out.shape).astype(np.float32), cache)
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]


def test_causal_standard_attention_computes_every_score():
    """Why a causal mask does not make the core faster: the cache holds all N^2."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((256, 16)) for _ in range(3))
    _, plain = attention_forward(q, k, v, causal=False)
    _, causal = attention_forward(q, k, v, causal=True)
    assert causal.p.shape == plain.p.shape == (256, 256)
    assert (causal.p[np.triu_indices(256, 1)] == 0).all()  # computed, then masked


def cpu_seconds(records):
    return np.array([r["cpu_s"] for r in records])


def slope(sizes, times):
    return np.polyfit(np.log(sizes), np.log(times), 1)[0]


def test_benchmark_file_the_two_products_are_a_growing_majority_of_the_forward():
    bench = json.loads((BENCH / "13_the_quadratic_wall.json").read_text())
    sizes = np.array(bench["sizes"])
    forward, products = cpu_seconds(bench["forward"]), cpu_seconds(bench["products"])
    share = products / forward
    assert (share > 0.5).all() and (np.diff(share) > 0).all()
    assert forward[1] / forward[0] < 4  # N = 128 -> 256: less than 4-fold
    for times in (forward, products):  # fitted from N = 512 on, as in the lesson
        assert 1.9 < slope(sizes[2:], times[2:]) < 2.3


def test_benchmark_file_tiling_is_faster_but_quadratic_linear_and_window_near_1():
    bench = json.loads((BENCH / "13_the_quadratic_wall.json").read_text())
    sizes = np.array(bench["ways_sizes"])
    ways = {name: cpu_seconds(ts) for name, ts in bench["ways"].items()}
    assert (ways["tiled (flash)"] < ways["standard"]).all()
    slopes = {name: slope(sizes[-3:], ts[-3:]) for name, ts in ways.items()}
    assert 1.8 < slopes["standard"] < 2.2 and 1.8 < slopes["tiled (flash)"] < 2.2
    assert 0.8 < slopes["linear (chunkwise 64)"] < 1.2
    assert 0.8 < slopes["sliding window w=256"] < 1.2

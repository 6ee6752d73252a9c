"""Claims of lesson 13 (the quadratic wall), recomputed from the package.

Timings are not claims a test can check (they live in
benchmarks/results/13_the_quadratic_wall.json); the memory claims are, because
tracemalloc's peak depends only on the shapes. Sizes as in the lesson.
"""

from functools import partial

import numpy as np

from attention_np import attention_backward, attention_forward
from attention_np.efficient import peak_bytes

MEM_SIZES = [1024, 2048, 4096]  # the sizes the lesson fits (N >= 1024), d = 64


def peaks():
    rng = np.random.default_rng(0)
    out = []
    for n in MEM_SIZES:
        q, k, v = (rng.standard_normal((n, 64)).astype(np.float32) for _ in range(3))
        out.append(peak_bytes(partial(attention_forward, q, k, v, causal=False)))
    return np.array(out)


def test_one_layer_of_32_heads_at_128k_tokens_needs_a_tebibyte_of_bf16_scores():
    assert 32 * 131_072**2 * 2 == 2**40
    assert 32 * 4 * 131_072**2 * 128 > 2.8e14  # 4 N^2 d flops per head, d = 128


def test_peak_memory_is_the_score_matrix_plus_about_three_n_by_d_arrays():
    p = peaks()
    n = np.array(MEM_SIZES)
    extra = (p - 4 * n**2) / (n * 64 * 4)  # in (N, d) float32 arrays
    assert ((extra > 3.0) & (extra < 3.3)).all()


def test_the_fitted_memory_exponent_is_below_2_so_the_fit_falls_below_the_floor():
    p = peaks()
    coef = np.polyfit(np.log(MEM_SIZES), np.log(p), 1)
    assert 1.85 < coef[0] < 1.95
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

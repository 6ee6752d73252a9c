"""Claims of lesson 15 (linear attention, random features), recomputed from the package.

The random-feature curves use the lesson's data (N = 64, d = 16, q, k, v drawn from
default_rng(100), q and k scaled by sigma) and 8 draws per point, but only some of its
feature counts m, each from its own seed, so the numbers differ a little from the
printed ones while the claims are the same (they hold for every seed tried).

Timings cannot be re-measured by a test; the last test checks that the committed
benchmarks/results/15_linear_attention.json, which the lesson plots, still shows the
crossovers its prose describes.
"""

import json
from pathlib import Path

import numpy as np

from attention_np import attention_forward, attention_weights
from attention_np.efficient import (
    favor_omega,
    linear_attention_backward,
    linear_attention_forward,
    linear_attention_weights,
)
from attention_np.efficient.feature_maps import FEATURE_MAPS
from attention_np.efficient.random_features import (
    kernel_estimates,
    output_error,
    softmax_kernel_mse,
)

D = 16


def lesson_data(sigma, N=64):
    r = np.random.default_rng(100)
    q, k, v = (r.standard_normal((N, D)) for _ in range(3))
    return sigma * q, sigma * k, v


def errors(sigma, kind, orthogonal, counts, seed):
    q, k, v = lesson_data(sigma)
    rng = np.random.default_rng(seed)
    return output_error(
        q,
        k,
        v,
        counts,
        kind=kind,
        orthogonal=orthogonal,
        draws=8,
        rng=rng,
        causal=False,
    )


def unit_pair(angle):
    x, y = np.zeros(D), np.zeros(D)
    x[0], y[:2] = 1.0, (np.cos(angle), np.sin(angle))
    return x * D**0.25, y * D**0.25  # |x'| = |y'| = 1


def test_rebracketing_gives_the_dense_formula_with_4_n_d_squared_flops():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((300, D)) for _ in range(3))
    phi = FEATURE_MAPS["elu+1"][0]
    a = phi(q)[0] @ phi(k)[0].T
    dense = a @ v / (a.sum(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(
        linear_attention_forward(q, k, v, causal=False)[0], dense, atol=1e-12
    )
    n = 16_384
    assert (2 * n * n * D + 2 * n * n * D) / (4 * n * D * D) == n / D


def test_parallel_recurrent_and_chunkwise_forms_agree_forward_and_backward():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 64, D)) for _ in range(3))
    ref, ref_cache = linear_attention_forward(q, k, v, causal=True, form="parallel")
    rnn, rnn_cache = linear_attention_forward(q, k, v, causal=True, form="recurrent")
    np.testing.assert_allclose(rnn, ref, atol=1e-12)
    for chunk in [1, 5, 16, 64, 100]:
        out, _ = linear_attention_forward(
            q, k, v, causal=True, form="chunkwise", chunk_size=chunk
        )
        np.testing.assert_allclose(out, ref, atol=1e-12)
    dout = rng.standard_normal(ref.shape)
    for a, b in zip(
        linear_attention_backward(dout, rnn_cache),
        linear_attention_backward(dout, ref_cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_lemma2_matches_monte_carlo_and_positive_features_win_past_about_100_degrees():
    angles = np.linspace(np.pi / 12, 11 * np.pi / 12, 11)
    pos = np.array(
        [softmax_kernel_mse(*unit_pair(a), 16, kind="positive") for a in angles]
    )
    trig = np.array(
        [softmax_kernel_mse(*unit_pair(a), 16, kind="trig") for a in angles]
    )
    first = angles[np.argmax(pos < trig)]
    assert np.degrees(first) == 105 and (pos < trig)[angles >= first].all()
    for angle in (np.pi / 2, 3 * np.pi / 4):
        x, y = unit_pair(angle)
        exact = np.exp(x @ y / 4)
        for kind in ("positive", "trig"):
            e = kernel_estimates(
                x,
                y,
                16,
                kind=kind,
                orthogonal=False,
                draws=4000,
                rng=np.random.default_rng(5),
            )
            mse = np.mean((e - exact) ** 2)
            np.testing.assert_allclose(
                mse, softmax_kernel_mse(x, y, 16, kind=kind), rtol=0.15
            )


def test_orthogonal_features_lower_the_kernel_error():
    """Trig at every angle tried, by at least a fifth; positive past 90 degrees (at
    smaller angles its heavy-tailed errors make 4000-draw estimates cross)."""
    cases = [("trig", 60, 0.8), ("trig", 105, 0.8), ("trig", 150, 0.8)]
    cases += [("positive", 105, 0.95), ("positive", 150, 0.98)]
    for kind, degrees, below in cases:
        x, y = unit_pair(np.radians(degrees))
        exact = np.exp(x @ y / 4)
        iid, orth = (
            np.mean(
                (
                    kernel_estimates(
                        x,
                        y,
                        16,
                        kind=kind,
                        orthogonal=o,
                        draws=4000,
                        rng=np.random.default_rng(7),
                    )
                    - exact
                )
                ** 2
            )
            for o in (False, True)
        )
        assert orth < below * iid, (kind, degrees)


def test_output_error_falls_like_one_over_sqrt_m_for_small_scores():
    counts = [16, 256, 4096]
    for j, (kind, orth) in enumerate(
        [(k, o) for k in ("positive", "trig") for o in (0, 1)]
    ):
        err = errors(0.5, kind, bool(orth), counts, seed=j)
        slope = np.polyfit(np.log(counts), np.log(err), 1)[0]
        assert -0.6 < slope < -0.38, (kind, orth, slope)


def test_at_unit_scores_and_few_features_trig_errors_dwarf_positive_ones_and_output():
    """m = 16, 64, 256 are the first counts of the lesson's list, drawn from the same
    seeds, so these are the lesson's printed numbers (ratios 24.6, 10.0, 8.2)."""
    q, k, v = lesson_data(1.0)
    size = np.abs(attention_forward(q, k, v, causal=False)[0]).mean()
    counts = [16, 64, 256]
    trig = errors(1.0, "trig", False, counts, seed=2)
    pos = errors(1.0, "positive", False, counts, seed=0)
    assert (trig > 8 * pos).all() and (trig < 25 * pos).all()  # "8 to 25 times"
    assert (trig > 5 * size).all()  # several times the output's mean size
    assert pos[0] > size and (pos < 1.5 * size).all()


def test_orthogonal_features_lower_the_attention_error_of_both_kinds_at_small_scores():
    """The lesson's first three feature counts and seeds (its printed numbers): at
    sigma = 0.5 orthogonal draws are 40-46% below i.i.d. for trig, 6-20% for
    positive."""
    counts = [16, 64, 256]
    for kind, seeds, low, high in [
        ("positive", (0, 1), 0.05, 0.21),
        ("trig", (2, 3), 0.39, 0.47),
    ]:
        iid = errors(0.5, kind, False, counts, seed=seeds[0])
        orth = errors(0.5, kind, True, counts, seed=seeds[1])
        gain = 1 - orth / iid
        assert ((gain > low) & (gain < high)).all(), (kind, gain)


def test_at_unit_scores_positive_orthogonal_and_iid_errors_cross_at_256_features():
    counts = [16, 64, 256]
    iid = errors(1.0, "positive", False, counts, seed=0)
    orth = errors(1.0, "positive", True, counts, seed=1)
    assert (orth[:2] < iid[:2]).all() and orth[2] > iid[2]
    trig_iid = errors(1.0, "trig", False, counts, seed=2)
    trig_orth = errors(1.0, "trig", True, counts, seed=3)
    assert (trig_orth < trig_iid).all()


def test_with_nearly_uniform_attention_trig_features_are_the_more_accurate():
    counts = [16, 256, 4096]
    trig = errors(0.5, "trig", False, counts, seed=2)
    pos = errors(0.5, "positive", False, counts, seed=0)
    assert (trig < pos).all()


def test_favor_plus_with_4096_features_misses_softmax_by_over_a_fifth_of_a_weight():
    """The lesson's 12 tokens at unit variance: 27% of the mean weight at m = 4096.
    Its q, k come late in its random stream; here five seeds of the same sizes."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        q, k = rng.standard_normal((12, D)), rng.standard_normal((12, D))
        exact = attention_weights(q, k, causal=False)
        omega = favor_omega(D, 4096, rng=np.random.default_rng(3))
        favor = linear_attention_weights(
            q, k, feature_map="favor+", omega=omega, causal=False
        )
        assert np.abs(favor - exact).mean() * 12 > 0.2


def test_benchmark_file_linear_forms_overtake_softmax_at_the_stated_lengths():
    path = (
        Path(__file__).resolve().parents[1]
        / "benchmarks/results/15_linear_attention.json"
    )
    bench = json.loads(path.read_text())
    sizes = np.array(bench["sizes"])
    times = {
        name: np.array([np.nan if t is None else t["cpu_s"] for t in ts])
        for name, ts in bench["times"].items()
    }
    soft = times["softmax (attention_forward)"]

    def first_win_for_good(ts):
        ran = np.isfinite(ts)
        wins = ts[ran] < soft[ran]
        stays = [n for i, n in enumerate(sizes[ran]) if wins[i:].all()]
        return stays[0] if stays else None

    assert first_win_for_good(times["linear, non-causal"]) == 128  # near N = d = 64
    assert first_win_for_good(times["linear causal, chunkwise 64"]) == 512
    assert first_win_for_good(times["linear causal, recurrent"]) is None
    for name in ("linear, non-causal", "linear causal, chunkwise 64"):
        assert 3.5 < times[name][-1] / times[name][-3] < 4.5  # N x4: about x4
    assert 15 < soft[-1] / soft[-3] < 19  # about x16, like N^2

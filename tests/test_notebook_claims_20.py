"""Claims in notebooks/20_gated_linear_recurrences.ipynb, recomputed from the package
with the notebook's seeds. Nothing is timed here: the speed and MQAR-sweep claims are
checked against the committed results the lesson reads
(benchmarks/results/recurrences.json and mqar.json)."""

import json
from pathlib import Path

import numpy as np

from attention_np import recurrences as R
from attention_np.recurrences import decay


def _section_one_inputs():
    """The notebook's first arrays, drawn in its order from default_rng(0)."""
    rng = np.random.default_rng(0)
    B, H, N, d_k, d_v = 2, 3, 24, 8, 5
    q = rng.standard_normal((B, H, N, d_k))
    k = rng.standard_normal((B, H, N, d_k))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((B, H, N, d_v))
    log_a = -rng.uniform(0.01, 0.3, (B, H, N))
    log_a_ch = -rng.uniform(0.01, 0.3, (B, H, N, d_k))
    beta = rng.uniform(0.2, 0.9, (B, H, N))
    S0 = rng.standard_normal((B, H, d_k, d_v))
    return q, k, v, log_a, log_a_ch, beta, S0


def test_every_form_of_every_model_agrees_to_rounding():
    """Section 3: 'max |parallel - recurrent|' and '... chunkwise ...' below 1e-10."""
    q, k, v, log_a, log_a_ch, beta, S0 = _section_one_inputs()
    models = [
        (R.linear_attn_forward, R.linear_attn_backward, (q, k, v)),
        (R.retention_forward, R.retention_backward, (q, k, v)),
        (R.gla_forward, R.gla_backward, (q, k, v, log_a_ch)),
        (R.mamba2_forward, R.mamba2_backward, (q, k, v, log_a)),
        (R.deltanet_forward, R.deltanet_backward, (q, k, v, beta)),
        (R.gated_deltanet_forward, R.gated_deltanet_backward, (q, k, v, log_a, beta)),
    ]
    dout = np.random.default_rng(1).standard_normal(q.shape[:-1] + (v.shape[-1],))
    for fwd, bwd, arrays in models:
        ref, ref_cache = fwd(*arrays, S0, form="recurrent")
        ref_grads = bwd(dout, ref_cache)
        for form in ("parallel", "chunkwise"):
            out, cache = fwd(*arrays, S0, form=form, chunk_size=5)
            assert np.abs(out - ref).max() < 1e-10
            for a, b in zip(bwd(dout, cache), ref_grads, strict=True):
                assert np.abs(a - b).max() < 1e-10


def test_online_regression_claims():
    """Section 2: the delta rule converges (error 0.03 after 400 pairs), the sum rule
    overshoots by about t / d_k = 25, a decay caps the error near its plateau."""
    reg = np.random.default_rng(19)
    dk, dv, T = 16, 8, 400
    M = reg.standard_normal((dk, dv))
    K = reg.standard_normal((1, T, dk))
    K /= np.linalg.norm(K, axis=-1, keepdims=True)
    V = K @ M + 0.05 * reg.standard_normal((1, T, dv))
    K_test = reg.standard_normal((256, dk)) / np.sqrt(dk)

    def error(cache):
        diff = K_test @ (cache.final_state - M)
        return np.linalg.norm(diff) / np.linalg.norm(K_test @ M)

    ones = np.ones((1, T))
    lin = error(R.linear_attn_forward(K, K, V)[1])
    ret = error(R.retention_forward(K, K, V, gamma=0.95)[1])
    delta = error(R.deltanet_forward(K, K, V, 0.5 * ones)[1])
    gated = error(R.gated_deltanet_forward(K, K, V, np.log(0.99) * ones, 0.5 * ones)[1])
    assert 0.8 * T / dk < lin < 1.2 * T / dk
    assert delta < 0.05 < gated < ret < 1.0


def test_log_space_claims():
    """Section 3: e^b_i e^-b_j is NaN after 1,000 tokens of alpha = e^-1; the
    difference gives e^-1; the Mamba-2 reset leaves less than 1e-3 across it."""
    b = np.cumsum(np.full(1000, -1.0))
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(np.exp(b[-1]) * np.exp(-b[-2]))
    assert np.isclose(np.exp(b[-1] - b[-2]), np.exp(-1.0))
    mrng = np.random.default_rng(9)
    g = np.log(mrng.uniform(0.75, 0.98, (16, 1)))
    g[9] = np.log(1e-3)
    b_m2 = np.cumsum(g, axis=0)
    D = decay.decay_matrix(b_m2, b_m2, np.tril(np.ones((16, 16), dtype=bool)))
    assert D[12, 5] < 1e-3 and np.all(D[9:, :9] <= 1e-3 * (1 + 1e-12))


def test_deltanet_implicit_attention_is_causal_with_negative_entries():
    """Section 3: 'its implicit attention matrix ... has negative entries'."""
    mrng = np.random.default_rng(9)
    mrng.uniform(0.75, 0.98, (16, 1))  # the Mamba-2 gates drawn first
    qd, kd = mrng.standard_normal((16, 4)), mrng.standard_normal((16, 4))
    kd /= np.linalg.norm(kd, axis=-1, keepdims=True)
    W = R.deltanet_forward(qd, kd, np.eye(16), np.full(16, 0.9), scale=1.0)[0]
    assert W.min() < -1.0 and np.all(np.triu(W, 1) == 0)


def test_gated_deltanet_at_16k_tokens_is_finite_in_float32():
    """Section 3: N = 16384, float32, strong decays: finite outputs and gradients."""
    long = np.random.default_rng(16384)
    x = [long.standard_normal((1, 2, 16384, 16)).astype(np.float32) for _ in range(3)]
    x[1] /= np.linalg.norm(x[1], axis=-1, keepdims=True)
    g = -long.uniform(2.0, 8.0, (1, 2, 16384)).astype(np.float32)
    beta = long.uniform(0.0, 1.0, (1, 2, 16384)).astype(np.float32)
    with np.errstate(over="raise", invalid="raise"):
        out, cache = R.gated_deltanet_forward(*x, g, beta)
        grads = R.gated_deltanet_backward(np.ones_like(out), cache)
    assert g.sum(-1).min() < -8e4
    assert np.isfinite(out).all() and all(np.isfinite(a).all() for a in grads)


# --- section 5: MQAR (the small run, and the committed sweep) ------------------------

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def test_the_small_mqar_run_learns_with_both_mixers_attention_first():
    """Section 5: attention and Gated DeltaNet both reach > 0.9 accuracy at 4 and 8
    pairs in 600 steps, and attention's loss drops below 1 first."""
    first_below_1 = {}
    for mixer in ("attention", "gated_deltanet"):
        _, losses, acc = R.train_mqar([4, 8], {"mixer": mixer, "n_heads": 2}, steps=600,
                                      lr=1e-2, rng=np.random.default_rng(0), d_model=32,
                                      vocab_size=32, batch=16)  # fmt: skip
        assert min(acc.values()) > 0.9
        smooth = np.convolve(losses, np.ones(20) / 20, "valid")
        first_below_1[mixer] = np.flatnonzero(smooth < 1.0)[0]
        assert smooth[:10].min() > 2.5  # it starts on the plateau
    assert first_below_1["attention"] < first_below_1["gated_deltanet"]


def _mqar():
    record = json.loads((RESULTS / "mqar.json").read_text())
    acc = {m: {int(n): a for n, a in r["accuracy"].items()}
           for m, r in record["mixers"].items()}  # fmt: skip
    return record, acc


def test_mqar_sweep_claims():
    """Section 5's reading of benchmarks/results/mqar.json."""
    record, acc = _mqar()
    pairs = record["settings"]["pairs"]
    recurrences = ["linear_attn", "retention", "gla", "mamba2", "deltanet"]
    assert min(acc["attention"].values()) >= 0.99  # answers every count
    sizes = {
        r["state_per_layer"] for m, r in record["mixers"].items() if m != "attention"
    }
    assert sizes == {512}
    for m in recurrences:  # the five that learned: falling from 16 pairs on
        tail = [acc[m][n] for n in pairs if n >= 16]
        assert acc[m][min(pairs)] > 0.9
        assert all(a >= b for a, b in zip(tail[:-1], tail[1:], strict=True))
    for n in (32, 48):  # RetNet and DeltaNet the lowest of the five
        lowest = sorted(recurrences, key=lambda m: acc[m][n])[:2]
        assert set(lowest) == {"retention", "deltanet"}
    for n in pairs[1:]:  # linear attention best recurrence from 8 pairs on
        assert acc["linear_attn"][n] == max(acc[m][n] for m in recurrences)
        assert acc["deltanet"][n] < acc["linear_attn"][n]
    assert max(acc["gated_deltanet"].values()) <= 0.08  # "at most 8%"
    losses = {m: r["loss_every_50"] for m, r in record["mixers"].items()}
    assert min(losses["gated_deltanet"]) > 3.0
    left = [next(i for i, x in enumerate(losses[m]) if x < 3.0) for m in recurrences]
    assert left == sorted(left) and left[0] >= 10  # hundreds of steps on the plateau
    assert left[-1] > left[-2]  # "DeltaNet left the loss plateau last of the five"


# --- section 6: the committed speed benchmark -----------------------------------------


def test_speed_claims_from_the_committed_benchmark():
    """Section 6's reading of benchmarks/results/recurrences.json."""
    record = json.loads((RESULTS / "recurrences.json").read_text())
    smallest = min(record["settings"]["sizes"])
    models = record["models"].values()
    for r in models:
        assert r["crossovers"]["chunkwise<recurrent"] == smallest
        assert r["crossovers"]["chunkwise<parallel"] == smallest
        assert r["crossovers"]["parallel<recurrent"] is None
        for n, t in r["ms"]["parallel"].items():  # never the fastest form
            assert t > r["ms"]["chunkwise"][n]
        assert 0.9 < r["slopes"]["recurrent"] < 1.2
        assert 1.2 < r["slopes"]["parallel"] < 2.0  # "below 2 at these lengths"
    for r in models:  # "beats the token loop up to a few thousand tokens"
        beats = [int(n) for n, t in r["ms"]["parallel"].items()
                 if t < r["ms"]["recurrent"][n]]  # fmt: skip
        assert beats and 2048 <= max(beats) <= 4096
        assert all(int(n) <= max(beats) for n in beats)  # "and loses beyond"
    ratios = {
        m: r["recurrent_over_chunkwise_4096"] for m, r in record["models"].items()
    }
    fast = ("linear_attn", "retention", "mamba2")
    assert (
        round(min(ratios[m] for m in fast)),
        round(max(ratios[m] for m in fast)),
    ) == (18, 22)  # "18 to 22 times"
    assert max(ratios, key=ratios.get) == "linear_attn"  # "to 22x (linear attention)"
    # "14 times for GLA, 13 times for DeltaNet and 10 times for Gated DeltaNet"
    assert [round(ratios[m]) for m in ("gla", "deltanet", "gated_deltanet")] == [
        14,
        13,
        10,
    ]
    # "holds for every model, for Gated DeltaNet by the least margin (10.4x; 10.4 to
    # 10.6 in each of the three rounds)"
    assert (
        min(ratios.values()) >= 10 and min(ratios, key=ratios.get) == "gated_deltanet"
    )
    assert f"{ratios['gated_deltanet']:.1f}" == "10.4"  # as the table prints it
    gdn_rounds = record["models"]["gated_deltanet"]["by_round"]
    each = gdn_rounds["recurrent_over_chunkwise_4096"]
    assert len(each) == record["settings"]["rounds"] == 3
    assert (round(min(each), 1), round(max(each), 1)) == (10.4, 10.6)
    growth = [r["chunkwise_16384_over_4096"] for r in models]
    assert (round(min(growth), 1), round(max(growth), 1)) == (3.7, 4.4)

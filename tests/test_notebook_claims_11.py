"""Claims of lesson 11 (KV cache and grouped queries), computed from the package.

Each test re-computes one sentence of notebooks/11_kv_cache_and_grouped_queries.ipynb
with the lesson's sizes and seeds, from the committed reversal checkpoint; the notebook
itself is not executed. One test retrains the lesson's MQA model (400 steps, a few
seconds); the whole file stays well under 20 s on one core. Wall-clock times are not
claims: the lesson prints them from benchmarks/results/decoding.json.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from attention_np import attention_backward, attention_forward, causal_mask
from attention_np.additive import (
    additive_attention_forward,
    init_additive_params,
    luong_attention_forward,
)
from attention_np.analysis import attention_entropy, offset_mass
from attention_np.decoding import (
    KVCache,
    cached_attention,
    gqa_attention_backward,
    gqa_attention_forward,
    kv_cache_bytes,
    repeat_kv,
)
from attention_np.efficient import sliding_window_mask
from attention_np.train import TrainConfig, default_model_config, evaluate, train
from attention_np.train import load_checkpoint as _load
from attention_np.train.probes import ablate_heads
from attention_np.transformer import (
    TransformerConfig,
    init_params,
    model_forward,
    new_kv_caches,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reversal():
    path = ROOT / "checkpoints" / "reversal.npz"
    if not path.exists():
        pytest.skip("checkpoints/reversal.npz is not in this tree")
    ckpt = _load(path)
    return ckpt["params"], ckpt["model_config"], ckpt["train_config"]


def generate(params, config, prompt, n_new, *, weights=None):
    """Greedy cached generation as in section 3: a prefill, then single steps."""
    caches = new_kv_caches(config, batch=len(prompt), dtype=np.float32)
    logits, _ = model_forward(prompt, params, config, kv_caches=caches)
    tokens = [logits[:, -1].argmax(-1)]
    for t in range(prompt.shape[1], prompt.shape[1] + n_new - 1):
        logits, c = model_forward(
            tokens[-1][:, None], params, config, kv_caches=caches, start=t
        )
        tokens.append(logits[:, -1].argmax(-1))
        if weights is not None:
            weights.append(c.weights)
    return np.stack(tokens, axis=1)


def prompts(task):
    L = task.length
    prompt = task.batch(np.random.default_rng(1), 500).inputs[:, : L + 1]
    return prompt, prompt[:, :L][:, ::-1]


def decode_by_hand(align):
    """Section 2: a 3-token prefill, then 5 steps, against full causal attention."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 4, 8, 8))
    full, _ = gqa_attention_forward(q, k, v, causal=True)
    cache, cache2, outs, outs2 = KVCache(1, 4, 8, 8), KVCache(1, 4, 8, 8), [], []
    for new in [slice(0, 3)] + [slice(t, t + 1) for t in range(3, 8)]:
        k_all, v_all = cache.append(k[:, :, new], v[:, :, new])
        out, _ = gqa_attention_forward(
            q[:, :, new], k_all, v_all, causal=True, align=align
        )
        outs.append(out)
        outs2.append(
            cached_attention(
                q[:, :, new], k[:, :, new], v[:, :, new], cache2, causal=True
            )
        )
    return np.concatenate(outs, 2), np.concatenate(outs2, 2), full


def test_a_prefill_then_single_steps_equal_full_causal_attention():
    decoded, through_cached_attention, full = decode_by_hand("bottom_right")
    assert np.abs(decoded - full).max() < 1e-15
    assert np.array_equal(through_cached_attention, decoded)


def test_the_top_left_alignment_breaks_every_step_but_not_the_prefill():
    """Exercise 1's expected answer."""
    decoded, _, full = decode_by_hand("top_left")
    per_row = np.abs(decoded - full).max(axis=(0, 1, 3))
    assert per_row[:3].max() < 1e-15 and per_row[3:].min() > 1


def test_the_decode_step_mask_sees_every_key_bottom_right_only_the_first_top_left():
    np.testing.assert_array_equal(causal_mask(1, 6, align="bottom_right"), True)
    np.testing.assert_array_equal(causal_mask(1, 6)[0], [1, 0, 0, 0, 0, 0])


def test_cached_generation_reverses_all_500_prompts_like_uncached_generation(reversal):
    params, config, task = reversal
    L = task.length
    prompt, answer = prompts(task)
    generated = generate(params, config, prompt, L)
    assert np.all(generated == answer)
    seq, pushed = prompt, 0
    for _ in range(L):
        logits, _ = model_forward(seq, params, config)
        pushed += seq.shape[1]
        seq = np.concatenate([seq, logits[:, -1:].argmax(-1)], axis=1)
    assert np.array_equal(seq[:, L + 1 :], generated)
    assert (pushed, (L + 1) + (L - 1)) == (100, 16)
    cached_scores = (L + 1) ** 2 + sum(range(L + 2, 2 * L + 1))
    assert (cached_scores, sum(n * n for n in range(L + 1, 2 * L + 1))) == (172, 1292)
    D, F = config.d_model, config.d_mlp
    per_position, per_pair = 8 * D * D + 4 * D * F, 4 * D
    assert (per_position, per_pair) == (98_304, 256)
    ratio = (100 * per_position + 1292 * per_pair) / (
        16 * per_position + 172 * per_pair
    )
    assert round(ratio, 1) == 6.3


def test_the_sharpest_layer1_head_reads_the_key_after_the_mirrored_digit(reversal):
    params, config, task = reversal
    L = task.length
    step_weights = []
    generate(params, config, prompts(task)[0], L, weights=step_weights)
    ent = np.stack(
        [attention_entropy(w[1, :, :, 0]).mean(axis=0) for w in step_weights]
    )
    log_t = np.log(np.arange(L + 2, 2 * L + 1))
    assert round(np.max(ent / log_t[:, None]), 2) == 0.27
    sharpest = ent.mean(axis=0).argmin()
    mass = [
        np.mean(
            [
                offset_mass(w[1], 2 * L - 1 - 2 * t + shift)[..., 0].mean(axis=0)
                for t, w in zip(range(L + 1, 2 * L), step_weights, strict=True)
            ],
            axis=0,
        )
        for shift in (0, 1)
    ]
    mirror, after = mass
    assert sharpest == 2 and after[2] > 0.95 and mirror[2] < 0.02
    assert mirror.argmax() == 0 and round(mirror[0], 2) == 0.72


def test_generation_needs_layer1_head2_and_none_of_the_others(reversal):
    """Exercise 5's expected answer."""
    params, config, task = reversal
    prompt, answer = prompts(task)
    exact = []
    for h in range(4):
        generated = generate(ablate_heads(params, config, 1, [h]), config, prompt, 8)
        exact.append(np.mean(np.all(generated == answer, axis=1)))
        if h == 2:
            assert round(np.mean(generated == answer), 3) == 0.868
    assert exact == [1.0, 1.0, 0.408, 1.0]


def test_gqa_equals_mha_with_repeated_kv_and_the_shared_key_gradient_is_the_sum():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 8, 6, 8))
    k, v = rng.standard_normal((2, 1, 2, 6, 8))
    out_gqa, gqa_cache = gqa_attention_forward(q, k, v, causal=True)
    out_mha, mha_cache = attention_forward(
        q, repeat_kv(k, 8), repeat_kv(v, 8), causal=True
    )
    assert np.array_equal(out_gqa, out_mha)
    dout = rng.standard_normal(out_gqa.shape)
    _, dk, _ = gqa_attention_backward(dout, gqa_cache)
    _, dk_rep, _ = attention_backward(dout, mha_cache)
    np.testing.assert_allclose(
        dk, dk_rep.reshape(1, 2, 4, 6, 8).sum(axis=2), atol=1e-14
    )


def test_the_kv_cache_of_a_llama2_7b_sized_model_and_exercise_4():
    gib = [kv_cache_bytes(32, G, 128, 4096, 1) / 2**30 for G in (32, 8, 4, 1)]
    assert gib == [2.0, 0.5, 0.25, 0.0625]
    assert kv_cache_bytes(80, 8, 128, 131072) == 40 * 2**30  # exercise 4


def test_an_mqa_reversal_model_solves_the_task_with_a_4x_smaller_cache(reversal):
    """Retrains the lesson's MQA model: 400 steps, seed 0 (a few seconds)."""
    _, config, task = reversal
    mqa_config = default_model_config(task, n_kv_heads=1)
    mqa_cfg = TrainConfig(task="reversal", steps=400)
    params, _ = train(mqa_config, mqa_cfg, rng=np.random.default_rng(0), progress=False)
    scores = evaluate(params, mqa_config, mqa_cfg, rng=np.random.default_rng(10**6))
    assert scores["token_accuracy"] >= 0.999
    nbytes = [
        sum(c.nbytes for c in new_kv_caches(c_, 1, dtype=np.float32))
        for c_ in (config, mqa_config)
    ]
    assert nbytes == [16384, 4096]
    assert sum(p.size for p in params.values()) == 102_539 - 12_480


def test_luong_general_with_a_scaled_identity_is_scaled_dot_product_attention():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((6, 8)), rng.standard_normal((7, 8)), np.eye(7)
    luong, _ = luong_attention_forward(q, k, v, np.eye(8) / np.sqrt(8), causal=False)
    dot, _ = attention_forward(q, k, v, causal=False)
    np.testing.assert_allclose(luong, dot, atol=1e-15)


def test_additive_scores_vary_more_across_keys_than_across_queries():
    """Section 5's columns, with the lesson's draws (the shared rng replayed)."""
    rng = np.random.default_rng(0)
    # section 2's q, k, v; section 4's q; its k, v; its dout; check_layer's dout
    earlier = [
        (3, 1, 4, 8, 8),
        (1, 8, 6, 8),
        (2, 1, 2, 6, 8),
        (1, 8, 6, 8),
        (1, 8, 6, 8),
    ]
    for shape in earlier:
        rng.standard_normal(shape)
    qs, ks = rng.standard_normal((6, 8)), rng.standard_normal((7, 8))
    params = init_additive_params(8, 8, 16, rng=rng)
    params["v_a"] *= 4.0
    _, cache = additive_attention_forward(qs, ks, np.eye(7), params, causal=False)
    scores = cache.t @ params["v_a"]  # (N, M)
    key_means, query_std = scores.mean(axis=0), scores.std(axis=0)
    assert round(key_means.min(), 2) == -3.68 and round(key_means.max(), 2) == 2.27
    assert 0.70 < query_std.min() and query_std.max() < 1.36
    P = cache.weights
    assert P[:, [1, 3]].max() < 0.005  # k1 and k3: weight 0.00 from every query
    assert np.sum(P.argmax(axis=1) == 2) == 5


def test_without_tanh_every_query_would_get_the_same_weights():
    rng = np.random.default_rng(0)
    qs, ks = rng.standard_normal((6, 8)), rng.standard_normal((7, 8))
    p = init_additive_params(8, 8, 16, rng=rng)
    linear = (qs @ p["W_a"])[:, None] @ p["v_a"] + (ks @ p["U_a"]) @ p["v_a"]
    P = np.exp(linear - linear.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    np.testing.assert_allclose(P, np.broadcast_to(P[0], P.shape), atol=1e-15)


def test_the_additive_cost_counts_at_n_256():
    n, w = 256, 64
    assert n * n * w == 4_194_304 and round(n * n * w * 8 / 1e6, 1) == 33.6
    flops_add, flops_dot = 4 * n * w * w + 5 * n * n * w, 4 * n * n * w
    assert round(flops_add / 1e6, 1) == 25.2 and round(flops_dot / 1e6, 1) == 16.8
    assert round(flops_add / flops_dot, 1) == 1.5
    bench = json.loads((ROOT / "benchmarks/results/decoding.json").read_text())
    assert (bench["additive_vs_dot"]["N"], bench["additive_vs_dot"]["width"]) == (n, w)


def test_a_rope_models_cache_gives_the_uncached_logits():
    """Exercise 3's expected answer (an untrained RoPE model, float32)."""
    config = TransformerConfig(vocab_size=11, max_len=16, pos="rope")
    params = init_params(config, rng=np.random.default_rng(1), dtype=np.float32)
    ids = np.random.default_rng(2).integers(0, 11, (4, 16))
    full, _ = model_forward(ids, params, config)
    caches = new_kv_caches(config, 4, dtype=np.float32)
    parts = [model_forward(ids[:, :9], params, config, kv_caches=caches)[0]]
    for t in range(9, 16):
        parts.append(
            model_forward(ids[:, t : t + 1], params, config, kv_caches=caches, start=t)[
                0
            ]
        )
    assert np.abs(np.concatenate(parts, axis=1) - full).max() < 1e-5


def test_a_sliding_window_cache_equals_full_attention_under_the_window_mask():
    """Exercise 2's check, with a window kept by hand (the last W keys)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 4, 8, 8))
    W, outs = 3, []
    for t in range(8):
        lo = max(0, t + 1 - W)
        out, _ = gqa_attention_forward(
            q[:, :, t : t + 1], k[:, :, lo : t + 1], v[:, :, lo : t + 1], causal=False
        )
        outs.append(out)
    mask = sliding_window_mask(8, W, causal=True)
    full, _ = attention_forward(q, k, v, mask, causal=False)
    np.testing.assert_allclose(np.concatenate(outs, axis=2), full, atol=1e-12)

import math

import numpy as np
import pytest
from conftest import fd_check

from attention_np import init_mha_params, mha_forward
from attention_np.additive import init_additive_params
from attention_np.gradcheck import LayerCase, as_check
from attention_np.transformer import (
    TransformerConfig,
    block_backward,
    block_forward,
    embedding_backward,
    embedding_forward,
    gelu_forward,
    init_block_params,
    init_mlp_params,
    init_params,
    layernorm_forward,
    mlp_forward,
    model_backward,
    model_forward,
    new_kv_caches,
    param_shapes,
    self_attention_backward,
    self_attention_forward,
)
from attention_np.transformer.gradcheck_cases import CASES

B, N, D, H = 2, 5, 12, 3


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_finite_differences(rng, name):
    fd_check(*as_check(CASES[name](rng)), rng)


@pytest.mark.parametrize("name", CASES)
def test_every_case_calls_the_public_pair_by_the_contract(rng, name):
    assert isinstance(CASES[name](rng), LayerCase)


def noisy(params, rng):
    return {k: p + 0.1 * rng.standard_normal(p.shape) for k, p in params.items()}


# --- layers --------------------------------------------------------------------------


def test_embedding_looks_up_rows_and_accumulates_repeated_tokens(rng):
    W = rng.standard_normal((4, 3))
    ids = np.array([[1, 1, 3]])
    out, cache = embedding_forward(ids, W)
    np.testing.assert_array_equal(out[0], W[[1, 1, 3]])
    dW = embedding_backward(np.ones((1, 3, 3)), cache)
    np.testing.assert_array_equal(dW[:, 0], [0, 2, 0, 1])


def test_embedding_rejects_out_of_range_and_float_ids(rng):
    W = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        embedding_forward(np.array([[4]]), W)
    with pytest.raises(TypeError, match="integers"):
        embedding_forward(np.array([[1.0]]), W)


def test_layernorm_output_has_zero_mean_unit_variance(rng):
    x = 3 * rng.standard_normal((B, N, D)) + 2
    out, _ = layernorm_forward(x, np.ones(D), np.zeros(D), eps=1e-300)
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(-1), 1, atol=1e-12)


def test_layernorm_rejects_wrong_gamma_shape(rng):
    with pytest.raises(ValueError, match="gamma"):
        layernorm_forward(np.ones((2, 4)), np.ones(3), np.zeros(3))


def test_gelu_tanh_approximation_is_close_to_exact_gelu():
    x = np.linspace(-6, 6, 201)
    exact = np.array([0.5 * t * (1 + math.erf(t / math.sqrt(2))) for t in x])
    np.testing.assert_allclose(gelu_forward(x)[0], exact, atol=1e-3)


def test_layers_keep_float32(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    one, zero = np.ones(4, np.float32), np.zeros(4, np.float32)
    assert gelu_forward(x)[0].dtype == np.float32
    assert layernorm_forward(x, one, zero)[0].dtype == np.float32


# --- self-attention ------------------------------------------------------------------


def test_self_attention_with_all_heads_equals_mha_forward(rng):
    params = noisy(init_mha_params(D, H, rng=rng), rng)
    x = rng.standard_normal((B, N, D))
    out, _ = self_attention_forward(x, params, n_heads=H, causal=True)
    ref, _ = mha_forward(x, x, params, n_heads=H, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_gqa_layer_equals_mha_with_key_value_projections_repeated(rng):
    G, d = 1, D // H
    params = noisy(init_mha_params(D, H, n_kv_heads=G, rng=rng), rng)
    assert params["W_k"].shape == (D, G * d)
    x = rng.standard_normal((B, N, D))
    mha = dict(params)
    for name in ("k", "v"):  # head h reads group h // (H / G): repeat column blocks
        mha[f"W_{name}"] = np.tile(params[f"W_{name}"], (1, H // G))
        mha[f"b_{name}"] = np.tile(params[f"b_{name}"], H // G)
    out, _ = self_attention_forward(x, params, n_heads=H, n_kv_heads=G, causal=True)
    ref, _ = mha_forward(x, x, mha, n_heads=H, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_self_attention_backward_is_causal(rng):
    params = noisy(init_mha_params(D, H, rng=rng), rng)
    x = rng.standard_normal((1, N, D))
    out, cache = self_attention_forward(x, params, n_heads=H, causal=True)
    dout = np.zeros_like(out)
    dout[0, 2] = rng.standard_normal(D)  # gradient only at position 2
    dx, _ = self_attention_backward(dout, cache)
    assert np.all(dx[0, 3:] == 0) and np.all(np.abs(dx[0, :3]).sum(-1) > 0)


def test_rope_attention_scores_are_shift_invariant(rng):
    params = noisy(init_mha_params(D, H, rng=rng), rng)
    x = rng.standard_normal((B, N, D))
    kw = {"n_heads": H, "causal": True}
    out0, c0 = self_attention_forward(x, params, positions=np.arange(N), **kw)
    out9, c9 = self_attention_forward(x, params, positions=np.arange(9, 9 + N), **kw)
    np.testing.assert_allclose(c0.weights, c9.weights, atol=1e-12)
    np.testing.assert_allclose(out0, out9, atol=1e-12)


# --- block and model -----------------------------------------------------------------


def test_block_with_zero_branches_is_the_identity(rng):
    params = init_block_params(D, H, 2 * D, rng=rng, dtype=np.float64)
    for key in ("attn.W_o", "attn.b_o", "mlp.W_2", "mlp.b_2"):
        params[key] = np.zeros_like(params[key])
    x = rng.standard_normal((B, N, D))
    out, cache = block_forward(x, params, n_heads=H, causal=True)
    np.testing.assert_array_equal(out, x)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(block_backward(dout, cache)[0], dout, atol=1e-12)


def tiny_config(**kw):
    sizes = dict(vocab_size=7, max_len=9, d_model=8, n_heads=2, n_layers=2, d_mlp=16)
    return TransformerConfig(**{**sizes, **kw})


def test_param_keys_are_prefixed_and_grads_use_the_same_keys(rng):
    config = tiny_config()
    params = init_params(config, rng=rng)
    assert "block1.attn.W_q" in params and "pos.W" in params and "head.b" in params
    logits, cache = model_forward(rng.integers(0, 7, (2, 4)), params, config)
    assert logits.shape == (2, 4, 7)
    assert cache.weights.shape == (2, 2, 2, 4, 4)  # (L, B, H, N, N)
    grads = model_backward(rng.standard_normal(logits.shape), cache)
    assert set(grads) == set(params)
    assert all(grads[k].shape == params[k].shape for k in params)


@pytest.mark.parametrize(
    "kw", [{}, {"pos": "sinusoidal"}, {"pos": "rope"}, {"pos": "rope", "n_kv_heads": 1}]
)
def test_model_is_causal(rng, kw):
    config = tiny_config(**kw)
    params = noisy(init_params(config, rng=rng), rng)
    ids = rng.integers(0, 7, (1, 6))
    changed = ids.copy()
    changed[0, 4] = (ids[0, 4] + 1) % 7  # change token 4: logits 0..3 must not move
    a, _ = model_forward(ids, params, config)
    b, _ = model_forward(changed, params, config)
    np.testing.assert_allclose(a[0, :4], b[0, :4], atol=1e-12)
    assert np.abs(a[0, 4:] - b[0, 4:]).max() > 1e-3


@pytest.mark.parametrize(
    "kw", [{}, {"pos": "sinusoidal"}, {"pos": "rope"}, {"pos": "rope", "n_kv_heads": 1}]
)
def test_kv_cache_generation_equals_the_full_forward_pass(rng, kw):
    config = tiny_config(**kw)
    params = noisy(init_params(config, rng=rng), rng)
    ids = rng.integers(0, 7, (2, 8))
    full, _ = model_forward(ids, params, config)
    caches = new_kv_caches(config, batch=2)
    prefill, _ = model_forward(ids[:, :3], params, config, kv_caches=caches)
    steps = [prefill]
    for t in range(3, 8):
        logits, _ = model_forward(
            ids[:, t : t + 1], params, config, kv_caches=caches, start=t
        )
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)
    assert caches[0].length == 8


def test_kv_caches_that_do_not_hold_start_tokens_are_refused(rng):
    config = tiny_config()
    params = init_params(config, rng=rng)
    caches = new_kv_caches(config, batch=1)
    model_forward(np.zeros((1, 3), int), params, config, kv_caches=caches)
    with pytest.raises(ValueError, match=r"start=2 tokens each, got lengths \[3, 3\]"):
        model_forward(np.zeros((1, 1), int), params, config, kv_caches=caches, start=2)


def test_rope_model_logits_do_not_depend_on_the_start_position(rng):
    config = tiny_config(pos="rope", max_len=20)
    params = noisy(init_params(config, rng=rng), rng)
    ids = rng.integers(0, 7, (2, 6))
    at_0, _ = model_forward(ids, params, config)
    at_9, _ = model_forward(ids, params, config, start=9)
    np.testing.assert_allclose(at_9, at_0, atol=1e-12)


def test_learned_positions_backward_with_a_start_offset(rng):
    config = tiny_config(d_model=4, d_mlp=6)
    params = noisy(init_params(config, rng=rng), rng)
    ids = rng.integers(0, 7, (2, 4))
    case = LayerCase(model_forward, model_backward, {"ids": ids}, params)
    case = case._replace(options={"config": config, "start": 3})
    fd_check(*as_check(case), rng)
    forward = lambda p: model_forward(ids, p, config, start=3)
    logits, cache = forward(params)
    dpos = model_backward(rng.standard_normal(logits.shape), cache)["pos.W"]
    assert np.all(dpos[:3] == 0) and np.all(dpos[7:] == 0)


def test_model_rejects_sequences_longer_than_max_len(rng):
    config = tiny_config()
    with pytest.raises(ValueError, match="max_len"):
        model_forward(np.zeros((1, 10), int), init_params(config, rng=rng), config)


def test_model_reports_missing_parameters(rng):
    config = tiny_config()
    params = init_params(config, rng=rng)
    del params["block0.mlp.b_1"]
    with pytest.raises(ValueError, match=r"missing keys \['block0.mlp.b_1'\]"):
        model_forward(np.zeros((1, 3), int), params, config)


def test_config_validates_and_round_trips_through_json():
    config = tiny_config(n_kv_heads=1, pos="rope")
    assert TransformerConfig.from_json(config.to_json()) == config
    assert tiny_config().d_mlp == 16 and tiny_config().n_kv_heads == 2
    with pytest.raises(ValueError, match="n_kv_heads"):
        tiny_config(n_kv_heads=3)
    with pytest.raises(ValueError, match="pos"):
        tiny_config(pos="alibi")


@pytest.mark.parametrize(
    "init",
    [
        lambda rng: init_mha_params(D, H, rng=rng),
        lambda rng: init_block_params(D, H, 2 * D, rng=rng, dtype=np.float64),
        lambda rng: init_params(TransformerConfig(vocab_size=7, max_len=8), rng=rng),
        lambda rng: init_additive_params(3, 4, 5, rng=rng),
    ],
    ids=["attention", "block", "model", "additive"],
)
def test_initialisers_refuse_anything_but_a_generator(init):
    with pytest.raises(TypeError, match="rng must be a np.random.Generator, got int"):
        init(0)


# --- optional biases, dtypes, parameter shapes ---------------------------------------


def zero_biases(params):
    return {k: np.zeros_like(v) if ".b" in f".{k}" else v for k, v in params.items()}


def test_mlp_without_biases_equals_mlp_with_zero_biases(rng):
    params = init_mlp_params(D, 7, rng=rng, bias=True)
    x = rng.standard_normal((B, N, D))
    no_bias = {k: v for k, v in params.items() if k.startswith("W")}
    with_zero, _ = mlp_forward(x, zero_biases(params))
    np.testing.assert_allclose(mlp_forward(x, no_bias)[0], with_zero, atol=1e-12)


def test_block_without_biases_equals_block_with_zero_biases(rng):
    params = noisy(init_block_params(D, H, 7, rng=rng), rng)
    biases = [k for k in params if k.split(".")[-1].startswith("b_")]
    assert len(biases) == 6  # attention b_q b_k b_v b_o, MLP b_1 b_2
    zeroed = {k: np.zeros_like(v) if k in biases else v for k, v in params.items()}
    stripped = {k: v for k, v in params.items() if k not in biases}
    x = rng.standard_normal((B, N, D))
    out, cache = block_forward(x, stripped, n_heads=H, causal=True)
    ref, _ = block_forward(x, zeroed, n_heads=H, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    dx, grads = block_backward(rng.standard_normal(out.shape), cache)
    assert set(grads) == set(stripped)


def test_init_block_params_without_bias_has_no_bias_keys(rng):
    params = init_block_params(D, H, 7, rng=rng, bias=False)
    assert not [k for k in params if k.split(".")[-1].startswith("b_")]
    assert "ln1.beta" in params  # layer norms keep their shift


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_init_functions_honour_dtype_and_default_to_float64(rng, dtype):
    config = tiny_config()
    for params in (
        init_block_params(D, H, 7, rng=rng, dtype=dtype),
        init_mlp_params(D, 7, rng=rng, dtype=dtype),
        init_params(config, rng=rng, dtype=dtype),
    ):
        assert {p.dtype for p in params.values()} == {np.dtype(dtype)}
    assert init_block_params(D, H, 7, rng=rng)["attn.W_q"].dtype == np.float64
    assert init_params(config, rng=rng)["embed.W"].dtype == np.float64


@pytest.mark.parametrize(
    "kw",
    [{}, {"bias": False}, {"pos": "sinusoidal"}, {"pos": "rope", "n_kv_heads": 1}],
)
def test_param_shapes_are_the_shapes_init_params_makes(rng, kw):
    config = tiny_config(**kw)
    params = init_params(config, rng=rng)
    assert param_shapes(config) == {k: v.shape for k, v in params.items()}


def test_model_without_biases_equals_model_with_zero_biases(rng):
    config = tiny_config()
    params = noisy(init_params(config, rng=rng), rng)
    biases = [k for k in params if k.split(".")[-1].startswith("b") and "ln" not in k]
    assert "head.b" in biases and len(biases) == 13  # 6 per block + the head's
    stripped = {k: v for k, v in params.items() if k not in biases}
    zeroed = {k: np.zeros_like(v) if k in biases else v for k, v in params.items()}
    ids = rng.integers(0, 7, (2, 5))
    out, cache = model_forward(ids, stripped, tiny_config(bias=False))
    ref, _ = model_forward(ids, zeroed, config)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert set(model_backward(rng.standard_normal(out.shape), cache)) == set(stripped)


def test_model_forward_keeps_float32(rng):
    config = tiny_config()
    params = init_params(config, rng=rng, dtype=np.float32)
    logits, cache = model_forward(rng.integers(0, 7, (2, 4)), params, config)
    assert logits.dtype == np.float32
    grads = model_backward(np.ones(logits.shape, np.float32), cache)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_model_backward_refuses_a_forward_that_filled_kv_caches(rng):
    config = tiny_config()
    params = init_params(config, rng=rng)
    caches = new_kv_caches(config, batch=1)
    logits, cache = model_forward(
        np.zeros((1, 3), int), params, config, kv_caches=caches
    )
    with pytest.raises(ValueError, match="inference only"):
        model_backward(np.ones_like(logits), cache)


def test_config_fills_defaults_and_normalises_numpy_ints():
    config = TransformerConfig(vocab_size=np.int64(7), max_len=8)
    assert type(config.vocab_size) is int and config.d_mlp == 4 * config.d_model
    assert TransformerConfig.from_json(config.to_json()) == config


def test_config_json_without_the_bias_field_loads_with_biases():
    text = '{"vocab_size": 7, "max_len": 8, "d_model": 8, "n_heads": 2}'
    assert TransformerConfig.from_json(text).bias is True

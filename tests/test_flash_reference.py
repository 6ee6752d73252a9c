"""The plain tiled loop (flash_reference) == attention == the optimised kernel."""

import warnings

import numpy as np
import pytest

from attention_np import attention_forward, causal_mask
from attention_np.efficient import flash_attention_forward, flash_attention_reference

N, M, d, d_v = 13, 11, 6, 7
BLOCKS = [(1, 1), (4, 3), (5, 11), (13, 11), (16, 32)]  # most do not divide N, M


def qkv(rng, n=N, m=M):
    q = rng.standard_normal((n, d))  # (N, d)
    k = rng.standard_normal((m, d))  # (M, d)
    v = rng.standard_normal((m, d_v))  # (M, d_v)
    return q, k, v


def explicit_mask(causal, n=N, m=M, align="top_left"):
    return causal_mask(n, m, align=align) if causal else None


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("block_q, block_k", BLOCKS)
def test_reference_equals_standard_attention(rng, causal, block_q, block_k):
    q, k, v = qkv(rng)
    out, _ = flash_attention_reference(
        q, k, v, causal=causal, block_q=block_q, block_k=block_k
    )
    expected, _ = attention_forward(q, k, v, explicit_mask(causal), causal=False)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("block_q, block_k", BLOCKS)
def test_reference_equals_the_optimised_kernel(rng, causal, block_q, block_k):
    q, k, v = qkv(rng)
    tiles = dict(causal=causal, block_q=block_q, block_k=block_k)
    out, ref_cache = flash_attention_reference(q, k, v, **tiles)
    fast, cache = flash_attention_forward(q, k, v, **tiles)
    np.testing.assert_allclose(out, fast, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref_cache.lse, cache.lse, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_lse_is_the_logsumexp_of_the_scaled_scores(rng, causal):
    q, k, v = qkv(rng)
    _, cache = flash_attention_reference(q, k, v, causal=causal, block_q=4, block_k=3)
    scores = q @ k.T / np.sqrt(d)  # (N, M)
    if causal:
        scores = np.where(causal_mask(N, M), scores, -np.inf)
    expected = np.logaddexp.reduce(scores, axis=-1)
    np.testing.assert_allclose(cache.lse, expected, atol=1e-12)


def test_output_does_not_depend_on_the_tile_sizes(rng):
    q, k, v = qkv(rng)
    outs = [
        flash_attention_reference(q, k, v, causal=False, block_q=a, block_k=b)[0]
        for a, b in BLOCKS
    ]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=0, atol=1e-12)


def test_fully_masked_rows_give_zeros_and_minus_inf_without_warnings(rng):
    q, k, v = qkv(rng)
    mask = rng.random((N, M)) > 0.4
    mask[[2, 9]] = False  # two queries see no key at all
    mask[:, 4:8] = False  # a whole key tile (block_k=4) nobody sees
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = flash_attention_reference(
            q, k, v, mask, causal=False, block_q=5, block_k=4
        )
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[[2, 9]], 0.0)
    assert np.all(np.isneginf(cache.lse[[2, 9]]))
    expected, _ = attention_forward(q, k, v, mask, causal=False)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_mask_and_causal_combine_by_and(rng):
    q, k, v = qkv(rng)
    mask = rng.random((N, M)) > 0.3
    out, _ = flash_attention_reference(q, k, v, mask, causal=True, block_k=5)
    expected, _ = attention_forward(q, k, v, mask & causal_mask(N, M), causal=False)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_custom_scale_is_used(rng):
    q, k, v = qkv(rng)
    out, _ = flash_attention_reference(
        q, k, v, causal=False, scale=0.3, block_q=4, block_k=4
    )
    expected, _ = attention_forward(q, k, v, causal=False, scale=0.3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_float32_inputs_stay_float32(rng):
    q, k, v = (a.astype(np.float32) for a in qkv(rng))
    out, cache = flash_attention_reference(q, k, v, causal=True, block_q=4, block_k=4)
    assert out.dtype == cache.lse.dtype == np.float32


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(q=np.zeros((2, 3, N, d + 1))), "last axis d"),
        (dict(k=np.zeros((M, d + 1))), "last axis d"),
        (dict(v=np.zeros((M + 1, d_v))), "length M"),
        (dict(mask=np.ones((N, M + 1), bool)), "mask"),
        (dict(block_q=0), "block_q"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(rng, bad, match):
    q, k, v = qkv(rng)
    args = dict(q=q, k=k, v=v, mask=None, block_q=4)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        flash_attention_reference(
            args["q"],
            args["k"],
            args["v"],
            args["mask"],
            causal=False,
            block_q=args["block_q"],
        )


def test_causal_must_be_a_bool(rng):
    q, k, v = qkv(rng)
    with pytest.raises(TypeError, match="causal"):
        flash_attention_reference(q, k, v, causal="no")


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
@pytest.mark.parametrize("n, m", [(N, M), (M, N)])
def test_alignment_follows_the_core(rng, align, n, m):
    q, k, v = qkv(rng, n, m)
    out, _ = flash_attention_reference(q, k, v, causal=True, align=align, block_k=4)
    expected, _ = attention_forward(q, k, v, causal=True, align=align)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_leading_batch_and_head_dimensions_broadcast(rng):
    q = rng.standard_normal((2, 3, N, d))  # (B, H, N, d)
    k = rng.standard_normal((2, 1, M, d))  # keys and values shared by the heads
    v = rng.standard_normal((2, 1, M, d_v))
    mask = rng.random((2, 1, N, M)) > 0.3
    out, cache = flash_attention_reference(q, k, v, mask, causal=True, block_q=4)
    expected, _ = attention_forward(q, k, v, mask, causal=True)
    assert out.shape == (2, 3, N, d_v) and cache.lse.shape == (2, 3, N)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_causal_is_required(rng):
    q, k, v = qkv(rng)
    with pytest.raises(TypeError, match="causal"):
        flash_attention_reference(q, k, v)

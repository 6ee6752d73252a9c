"""Block attention (one query block against one key block, ring attention's unit):
the same output as core attention for every mask/causal/align; causality by global
positions (arithmetic progressions become a causal offset, anything else a mask);
partial results merge into full attention; the backward from a GLOBAL out and lse
(block_attention_cache) summed over key blocks is the full gradient."""

import warnings

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_backward, attention_forward, combine_masks
from attention_np.efficient import (
    block_attention_backward,
    block_attention_cache,
    block_attention_forward,
)
from attention_np.gradcheck import as_check
from attention_np.masks import padding_mask
from attention_np.parallel.gradcheck_cases import CASES

B, H, N, M, d, d_v = 2, 3, 13, 11, 6, 7
TILES = {"block_q": 4, "block_k": 3}
ALIGNED = [(False, "top_left"), (True, "top_left"), (True, "bottom_right")]


@pytest.fixture
def qkv(rng):
    return (
        rng.standard_normal((B, H, N, d)),
        rng.standard_normal((B, H, M, d)),
        rng.standard_normal((B, H, M, d_v)),
    )


def fully_masked(rng):
    mask = rng.random((B, H, N, M)) > 0.5
    mask[1, 2, 4] = False  # one query of batch 1, head 2 sees no key
    mask[0, 0, :, 3:7] = False  # a band of keys nobody sees
    return mask


MASKS = {
    "none": lambda rng: None,
    "padding": lambda rng: padding_mask([M, 4], M),
    "random with fully masked rows": fully_masked,
}


def by_positions(q_positions, k_positions):
    """The (N, M) rule of global positions: key position <= query position."""
    return np.asarray(k_positions)[None, :] <= np.asarray(q_positions)[:, None]


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_forward_equals_core_attention(rng, qkv, mask_name, causal, align):
    mask = MASKS[mask_name](rng)
    want, _ = attention_forward(*qkv, mask, causal=causal, align=align)
    out, cache = block_attention_forward(
        *qkv, mask, causal=causal, align=align, **TILES
    )
    np.testing.assert_allclose(out, want, atol=1e-12)
    assert cache.lse.shape == (B, H, N)


POSITIONS = {  # (q_positions, k_positions, causal offset or None for a mask)
    "contiguous, queries after the keys": (np.arange(N) + 20, np.arange(M) + 15, 5),
    "contiguous, queries before the keys": (np.arange(N) + 10, np.arange(M) + 12, -2),
    "striped, step 3": (3 * np.arange(N) + 2, 3 * np.arange(M) + 1, 0),
    "striped, later rank": (3 * np.arange(N) + 1, 3 * np.arange(M) + 2, -1),
    "one query position": (np.array([7]), np.arange(M), 7),
    "zigzag chunks": (np.r_[0:7, 30:36], np.r_[2:8, 25:30], None),
    "different steps": (2 * np.arange(N), 3 * np.arange(M), None),
    "repeated positions": (np.full(N, 6), np.arange(M), None),
    "unsorted": (np.arange(N)[::-1].copy(), np.arange(M), None),
}


@pytest.mark.parametrize("name", list(POSITIONS))
def test_positions_give_the_rule_key_position_at_most_query_position(rng, qkv, name):
    q_pos, k_pos, offset = POSITIONS[name]
    q = qkv[0][..., : q_pos.size, :]
    mask = fully_masked(rng)[..., : q_pos.size, :]
    rule = combine_masks(mask, by_positions(q_pos, k_pos))
    want, _ = attention_forward(q, *qkv[1:], rule, causal=False)
    out, cache = block_attention_forward(
        q, *qkv[1:], mask, causal=True, q_positions=q_pos, k_positions=k_pos, **TILES
    )
    np.testing.assert_allclose(out, want, atol=1e-12)
    assert cache.plan.offset == offset  # progressions skip tiles by an offset


def test_positions_are_ignored_without_a_causal_rule(qkv):
    positions = {"q_positions": np.arange(N), "k_positions": np.arange(M) + 50}
    out, _ = block_attention_forward(*qkv, causal=False, **positions)
    np.testing.assert_allclose(out, attention_forward(*qkv, causal=False)[0])


def test_a_row_that_sees_no_key_gives_zeros_and_minus_inf_without_warnings(rng, qkv):
    positions = {"q_positions": np.arange(N) + 10, "k_positions": np.arange(M) + 12}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = block_attention_forward(*qkv, causal=True, **positions)
        grads = block_attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(out[..., :2, :] == 0) and np.all(np.isneginf(cache.lse[..., :2]))
    assert np.all(grads[0][..., :2, :] == 0)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_block_results_merge_into_full_attention(rng, qkv):
    q, k, v = qkv
    mask = fully_masked(rng)
    out_a, cache_a = block_attention_forward(
        q, k[..., :5, :], v[..., :5, :], mask[..., :5], causal=False
    )
    out_b, cache_b = block_attention_forward(
        q, k[..., 5:, :], v[..., 5:, :], mask[..., 5:], causal=False
    )
    lse_a, lse_b = cache_a.lse, cache_b.lse
    with np.errstate(invalid="ignore"):  # -inf - -inf for rows empty in both blocks
        lse = np.logaddexp(lse_a, lse_b)
        wa, wb = (np.nan_to_num(np.exp(x - lse))[..., None] for x in (lse_a, lse_b))
    ref, _ = attention_forward(q, k, v, mask, causal=False)
    np.testing.assert_allclose(wa * out_a + wb * out_b, ref, atol=1e-12)


@pytest.mark.parametrize("causal, align", ALIGNED)
def test_the_backward_of_its_own_cache_is_the_ordinary_backward(
    rng, qkv, causal, align
):
    mask = fully_masked(rng)
    out, cache = block_attention_forward(
        *qkv, mask, causal=causal, align=align, **TILES
    )
    _, full = attention_forward(*qkv, mask, causal=causal, align=align)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(
        block_attention_backward(dout, cache),
        attention_backward(dout, full),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    "q_pos, blocks",
    [
        (np.arange(N), [np.r_[0:4], np.r_[4:9], np.r_[9:M]]),  # contiguous
        (np.r_[0:7, 30:36], [np.r_[0:3, 33:36], np.r_[3:8]]),  # zigzag chunks
        (2 * np.arange(N) + 1, [2 * np.arange(6), 2 * np.arange(5) + 12]),  # striped
    ],
)
def test_block_backward_with_global_out_and_lse_sums_to_the_full_gradient(
    rng, qkv, q_pos, blocks
):
    q, k, v = qkv
    k_pos = np.concatenate(blocks)
    mask = fully_masked(rng)
    out, full = attention_forward(
        q, k, v, combine_masks(mask, by_positions(q_pos, k_pos)), causal=False
    )
    lse = block_attention_forward(
        q, k, v, mask, causal=True, q_positions=q_pos, k_positions=k_pos
    )[1].lse
    dout = rng.standard_normal(out.shape)
    want = attention_backward(dout, full)
    dq, start = np.zeros_like(q), 0
    for pos in blocks:  # key blocks of the concatenated k, at global positions pos
        cols = slice(start, start + pos.size)
        start += pos.size
        rule = {"causal": True, "q_positions": q_pos, "k_positions": pos}
        kv = k[..., cols, :], v[..., cols, :]
        cache = block_attention_cache(q, *kv, out, lse, mask[..., cols], **rule)
        dq_b, dk_b, dv_b = block_attention_backward(dout, cache)
        dq += dq_b
        np.testing.assert_allclose(dk_b, want[1][..., cols, :], atol=1e-12)
        np.testing.assert_allclose(dv_b, want[2][..., cols, :], atol=1e-12)
    np.testing.assert_allclose(dq, want[0], atol=1e-12)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("block")])
def test_block_backward_matches_finite_differences(name):
    rng = np.random.default_rng(0)
    fd_check(*as_check(CASES[name](rng)), rng)


def test_threads_over_heads_give_bitwise_the_same_results(rng, qkv):
    options = dict(causal=True, q_positions=np.r_[0:7, 30:36], k_positions=np.arange(M))
    out1, cache1 = block_attention_forward(*qkv, workers=1, **options)
    out2, cache2 = block_attention_forward(*qkv, workers=3, **options)
    np.testing.assert_array_equal(out1, out2)
    dout = rng.standard_normal(out1.shape)
    for g1, g2 in zip(
        block_attention_backward(dout, cache1),
        block_attention_backward(dout, cache2),
        strict=True,
    ):
        np.testing.assert_array_equal(g1, g2)


def test_block_attention_leaves_its_inputs_and_the_global_rng_untouched(rng, qkv):
    mask = fully_masked(rng)
    q_pos, k_pos = np.r_[0:7, 30:36], np.arange(M)
    copies = [a.copy() for a in (*qkv, mask, q_pos, k_pos)]
    state = np.random.get_state()[1].copy()
    out, cache = block_attention_forward(
        *qkv, mask, causal=True, q_positions=q_pos, k_positions=k_pos
    )
    block_attention_backward(rng.standard_normal(out.shape), cache)
    for a, b in zip((*qkv, mask, q_pos, k_pos), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)

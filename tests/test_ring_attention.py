"""Simulated ring attention: forward and backward equal full attention for every
layout, 1-4 ranks, causal or not (either alignment), N != M and any mask; the layouts'
maps; the work counts of REFERENCE 3.3; each allowed (query, key) pair computed
exactly once; inspectable steps."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np import (
    attention_backward,
    attention_forward,
    causal_mask,
    padding_mask,
)
from attention_np.parallel import (
    LAYOUTS,
    bytes_sent,
    coverage,
    forward_steps,
    holder_table,
    init_states,
    layout_positions,
    make_plan,
    ring_attention_backward,
    ring_attention_forward,
    ring_backward_trace,
    ring_elements,
    shard,
    token_owner,
    unshard,
    work_formula,
    work_table,
)

B, H, N, d, d_v = 2, 3, 24, 4, 5  # N = 24 splits evenly for P = 1..4, zigzag too
RANKS = (1, 2, 3, 4)


@pytest.fixture
def qkv(rng):
    return (
        rng.standard_normal((B, H, N, d)),
        rng.standard_normal((B, H, N, d)),
        rng.standard_normal((B, H, N, d_v)),
    )


def full_attention(q, k, v, causal, mask=None, align="top_left"):
    return attention_forward(q, k, v, mask, causal=causal, align=align)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", RANKS)
def test_ring_forward_equals_full_attention(qkv, n_ranks, layout, causal):
    q, k, v = qkv
    expected, _ = full_attention(q, k, v, causal)
    out, cache = ring_attention_forward(
        q, k, v, n_ranks=n_ranks, layout=layout, causal=causal, block_q=4, block_k=3
    )
    np.testing.assert_allclose(out, expected, atol=1e-12)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)  # (B, H, N, N)
    if causal:
        scores[..., ~causal_mask(N)] = -np.inf
    np.testing.assert_allclose(cache.lse, np.logaddexp.reduce(scores, -1), atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", RANKS)
def test_ring_backward_equals_full_attention_backward(
    rng, qkv, n_ranks, layout, causal
):
    q, k, v = qkv
    expected_out, full_cache = full_attention(q, k, v, causal)
    dout = rng.standard_normal(expected_out.shape)
    expected = attention_backward(dout, full_cache)
    _, cache = ring_attention_forward(
        q, k, v, n_ranks=n_ranks, layout=layout, causal=causal, block_q=4, block_k=3
    )
    for got, want in zip(ring_attention_backward(dout, cache), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    "layout,n_ranks", [("zigzag", 2), ("striped", 3), ("contiguous", 2)]
)
def test_ring_backward_matches_finite_differences(rng, layout, n_ranks):
    inputs = {
        "q": rng.standard_normal((1, 2, 12, 3)),
        "k": rng.standard_normal((1, 2, 12, 3)),
        "v": rng.standard_normal((1, 2, 12, 2)),
    }
    options = {"n_ranks": n_ranks, "layout": layout, "block_q": 2, "block_k": 5}
    options["causal"] = True

    def forward(p):
        return ring_attention_forward(p["q"], p["k"], p["v"], **options)

    def backward(dout, cache):
        return dict(zip("qkv", ring_attention_backward(dout, cache), strict=True))

    fd_check(forward, backward, inputs, rng)


def test_ring_backward_does_not_modify_the_cache(rng, qkv):
    out, cache = ring_attention_forward(*qkv, n_ranks=3, causal=True)
    dout = rng.standard_normal(out.shape)
    first = ring_attention_backward(dout, cache)
    second = ring_attention_backward(dout, cache)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", RANKS)
def test_layout_positions_cover_every_token_once_and_invert(layout, n_ranks):
    positions = layout_positions(layout, N, n_ranks)  # (P, c)
    assert positions.shape == (n_ranks, N // n_ranks)
    np.testing.assert_array_equal(np.sort(positions.ravel()), np.arange(N))
    rank, local = token_owner(layout, N, n_ranks)
    np.testing.assert_array_equal(positions[rank, local], np.arange(N))
    x = np.arange(2 * N * 3).reshape(2, N, 3)
    np.testing.assert_array_equal(unshard(shard(x, positions), positions), x)


def test_layouts_for_24_tokens_on_4_ranks():
    zigzag = layout_positions("zigzag", N, 4)
    np.testing.assert_array_equal(zigzag[0], [0, 1, 2, 21, 22, 23])  # chunks 0, 7
    np.testing.assert_array_equal(zigzag[3], [9, 10, 11, 12, 13, 14])  # chunks 3, 4
    np.testing.assert_array_equal(layout_positions("striped", N, 4)[1], range(1, N, 4))
    np.testing.assert_array_equal(
        layout_positions("contiguous", N, 4)[2], range(12, 18)
    )


def test_layouts_reject_sequences_that_do_not_split():
    with pytest.raises(ValueError, match=r"2 \* n_ranks = 8, got seq_len=12"):
        layout_positions("zigzag", 12, 4)
    with pytest.raises(ValueError, match="divisible by n_ranks = 5"):
        layout_positions("striped", 12, 5)
    with pytest.raises(ValueError, match="layout must be one of"):
        layout_positions("diagonal", 12, 2)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", RANKS)
def test_work_counts_match_the_formulas(qkv, n_ranks, layout, causal):
    _, cache = ring_attention_forward(
        *qkv, n_ranks=n_ranks, layout=layout, causal=causal
    )
    expected = work_formula(layout, N, n_ranks, causal=causal)  # (P steps, P ranks)
    np.testing.assert_array_equal(work_table(cache.trace), expected)


@pytest.mark.parametrize("seq_len,n_ranks", [(24, 4), (40, 4), (36, 3), (64, 8)])
def test_zigzag_gives_every_rank_the_same_causal_work(seq_len, n_ranks):
    totals = work_formula("zigzag", seq_len, n_ranks, causal=True).sum(axis=0)
    assert totals.tolist() == [seq_len * (seq_len + 1) // (2 * n_ranks)] * n_ranks


@pytest.mark.parametrize("seq_len,n_ranks", [(24, 4), (40, 4), (36, 3)])
def test_contiguous_causal_work_grows_with_the_rank(seq_len, n_ranks):
    c = seq_len // n_ranks
    work = work_formula("contiguous", seq_len, n_ranks, causal=True)  # (P, P)
    totals = work.sum(axis=0)  # (P,)
    expected = [c * (c + 1) // 2 + r * c * c for r in range(n_ranks)]
    assert totals.tolist() == expected


def test_work_table_for_24_tokens_on_4_ranks_matches_the_reference(qkv):
    expected = {  # REFERENCE 3.3: per-step max over ranks, per-rank totals
        "contiguous": ([21, 36, 36, 36], [21, 57, 93, 129]),
        "zigzag": ([21, 18, 18, 18], [75, 75, 75, 75]),
        "striped": ([21, 21, 21, 21], [66, 72, 78, 84]),
    }
    for layout, (step_max, totals) in expected.items():
        _, cache = ring_attention_forward(*qkv, n_ranks=4, layout=layout, causal=True)
        work = work_table(cache.trace)  # (4 steps, 4 ranks)
        assert work.max(axis=1).tolist() == step_max, layout
        assert work.sum(axis=0).tolist() == totals, layout


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_allowed_pair_is_computed_exactly_once(qkv, layout, causal):
    _, cache = ring_attention_forward(*qkv, n_ranks=4, layout=layout, causal=causal)
    cov = coverage(cache.trace, cache.positions)
    allowed = causal_mask(N) if causal else np.ones((N, N), bool)
    np.testing.assert_array_equal(cov.count, allowed.astype(int))
    owner, _ = token_owner(layout, N, 4)  # the rank of each query computes its row
    query_owner = np.broadcast_to(owner[:, None], (N, N))
    np.testing.assert_array_equal(cov.rank[allowed], query_owner[allowed])


def test_the_backward_computes_the_same_tiles_as_the_forward(rng, qkv):
    out, cache = ring_attention_forward(*qkv, n_ranks=4, layout="zigzag", causal=True)
    _, trace = ring_backward_trace(rng.standard_normal(out.shape), cache)
    np.testing.assert_array_equal(work_table(trace), work_table(cache.trace))


def test_rank_r_holds_the_block_of_rank_r_minus_t_at_step_t(qkv):
    _, cache = ring_attention_forward(*qkv, n_ranks=4, causal=True)
    t, r = np.indices((4, 4))
    np.testing.assert_array_equal(holder_table(cache.trace), (r - t) % 4)


def test_bytes_sent_match_the_volume_formula(rng):
    q, k, v = rng.standard_normal((3, 1, 2, 24, 4))  # d_v == d: width H d = 8
    out, cache = ring_attention_forward(q, k, v, n_ranks=4, causal=True)
    _, trace = ring_backward_trace(rng.standard_normal(out.shape), cache)
    fwd, bwd = ring_elements(24, 4, 8), ring_elements(24, 4, 8, backward=True)
    assert bytes_sent(cache.trace).tolist() == [fwd * 8] * 4  # float64
    assert bytes_sent(trace).tolist() == [bwd * 8] * 4


def test_a_paused_step_shows_full_send_buffers_and_then_delivers(qkv):
    q, k, v = qkv
    plan = make_plan("zigzag", N, 4, causal=True, scale=None, block_q=8, block_k=8)
    states = init_states(q, k, v, plan=plan)
    for record in forward_steps(states, plan):
        t = record.step
        assert [s.held_block for s in states] == [(r - t) % 4 for r in range(4)]
        if t < 3:  # the block each rank holds is in flight to rank r + 1
            assert [m.receiver for m in record.messages] == [1, 2, 3, 0]
            for s in states:
                np.testing.assert_array_equal(s.send_buf["k"], s.held["k"])
        else:
            assert record.messages == [] and all(s.send_buf is None for s in states)


# --- N != M, masks and the alignment ----------------------------------------------

M_KEYS = 40  # keys: 40 splits for P = 1, 2, 4 (zigzag too); queries N = 24
ALIGNED = [(False, "top_left"), (True, "top_left"), (True, "bottom_right")]


@pytest.fixture
def cross(rng):
    q = rng.standard_normal((B, H, N, d))
    k = rng.standard_normal((B, H, M_KEYS, d))
    v = rng.standard_normal((B, H, M_KEYS, d_v))
    mask = rng.random((B, 1, N, M_KEYS)) > 0.3
    mask[0, 0, 5] = False  # a query that sees no key
    return q, k, v, mask


def _assert_ring_matches(rng, q, k, v, mask, n_ranks, layout, causal, align):
    expected, full_cache = full_attention(q, k, v, causal, mask, align)
    options = {"n_ranks": n_ranks, "layout": layout, "block_q": 4, "block_k": 3}
    out, cache = ring_attention_forward(
        q, k, v, mask, causal=causal, align=align, **options
    )
    np.testing.assert_allclose(out, expected, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = ring_attention_backward(dout, cache)
    for got, want in zip(grads, attention_backward(dout, full_cache), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", [1, 2, 4])
def test_ring_with_more_keys_than_queries_equals_full_attention(
    rng, cross, n_ranks, layout, causal, align
):
    q, k, v, _ = cross
    _assert_ring_matches(rng, q, k, v, None, n_ranks, layout, causal, align)


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ring_with_more_queries_than_keys_equals_full_attention(
    rng, cross, layout, causal, align
):
    q, k, v, _ = cross
    _assert_ring_matches(rng, k, q, q, None, 2, layout, causal, align)  # N=40, M=24


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_ranks", [2, 4])
def test_ring_with_a_mask_and_n_not_m_equals_full_attention(
    rng, cross, n_ranks, layout, causal, align
):
    _assert_ring_matches(rng, *cross, n_ranks, layout, causal, align)


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ring_self_attention_with_a_mask_equals_full_attention(
    rng, qkv, layout, causal, align
):
    mask = rng.random((B, H, N, N)) > 0.4
    n_ranks = 4 if layout == "zigzag" else 3  # 24 tokens: 8 zigzag chunks
    _assert_ring_matches(rng, *qkv, mask, n_ranks, layout, causal, align)


def test_ring_with_a_padding_mask_that_broadcasts_over_queries(rng, cross):
    q, k, v, _ = cross
    mask = padding_mask([M_KEYS, 7], M_KEYS)  # (B, 1, 1, M)
    _assert_ring_matches(rng, q, k, v, mask, 2, "zigzag", True, "bottom_right")


def test_ring_with_an_empty_row_gives_zero_output_and_gradient(rng, cross):
    q, k, v, mask = cross  # query 5 of batch 0 sees no key
    out, cache = ring_attention_forward(
        q, k, v, mask, n_ranks=2, layout="zigzag", causal=True
    )
    assert np.all(out[0, :, 5] == 0) and np.all(np.isneginf(cache.lse[0, :, 5]))
    dq = ring_attention_backward(rng.standard_normal(out.shape), cache)[0]
    assert np.all(dq[0, :, 5] == 0) and np.all(np.isfinite(dq))


def test_a_mask_does_not_change_the_work_table(rng, qkv):
    mask = rng.random((B, H, N, N)) > 0.4
    plain = ring_attention_forward(*qkv, n_ranks=4, causal=True)[1]
    masked = ring_attention_forward(*qkv, mask, n_ranks=4, causal=True)[1]
    np.testing.assert_array_equal(work_table(masked.trace), work_table(plain.trace))


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_work_with_n_not_m_counts_the_causal_pairs_once(cross, layout, align):
    q, k, v, _ = cross
    _, cache = ring_attention_forward(
        q, k, v, n_ranks=4, layout=layout, causal=True, align=align
    )
    allowed = causal_mask(N, M_KEYS, align=align).sum()
    assert work_table(cache.trace).sum() == allowed
    t, r = np.indices((4, 4))
    np.testing.assert_array_equal(holder_table(cache.trace), (r - t) % 4)


def test_ring_backward_with_n_not_m_and_a_mask_matches_finite_differences(rng):
    inputs = {
        "q": rng.standard_normal((1, 2, 4, 3)),
        "k": rng.standard_normal((1, 2, 8, 3)),
        "v": rng.standard_normal((1, 2, 8, 2)),
    }
    mask = rng.random((1, 1, 4, 8)) > 0.3
    options = {"n_ranks": 2, "layout": "zigzag", "block_q": 1, "block_k": 3}
    options.update(causal=True, align="bottom_right")

    def forward(p):
        return ring_attention_forward(p["q"], p["k"], p["v"], mask, **options)

    def backward(dout, cache):
        return dict(zip("qkv", ring_attention_backward(dout, cache), strict=True))

    fd_check(forward, backward, inputs, rng)


def test_ring_leaves_its_inputs_and_the_global_rng_untouched(rng, cross):
    copies = [a.copy() for a in cross]
    state = np.random.get_state()[1].copy()
    out, cache = ring_attention_forward(*cross, n_ranks=2, causal=True)
    ring_attention_backward(rng.standard_normal(out.shape), cache)
    for a, b in zip(cross, copies, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_layout_positions_split_queries_and_keys_the_same_way():
    plan = make_plan("zigzag", 8, 2, causal=True, kv_len=16)
    np.testing.assert_array_equal(plan.q_positions[0], [0, 1, 6, 7])
    np.testing.assert_array_equal(plan.k_positions[0], [0, 1, 2, 3, 12, 13, 14, 15])

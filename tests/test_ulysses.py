"""Ulysses sequence parallelism: the all-to-alls are pure index shuffling, the result
equals full attention forward and backward (masks, either alignment, N != M, lengths
the ranks do not divide), ranks must divide heads; the MPI version on a one-rank
communicator; communication volume helpers (ring vs Ulysses)."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_backward, attention_forward
from attention_np.gradcheck import as_check
from attention_np.parallel import (
    CommStats,
    alltoall,
    comm_table,
    ring_elements,
    ring_step_elements,
    ulysses_attention_backward,
    ulysses_attention_forward,
    ulysses_elements,
    ulysses_mpi_backward,
    ulysses_mpi_forward,
)
from attention_np.parallel.gradcheck_cases import CASES, OneRankComm
from attention_np.parallel.ulysses import (
    pack_heads,
    pack_sequence,
    unpack_heads,
    unpack_sequence,
)

B, H, N, d, d_v = 2, 4, 12, 3, 5


@pytest.fixture
def qkv(rng):
    return (
        rng.standard_normal((B, H, N, d)),
        rng.standard_normal((B, H, N, d)),
        rng.standard_normal((B, H, N, d_v)),
    )


def test_alltoall_delivers_message_g_of_every_rank_to_rank_g():
    sendbufs = [np.arange(3) + 10 * p for p in range(3)]  # rank p sends 10p + g to g
    recv = alltoall(sendbufs)
    assert [[int(x) for x in r] for r in recv] == [
        [0, 10, 20],
        [1, 11, 21],
        [2, 12, 22],
    ]


@pytest.mark.parametrize("n_ranks", [1, 2, 4])
def test_first_exchange_gives_each_rank_the_whole_sequence_of_its_heads(rng, n_ranks):
    x = rng.standard_normal((B, H, N, d))
    shards = np.split(x, n_ranks, axis=-2)  # rank p: tokens of shard p, all heads
    recv = alltoall([pack_heads(s, n_ranks) for s in shards])
    g = H // n_ranks
    for rank, buf in enumerate(recv):
        np.testing.assert_array_equal(  # bit for bit: only indices move
            unpack_sequence(buf), x[:, rank * g : (rank + 1) * g]
        )


@pytest.mark.parametrize("n_ranks", [1, 2, 4])
def test_second_exchange_undoes_the_first(rng, n_ranks):
    x = rng.standard_normal((B, H, N, d))
    shards = np.split(x, n_ranks, axis=-2)
    heads = [
        unpack_sequence(b) for b in alltoall([pack_heads(s, n_ranks) for s in shards])
    ]
    back = [
        unpack_heads(b) for b in alltoall([pack_sequence(h, n_ranks) for h in heads])
    ]
    for got, want in zip(back, shards, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_ranks", [1, 2, 4])
def test_ulysses_forward_and_backward_equal_full_attention(rng, qkv, n_ranks, causal):
    q, k, v = qkv
    expected, cache_full = attention_forward(q, k, v, causal=causal)
    out, cache = ulysses_attention_forward(q, k, v, n_ranks=n_ranks, causal=causal)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = ulysses_attention_backward(dout, cache)
    for got, want in zip(grads, attention_backward(dout, cache_full), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_ulysses_needs_ranks_that_divide_the_heads(qkv):
    with pytest.raises(ValueError, match="n_ranks=3 does not divide H=4"):
        ulysses_attention_forward(*qkv, n_ranks=3, causal=True)


def test_ulysses_needs_a_head_axis(rng):
    x = rng.standard_normal((N, d))
    with pytest.raises(ValueError, match="head axis"):
        ulysses_attention_forward(x, x, x, n_ranks=2, causal=False)


ALIGNED = [(False, "top_left"), (True, "top_left"), (True, "bottom_right")]


def _assert_ulysses_matches(rng, q, k, v, mask, n_ranks, causal, align):
    expected, full = attention_forward(q, k, v, mask, causal=causal, align=align)
    out, cache = ulysses_attention_forward(
        q, k, v, mask, n_ranks=n_ranks, causal=causal, align=align
    )
    np.testing.assert_allclose(out, expected, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = ulysses_attention_backward(dout, cache)
    for got, want in zip(grads, attention_backward(dout, full), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("causal, align", ALIGNED)
@pytest.mark.parametrize("n_ranks", [1, 2, 4])
def test_ulysses_with_n_not_m_and_a_mask_equals_full_attention(
    rng, qkv, n_ranks, causal, align
):
    q = rng.standard_normal((B, H, 8, d))  # N = 8 queries, M = 12 keys
    mask = rng.random((B, H, 8, N)) > 0.3
    mask[1, 2, 3] = False  # a query that sees no key
    _assert_ulysses_matches(rng, q, *qkv[1:], mask, n_ranks, causal, align)


@pytest.mark.parametrize("causal, align", ALIGNED)
def test_ulysses_splits_lengths_the_ranks_do_not_divide(rng, causal, align):
    q = rng.standard_normal((B, 3, 7, d))  # 7 queries and 11 keys over 3 ranks
    k, v = rng.standard_normal((2, B, 3, 11, d))
    mask = rng.random((B, 1, 1, 11)) > 0.3  # broadcasts over heads and queries
    _assert_ulysses_matches(rng, q, k, v, mask, 3, causal, align)


def test_ulysses_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    forward, backward, inputs = as_check(
        CASES["ulysses attention (causal bottom-right, mask, N != M, 3 ranks)"](rng)
    )
    fd_check(forward, backward, inputs, rng)


@pytest.mark.parametrize("causal, align", ALIGNED)
def test_ulysses_over_one_rank_mpi_equals_full_attention(rng, qkv, causal, align):
    q, k, v = qkv
    q = q[..., :5, :]  # N = 5, M = 12
    mask = rng.random((B, 1, 5, N)) > 0.3
    expected, full = attention_forward(q, k, v, mask, causal=causal, align=align)
    out, cache = ulysses_mpi_forward(
        q, k, v, mask, comm=OneRankComm(), causal=causal, align=align
    )
    np.testing.assert_allclose(out, expected, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = ulysses_mpi_backward(dout, cache)
    for got, want in zip(grads, attention_backward(dout, full), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_ulysses_mpi_reports_its_statistics_in_the_cache_and_the_gradients(qkv):
    out, cache = ulysses_mpi_forward(*qkv, comm=OneRankComm(), causal=True)
    grads = ulysses_mpi_backward(np.ones_like(out), cache)
    dq, dk, dv = grads  # unpacks like a plain tuple
    assert isinstance(cache.stats, CommStats) and isinstance(grads.stats, CommStats)
    assert cache.stats.pairs == [N * (N + 1) // 2]  # one head's causal pairs
    assert cache.stats.bytes_sent == 0 == grads.stats.bytes_sent  # one rank
    assert dq.shape == qkv[0].shape


def test_ring_sends_two_blocks_per_step_and_ulysses_four_n_d_over_p():
    N_, P, D = 4096, 8, 1024
    assert ring_step_elements(N_, P, D) == 2 * (N_ // P) * D
    assert ring_elements(N_, P, D) == (P - 1) * 2 * (N_ // P) * D
    assert ring_elements(N_, P, D, backward=True) == (2 * P - 1) * 2 * (N_ // P) * D
    assert ulysses_elements(N_, P, D, exact=False) == 4 * N_ * D // P
    assert ulysses_elements(N_, P, D) == 4 * (N_ // P) * D * (P - 1) // P


def test_ulysses_volume_per_rank_falls_with_p_while_the_ring_total_does_not():
    rows = comm_table(8192, [2, 4, 8, 16], 512)  # (P, ring step, ring total, ulysses)
    ring_totals = [r[2] for r in rows]
    ulysses = [r[3] for r in rows]
    assert np.all(np.diff(ring_totals) > 0)  # 2 N D (P - 1) / P -> 2 N D
    assert np.all(np.diff(ulysses) < 0)  # ~ 4 N D / P
    assert ring_totals[-1] < 2 * 8192 * 512

"""The IO model (attention_np.efficient.io_model): the schedules it counts compute
attention, never overfill the fast memory, and move exactly the words their loops
say; bad sizes are refused by name."""

import numpy as np
import pytest

from attention_np import attention_forward
from attention_np.efficient.io_model import (
    FastMemory,
    standard_attention_io,
    standard_blocks,
    theorem2_bounds,
    tiled_attention_io,
    tiled_blocks,
)

SCHEDULES = [standard_attention_io, tiled_attention_io]


def qkv(N, d, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((N, d)) for _ in range(3))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("S", [60, 200, 5000])
def test_the_counted_schedule_computes_attention(schedule, causal, S):
    q, k, v = qkv(23, 6)
    out, count = schedule(23, 6, S, causal=causal, qkv=(q, k, v))
    expected, _ = attention_forward(q, k, v, causal=causal)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert count.peak <= S


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_counts_do_not_depend_on_whether_the_numbers_are_run(schedule):
    counted = schedule(23, 6, 200, causal=False)[1]
    run = schedule(23, 6, 200, causal=False, qkv=qkv(23, 6))[1]
    assert counted == run


def test_tiled_reads_q_once_and_k_v_once_per_query_tile():
    N, d, S = 100, 8, 1000
    count = tiled_attention_io(N, d, S, causal=False)[1]
    tiles = -(-N // count.block_q)
    assert count.reads == N * d + tiles * 2 * N * d
    assert count.writes == N * d + N  # the output and its log-sum-exp


def test_standard_writes_scores_probabilities_and_output():
    N, d = 100, 8
    count = standard_attention_io(N, d, 10_000, causal=False)[1]
    assert count.writes == 2 * N * N + N * d


def test_standard_traffic_is_4_n_squared_plus_o_n_d_once_rows_fit():
    N, d = 256, 16
    count = standard_attention_io(N, d, 64 * d * d, causal=False)[1]
    b = count.block_q
    extra = N * d + 2 * -(-N // b) * N * d + N * d  # Q once; K, V per row block; O
    assert count.total == 4 * N * N + extra


def test_causal_tiled_skips_future_tiles_and_standard_does_not():
    plain = tiled_attention_io(512, 16, 4096, causal=False)[1]
    causal = tiled_attention_io(512, 16, 4096, causal=True)[1]
    kv = lambda c: c.reads - 512 * 16  # the K, V part (Q is read once either way)
    assert kv(causal) < 0.65 * kv(plain)
    assert (
        standard_attention_io(512, 16, 4096, causal=True)[1]
        == standard_attention_io(512, 16, 4096, causal=False)[1]
    )


def test_tiled_traffic_falls_with_the_fast_memory_and_floors_at_inputs_once():
    N, d = 512, 16
    totals = [tiled_attention_io(N, d, S, causal=False)[1].total for S in (256, 1024)]
    assert totals[1] < totals[0] / 3
    floor = tiled_attention_io(N, d, 64 * N * d, causal=False)[1]
    assert floor.total == 3 * N * d + N * d + N  # read Q, K, V; write O and L


def test_block_rules_fit_the_fast_memory():
    for d in (4, 16, 64):
        for S in (4 * d + 3, 10 * d, 2 * d * d, 50 * d * d):
            bq, bk = tiled_blocks(d, S)
            assert bq * (2 * d + 2 + bk) + 2 * bk * d <= S
            b = standard_blocks(d, S)
            assert 2 * b * d + b * b <= S < 2 * (b + 1) * d + (b + 1) ** 2


def test_theorem2_bounds_are_the_stated_orders():
    assert theorem2_bounds(100, 8, 400) == (100 * 8 + 100**2, 100**2 * 64 / 400)


def test_fast_memory_refuses_to_overfill():
    mem = FastMemory(10)
    mem.load(6, "Q")
    with pytest.raises(MemoryError, match="fast memory of 10"):
        mem.hold(5)
    assert (mem.used, mem.reads) == (6, 6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tiled_attention_io(16, 8, 34, causal=False), "S = 34"),
        (lambda: standard_attention_io(16, 8, 16, causal=False), "S = 16"),
        (lambda: tiled_attention_io(0, 8, 100, causal=False), "N"),
        (lambda: tiled_attention_io(16, 8, 100, causal="yes"), "causal"),
        (lambda: tiled_attention_io(16, 8, 100, causal=False, align="x"), "align"),
        (lambda: tiled_attention_io(16, 8, 100, causal=False, block_q=0), "block_q"),
        (lambda: tiled_attention_io(16, 8, 100, causal=False, block_q=8), "block_q"),
        (
            lambda: tiled_attention_io(4, 2, 100, causal=False, qkv=np.ones((4, 2))),
            "qkv",
        ),
        (
            lambda: standard_attention_io(
                4, 2, 100, causal=False, qkv=(np.ones((4, 2)),) * 2 + (np.ones((3, 2)),)
            ),
            "qkv",
        ),
    ],
)
def test_bad_inputs_are_refused_by_name(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_causal_is_required():
    with pytest.raises(TypeError):
        tiled_attention_io(16, 8, 100)

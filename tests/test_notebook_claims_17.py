"""Claims of notebook 17 (context parallelism).

Two kinds. Deterministic claims (the merge, the ring's equality with one process,
work counts, layouts, bytes, communication volumes) are recomputed from the package
with the lesson's sizes. The measured claims (section 9's timeline and overlap probe,
section 10's memory) come from real MPI runs, which no test can repeat exactly: they
are checked against the committed benchmarks/results/ring_timeline.json that the
lesson reads, so that every sentence the lesson says about it is true of that file.
Re-running `make bench-ring` can change the numbers; this file then says which
sentences need a new look.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from attention_np import attention_backward, attention_forward, causal_mask
from attention_np.efficient import block_attention_forward
from attention_np.efficient.tiles import offset_tile_schedule
from attention_np.parallel import (
    LAYOUTS,
    bytes_sent,
    check_heads,
    comm_table,
    coverage,
    make_plan,
    merge_partials,
    ring_attention_backward,
    ring_attention_forward,
    ring_backward_trace,
    ulysses_attention_backward,
    ulysses_attention_forward,
    work_formula,
    work_table,
)

RESULT = Path(__file__).resolve().parents[1] / "benchmarks/results/ring_timeline.json"


@functools.cache
def bench():
    return json.loads(RESULT.read_text())


def probe_rows(mode):
    return [row for rank in bench()["modes"][mode]["probe"]["ranks"] for row in rank]


def run_lengths_ms(mode):
    runs = bench()["modes"][mode]["timeline"]["runs"]
    return [
        1e3 * max(s["wait"][1] for r in run["ranks"] for s in r["steps"])
        for run in runs
    ]


# ------------------------------------------------------------ deterministic claims


def test_merging_disjoint_key_sets_in_any_order_equals_full_attention():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((5, 4)), *rng.standard_normal((2, 12, 4))
    full = attention_forward(q, k, v, causal=False)[0]
    parts = []
    for p in np.split(rng.permutation(12), [3, 8]):
        o, cache = block_attention_forward(q, k[p], v[p], causal=False)
        parts.append((o, cache.lse))
    a = merge_partials(*merge_partials(*parts[0], *parts[1]), *parts[2])
    b = merge_partials(*parts[2], *merge_partials(*parts[1], *parts[0], form="sigmoid"))
    np.testing.assert_allclose(a.out, full, atol=1e-12)
    np.testing.assert_allclose(b.out, full, atol=1e-12)
    same = merge_partials(*a, np.zeros_like(full), np.full(5, -np.inf))
    np.testing.assert_array_equal(same.out, a.out)  # the empty block: bit for bit


def test_ring_forward_and_backward_equal_one_process_in_every_layout():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 2, 16, 8))
    dout = rng.standard_normal((2, 16, 8))
    out, cache = attention_forward(q, k, v, causal=True)
    grads = attention_backward(dout, cache)
    for layout in LAYOUTS:
        ring_out, ring_cache = ring_attention_forward(
            q, k, v, n_ranks=4, layout=layout, causal=True
        )
        np.testing.assert_allclose(ring_out, out, atol=1e-12)
        for g, e in zip(ring_attention_backward(dout, ring_cache), grads, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-12)


def test_every_allowed_pair_is_computed_exactly_once_in_every_layout():
    x = np.random.default_rng(2).standard_normal((2, 16, 8))
    for layout in LAYOUTS:
        _, cache = ring_attention_forward(
            x, x, x, n_ranks=4, layout=layout, causal=True
        )
        cov = coverage(cache.trace, cache.positions)
        np.testing.assert_array_equal(cov.count, causal_mask(16).astype(int))


def test_work_per_step_and_rank_for_n24_p4_is_the_printed_table():
    x = np.random.default_rng(3).standard_normal((24, 4))
    expected = {
        "contiguous": ([21, 36, 36, 36], [21, 57, 93, 129]),
        "zigzag": ([21, 18, 18, 18], [75, 75, 75, 75]),
        "striped": ([21, 21, 21, 21], [66, 72, 78, 84]),
    }
    for layout, (busiest, totals) in expected.items():
        _, cache = ring_attention_forward(
            x, x, x, n_ranks=4, layout=layout, causal=True
        )
        work = work_table(cache.trace)
        np.testing.assert_array_equal(work, work_formula(layout, 24, 4, causal=True))
        assert (
            work.max(axis=1).tolist() == busiest and work.sum(axis=0).tolist() == totals
        )


def test_contiguous_wastes_almost_half_at_n4096_p8_zigzag_and_striped_do_not():
    eff = {}
    for layout in LAYOUTS:
        work = work_formula(layout, 4096, 8, causal=True)
        eff[layout] = work.sum() / (8 * work.max(axis=1).sum())
    assert round(eff["contiguous"], 3) == 0.533
    assert round(eff["zigzag"], 3) == 1.0 and round(eff["striped"], 3) == 0.998
    totals = work_formula("contiguous", 4096, 8, causal=True).sum(axis=0)
    assert round(totals[-1] / totals[0], 2) == 14.97  # about 2P - 1 = 15
    assert eff["contiguous"] == pytest.approx(8 / 15, abs=0.001)  # P / (2P - 1)


def test_each_rank_sends_3072_bytes_forward_and_7168_backward():
    q, k, v = np.random.default_rng(4).standard_normal((3, 2, 16, 8))
    out, cache = ring_attention_forward(
        q, k, v, n_ranks=4, layout="striped", causal=True
    )
    _, trace = ring_backward_trace(np.ones_like(out), cache)
    assert bytes_sent(cache.trace).tolist() == [3072] * 4
    assert bytes_sent(trace).tolist() == [7168] * 4
    kinds = [m.kind for rec in trace for m in rec.messages]
    assert (kinds.count("kv") // 4, kinds.count("dkv") // 4) == (3, 4)


def test_ring_sends_p_over_2_times_ulysses_and_ulysses_stops_at_p_equal_h():
    rows = {P: r for P, *r in comm_table(65536, [2, 4, 8, 16, 32, 64], 4096)}
    step, ring, ulysses = rows[32]
    assert (round(ring / 1e6, 1), round(ulysses / 1e6, 1)) == (520.1, 32.5)
    assert ring / ulysses == pytest.approx(16.0)
    check_heads(32, 32)  # allowed
    with pytest.raises(ValueError):
        check_heads(32, 64)


def test_ulysses_equals_attention_and_refuses_ranks_that_do_not_divide_heads():
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((3, 1, 4, 12, 3))
    out, cache = ulysses_attention_forward(q, k, v, n_ranks=2, causal=True)
    ref, ref_cache = attention_forward(q, k, v, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    g = rng.standard_normal(out.shape)
    for a, b in zip(
        ulysses_attention_backward(g, cache),
        attention_backward(g, ref_cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-12)
    with pytest.raises(ValueError, match="divide"):
        ulysses_attention_forward(q, k, v, n_ranks=3, causal=True)


# ------------------------------------- measured claims: the committed benchmark JSON


def test_the_timeline_json_has_every_rank_and_step_with_phases_in_time_order():
    cfg = bench()["config"]
    P = cfg["n_ranks"]
    assert (P, cfg["seq_len"], cfg["layout"]) == (4, 4096, "zigzag")
    assert bench()["machine"]["cores_usable"] == 2
    for mode in ("default", "async_progress"):
        runs = bench()["modes"][mode]["timeline"]["runs"]
        assert len(runs) == 3
        for run in runs:
            assert [r["rank"] for r in run["ranks"]] == list(range(P))
            for rank in run["ranks"]:
                assert [s["step"] for s in rank["steps"]] == list(range(P))
                for s in rank["steps"]:
                    ends = [*s["post"], *s["compute"], *s["wait"]]
                    assert ends == sorted(ends)  # posted before the compute ...
                    assert s["bytes_sent"] == (2 * 2**20 if s["step"] < P - 1 else 0)


def test_the_mpi_ring_matched_one_process_and_the_simulation_in_both_runs():
    for mode in ("default", "async_progress"):
        tl = bench()["modes"][mode]["timeline"]
        assert tl["max_abs_error_vs_one_process"] < 1e-12
        assert tl["bit_identical_to_simulation"]


def test_with_mpich_defaults_no_byte_arrived_during_the_compute_no_overlap():
    rows = [r for r in probe_rows("default") if r["compute"]]
    assert len(rows) == 12
    assert all(r["arrived_before_wait"] == 0.0 for r in rows)
    waits = np.median([r["wait_s"] for r in rows]) * 1e3
    alone = np.median([r["wait_s"] for r in probe_rows("default") if not r["compute"]])
    assert round(waits, 1) == 10.2 and round(alone * 1e3, 1) == 3.9
    assert waits > alone * 1e3  # the waits contain more than the copy


def test_with_a_progress_thread_11_of_12_blocks_arrived_but_everything_got_slower():
    rows = [r for r in probe_rows("async_progress") if r["compute"]]
    arrived = [r["arrived_before_wait"] for r in rows]
    assert arrived.count(1.0) == 11 and arrived.count(0.0) == 1
    medians = {
        mode: 1e3
        * np.median([r["compute_s"] for r in probe_rows(mode) if r["compute"]])
        for mode in ("default", "async_progress")
    }
    assert (round(medians["default"], 1), round(medians["async_progress"], 1)) == (
        44.1,
        81.5,
    )
    assert round(1e3 * np.median([r["wait_s"] for r in rows]), 1) == 0.0
    alone = [r["wait_s"] for r in probe_rows("async_progress") if not r["compute"]]
    assert round(1e3 * np.median(alone), 1) == 25.7
    forward = {m: np.median(run_lengths_ms(m)) for m in ("default", "async_progress")}
    assert (round(forward["default"]), round(forward["async_progress"])) == (244, 476)


def test_the_overlap_condition_c_at_least_8f_over_b_holds_about_11_times():
    cfg = bench()["config"]
    rows = probe_rows("default")
    F = np.median(
        [
            4 * cfg["head_dim"] * r["pairs_per_head"] * cfg["heads"] / r["compute_s"]
            for r in rows
            if r["compute"]
        ]
    )
    B = bench()["modes"]["default"]["probe"]["bytes_per_step"] / np.median(
        [r["wait_s"] for r in rows if not r["compute"]]
    )
    c = cfg["seq_len"] // cfg["n_ranks"]
    assert round(8 * F / B) == 92 and round(c / (8 * F / B)) == 11


def test_step_0_computes_longer_with_as_many_allowed_pairs():
    steps = [
        s
        for run in bench()["modes"]["default"]["timeline"]["runs"]
        for r in run["ranks"]
        for s in r["steps"]
    ]
    ms = {
        t: 1e3
        * np.median(
            [s["compute"][1] - s["compute"][0] for s in steps if s["step"] == t]
        )
        for t in range(4)
    }
    ratios = [ms[0] / ms[t] for t in (1, 2, 3)]
    assert 1.45 < min(ratios) and max(ratios) < 1.65  # "1.5 to 1.6"
    assert [steps[t]["pairs_per_head"] for t in range(4)] == [524800] + [524288] * 3


def test_step_0_computes_1_25_times_the_scores_of_a_later_step_with_4_masked_tiles():
    plan = make_plan("zigzag", 4096, 4, causal=True)  # the benchmark's default tiles
    counts = []
    for t in range(4):
        for rank in range(4):
            tiles = [
                ((rows.stop - rows.start) * (cols.stop - cols.start), masked)
                for tile in plan.step(rank, t).tiles
                for rows, cols, masked in offset_tile_schedule(
                    tile.rows.stop - tile.rows.start,
                    tile.cols.stop - tile.cols.start,
                    plan.block_q,
                    plan.block_k,
                    tile.offset,
                )
            ]
            counts.append((t, sum(n for n, _ in tiles), sum(m for _, m in tiles)))
    assert {(n, m) for t, n, m in counts if t == 0} == {(655360, 4)}
    assert {(n, m) for t, n, m in counts if t > 0} == {(524288, 0)}
    assert 655360 / 524288 == 1.25


def test_memory_one_process_grows_4x_per_doubling_a_ring_rank_at_most_2x():
    ranks = bench()["memory"]["ranks"]
    dense = np.array(
        [
            r["one_process_attention_peak_bytes"][0]
            for r in ranks["1"]["rows"]
            if "one_process_attention_peak_bytes" in r
        ]
    )
    np.testing.assert_allclose(dense[1:] / dense[:-1], [3.85, 3.93], atol=0.005)
    peaks = {}
    for P, entry in ranks.items():
        first = np.array([r["ring_peak_bytes"][0] for r in entry["rows"]])
        second = np.array([r["ring_peak_bytes"][1] for r in entry["rows"]])
        assert np.abs(first - second).max() <= 1024  # agree within 1 KiB
        peaks[P] = first.max(axis=1) / 2**20
        growth = peaks[P][1:] / peaks[P][:-1]
        assert growth.max() < 2.0
    assert [round(peaks[P][-1], 2) for P in ("1", "2", "4")] == [16.5, 12.35, 9.31]

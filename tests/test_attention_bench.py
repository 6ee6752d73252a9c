"""The attention benchmark's code runs end to end at tiny sizes (no timings are
checked), and its step-by-step replay computes exactly what attention_np does."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from attention_np import attention as attention_module
from attention_np import attention_backward, attention_forward, threads

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("attention_bench", "attention_breakdown", "bench_report"):
        sys.modules.pop(name, None)
    return importlib.import_module("attention_bench")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("workers", [1, 3])
def test_the_replay_equals_the_library_bit_for_bit(bench, monkeypatch, causal, workers):
    bd = sys.modules["attention_breakdown"]
    monkeypatch.setattr(threads, "MIN_TASK_SIZE", 30)  # tasks per batch entry
    monkeypatch.setattr(attention_module, "_BLOCK_BYTES", 200)  # several row blocks
    rng = np.random.default_rng(0)
    q, k, v, dout = (rng.standard_normal((2, 3, 6, 5)) for _ in range(4))
    k = k[:, :1]  # keys shared by the heads: gradients summed back
    out, cache = attention_forward(q, k, v, causal=causal, workers=workers)
    clock = bd.Clock()
    out2, cache2 = bd.replay_forward(q, k, v, causal, workers, clock)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(cache2.p, cache.p)
    for a, b in zip(
        bd.replay_backward(dout, cache2, clock), attention_backward(dout, cache),
        strict=True,
    ):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    shares = clock.shares(bd.threads_used((2, 3), 6, 6, workers))
    assert set(shares) == set(bd.CATEGORIES) and shares["matmuls"] > 0


def test_quick_run_prints_tables_targets_and_the_figure(bench, tmp_path, capsys):
    argv = ["--quick", "--no-torch", "--cores", "1", "2", "--out-dir", str(tmp_path)]
    rows = bench.main(argv)
    text = capsys.readouterr().out
    assert "load average" in text and "| cores | dtype | causal | N | fwd |" in text
    assert "Where the time goes, forward" in text and "Targets (issue 20" in text
    assert {r["cores"] for r in rows} == {1, 2} and len(rows) == 2 * 2 * 2 * 2
    assert (tmp_path / "bench_breakdown.png").stat().st_size > 0


def test_targets_are_judged_in_both_directions(bench):
    report = sys.modules["bench_report"]
    row = dict(cores=2, dtype="float32", N=2048, fwd=1.0, fb=2.0, fwd_floor=0.8,
               fb_floor=1.9, tiled=0.9, fwd_torch=0.5, fb_torch=1.0)  # fmt: skip
    rows = [{**row, "causal": False}, {**row, "causal": True, "tiled": 0.3}]
    _, lines = report.targets(rows)
    verdict = {text: ok for text, _, _, ok in lines}
    assert verdict["core forward / floor, N=2048 full"] is True  # 1.25 <= 1.3
    assert verdict["core forward / torch SDPA, N=2048 full"] is False  # 2.0
    assert verdict["core / tiled forward, N=2048 full"] is False  # 1.11 < 1.2
    assert verdict["core / tiled forward, N=2048 causal"] is True  # 3.33 >= 2.5


def test_bad_cores_end_with_a_usage_error(bench):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse(["--cores", "0"])
    assert exit_info.value.code == 2


def test_targets_use_the_float32_rows_when_float64_rows_follow(bench):
    """The default run measures both dtypes; float64 rows must not hide float32's."""
    report = sys.modules["bench_report"]
    row = dict(cores=2, N=2048, fwd=1.0, fb=2.0, fwd_floor=0.8, fb_floor=1.9,
               tiled=0.9, fwd_torch=0.5, fb_torch=1.0)  # fmt: skip
    rows = [
        {**row, "dtype": dtype, "causal": causal}
        for dtype in ("float32", "float64")
        for causal in (False, True)
    ]
    rows[-1]["fwd"] = 100.0  # a float64 row that would fail every target
    _, lines = report.targets(rows)
    verdict = {text: ok for text, _, _, ok in lines}
    assert verdict["core forward / floor, N=2048 causal"] is True  # the float32 row


def test_each_stacked_bar_is_as_tall_as_ours_over_the_floor(bench):
    """The figure's bars match the table's ratio even when the replay's clocks add
    up to more than the real call (a negative "other" once made bars too tall)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = sys.modules["bench_report"]
    parts = dict.fromkeys(report.PARTS[:-1], 0.0)
    over = {**parts, "matmuls": 1.0, "exp": 0.3, "masking": 0.2}  # 1.5 > fwd
    under = {**parts, "matmuls": 0.9, "exp": 0.1}  # 1.0 < fwd: "other" is 0.2
    rows = [
        dict(N=2048, causal=causal, fwd=1.2, fwd_floor=1.0, parts_fwd=p)
        for causal, p in ((True, over), (False, under))
    ]
    fig, ax = plt.subplots()
    report._bars(ax, rows, "fwd")
    tops = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    plt.close(fig)
    assert tops == pytest.approx({0: 1.2, 1: 1.2})

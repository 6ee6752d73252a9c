"""The efficiency benchmark's code path runs end to end at tiny sizes (no timings
are checked: only that the tables, ratio lines and figures come out)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "efficiency_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("efficiency_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_prints_tables_and_saves_figures(tmp_path, capsys):
    bench = load_bench()
    argv = [
        "--quick",
        "--sizes",
        "16",
        "32",
        "64",
        "--mem-sizes",
        "16",
        "32",
        "--window",
        "4",
        "--block-q",
        "8",
        "--block-k",
        "16",
        "--no-torch",
        "--mem-cap",
        "2e-6",
        "--out-dir",
        str(tmp_path),
    ]
    times, memory = bench.main(argv)
    text = capsys.readouterr().out
    assert "| N | naive |" in text and "Ratios and targets" in text
    memory_rows = text.split("Peak memory")[1].splitlines()
    assert any(row.startswith("| 32 | ~") for row in memory_rows)  # above the cap
    assert set(times) == set(memory) and all(
        times[name] for name in times if not name.startswith("naive")
    )
    assert (tmp_path / "bench_time_vs_n.png").stat().st_size > 0
    assert (tmp_path / "bench_memory_vs_n.png").stat().st_size > 0


def test_slope_and_crossover_helpers():
    bench = load_bench()
    assert bench.slope({100: 1.0, 200: 4.0, 400: 16.0}, 100) == pytest.approx(2.0)
    fast = {100: 2.0, 1000: 0.5}
    slow = {100: 1.0, 1000: 1.0}
    assert 100 < bench.crossover(fast, slow) < 1000
    assert bench.crossover(slow, {100: 0.5, 1000: 0.5}) is None

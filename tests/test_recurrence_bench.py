"""The recurrence speed benchmark runs end to end at tiny sizes (no timing is
checked: only that the tables, slopes, target lines and the figure come out)."""

import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "recurrence_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("recurrence_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_tables_and_saves_the_figure(tmp_path, capsys):
    bench = load_bench()
    argv = ["--quick", "--sizes", "32", "64", "--models", "gla", "gated_deltanet"]
    argv += ["--out-dir", str(tmp_path), "--chunk-size", "16", "--default-malloc"]
    assert bench.main(argv + ["--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "gated_deltanet: forward, ms" in out and "slopes (N >= 64)" in out
    assert (tmp_path / "bench_recurrence_time_vs_n.png").stat().st_size > 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["machine"]["blas_threads"] == 1
    assert len(report["machine"]["load_average_1min"]) == 2
    model = report["models"]["gated_deltanet"]
    assert set(model["ms"]) == {"recurrent", "parallel", "chunkwise"}
    assert set(model["ms"]["chunkwise"]) == {"32", "64"}
    assert model["recurrent_over_chunkwise_4096"] is None
    assert report["settings"]["malloc_keeps_freed_memory"] is False
    assert report["settings"]["rounds"] == 1


def test_rounds_keep_the_best_call_of_each_point_and_their_own_ratios():
    bench = load_bench()
    calls = iter([3.0, 1.0, 2.0, 5.0])  # recurrent, chunkwise; round 1, round 2

    def fake_best_times(runs, repeats, min_seconds):
        return {key: next(calls) for key in runs}

    bench.best_times = fake_best_times
    args = bench.parse(["--sizes", "4096", "--models", "gla", "--rounds", "2",
                        "--parallel-max", "1"])  # fmt: skip
    results, by_round = bench.measure(["gla"], [4096], args)
    assert results["gla"]["recurrent"][4096] == 2.0  # the better round for each
    assert results["gla"]["chunkwise"][4096] == 1.0
    assert [r["gla"]["chunkwise"][4096] for r in by_round] == [1.0, 5.0]
    bench.ARGS = args
    line = bench.target_lines(results, by_round=by_round)[0]
    assert "2.0x (rounds: 3.0, 0.4) (target >= 10: MISSED)" in line
    summary = bench.summary(results["gla"], 1024, [r["gla"] for r in by_round])
    assert summary["by_round"]["recurrent_over_chunkwise_4096"] == [3.0, 0.4]


def test_keep_freed_memory_applies_on_glibc():
    bench = f"runpy.run_path({str(PATH)!r})"
    code = f"import runpy; print({bench}['keep_freed_memory']())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out.stdout.strip() == str(expected)


def test_fit_and_crossover_helpers():
    bench = load_bench()
    assert bench.slope({1: 1.0, 2: 4.0, 4: 16.0}, 1) == pytest.approx(2.0)
    assert bench.crossover({1: 2.0, 2: 1.0, 4: 1.0}, {1: 1.0, 2: 2.0, 4: 4.0}) == 2
    assert bench.crossover({1: 2.0}, {1: 1.0}) is None
    lines = bench.target_lines(
        {"m": {"recurrent": {4096: 1.0}, "chunkwise": {4096: 0.05, 16384: 0.25}}}
    )
    assert "20.0x (target >= 10: ok)" in lines[0] and "MISSED" in lines[1]


def test_bad_flags_exit_with_status_2(capsys):
    bench = load_bench()
    with pytest.raises(SystemExit) as stop:
        bench.parse(["--repeats", "0"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit):
        bench.parse(["--models", "mamba"])

"""The lesson benchmark scripts of lessons 13-16 run and write what the notebooks read
(no timing is checked, only the shape of the records)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_best_time_reports_cpu_and_wall_seconds():
    bench = load("lessons_efficient_bench")
    t = bench.best_time(lambda: sum(range(1000)), 3)
    assert set(t) == {"cpu_s", "wall_s"} and t["cpu_s"] >= 0 and t["wall_s"] > 0


def test_machine_description_names_cpu_cores_and_versions():
    info = load("lessons_efficient_bench").machine()
    assert {"cpu", "logical_cores", "python", "numpy", "blas", "os"} <= set(info)


def test_a_bad_repeat_count_is_an_argparse_error():
    with pytest.raises(SystemExit) as exit_info:
        load("lessons_efficient_bench").parse(["--repeats", "0"])
    assert exit_info.value.code == 2


def test_memory_script_writes_the_file_lesson_13_reads(tmp_path):
    load("lessons_efficient_memory").main(
        ["--lesson", "13", "--out-dir", str(tmp_path)]
    )
    record = json.loads((tmp_path / "13_the_quadratic_wall_memory.json").read_text())
    peaks = record["peak_bytes"]
    assert len(peaks["sizes"]) == len(peaks["standard"])
    assert all(
        p > 4 * n * n for n, p in zip(peaks["sizes"], peaks["standard"], strict=True)
    )


def test_committed_result_files_hold_what_the_lessons_read():
    results = BENCH / "results"
    for name, keys in [
        (
            "13_the_quadratic_wall",
            {"sizes", "forward", "products", "ways_sizes", "ways"},
        ),
        ("14_flash_attention_tiling", {"reference_vs_optimised", "tile_sizes"}),
        ("15_linear_attention", {"sizes", "times"}),
        ("16_sparse_attention", {"sizes", "times", "window"}),
    ]:
        record = json.loads((results / f"{name}.json").read_text())
        assert keys <= set(record) and "machine" in record
        assert "load_average_1_5_15_min" in record

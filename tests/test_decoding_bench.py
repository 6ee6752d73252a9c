"""The decoding benchmark runs end to end in quick mode and writes the JSON file that
lesson 11 reads (no timing is checked, only the file's shape)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "benchmarks" / "decoding_bench.py"
KEYS = {
    "machine": {"platform", "processor", "cpu_count", "blas_threads", "python"},
    "generation": {"sequences", "cached_seconds", "recomputed_seconds", "new_tokens"},
    "additive_vs_dot": {"N", "M", "width", "A", "additive_seconds", "dot_seconds"},
}


def load_bench():
    spec = importlib.util.spec_from_file_location("decoding_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_result(result):
    for section, keys in KEYS.items():
        assert keys <= set(result[section]), section
    assert result["generation"]["cached_seconds"] > 0
    assert result["additive_vs_dot"]["dot_seconds"] > 0


def test_quick_mode_writes_the_json_the_lesson_reads(tmp_path, capsys):
    if not (ROOT / "checkpoints" / "reversal.npz").exists():
        pytest.skip("checkpoints/reversal.npz is not in this tree")
    out = tmp_path / "decoding.json"
    assert load_bench().main(["--quick", "--out", str(out)]) == 0
    check_result(json.loads(out.read_text()))
    assert "cached" in capsys.readouterr().out


def test_the_committed_results_have_the_sizes_lesson_11_prints():
    result = json.loads((ROOT / "benchmarks" / "results" / "decoding.json").read_text())
    check_result(result)
    assert result["generation"]["sequences"] == 500
    assert (result["additive_vs_dot"]["N"], result["additive_vs_dot"]["width"]) == (
        256,
        64,
    )


def test_a_bad_flag_is_an_argparse_error():
    with pytest.raises(SystemExit) as err:
        load_bench().main(["--repeats", "0"])
    assert err.value.code == 2

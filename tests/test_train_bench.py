"""The training benchmark's code path runs end to end (one tiny repeat; no timing is
checked, only that every row and the ratios come out)."""

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("train_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_repeat_prints_every_model_and_a_ratio_or_a_skip(capsys):
    bench = load_bench()
    assert bench.main(["--repeats", "1", "--steps", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| ") and "tokens" not in line and "---" not in line
    ]
    assert len(rows) == 3
    assert {"decoder-only", "dot", "additive"} <= set(
        " ".join(rows).replace(",", " ").split()
    )
    if bench.torch is None:
        assert all("skipped: no torch" in r for r in rows)
    else:  # the two ratio columns NumPy / PyTorch
        assert all(float(c) > 0 for r in rows for c in r.split("|")[-3:-1])
    assert "load average" in out


def test_the_bench_refuses_zero_repeats(capsys):
    bench = load_bench()
    try:
        bench.main(["--repeats", "0"])
    except SystemExit as err:
        assert err.code == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert "torch_models" in sys.modules or bench.torch is None

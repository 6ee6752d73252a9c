"""The ring timeline benchmark runs end to end at tiny sizes under MPI and writes the
JSON that lesson 17 reads (no timing is checked: only the structure and the facts
that do not depend on the clock). Skipped without mpi4py or mpiexec."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "ring_timeline_bench.py"
_SEARCH = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
HAVE_MPI = (
    importlib.util.find_spec("mpi4py") is not None
    and shutil.which("mpiexec", path=_SEARCH) is not None
)


@pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec (pip install mpich)")
def test_quick_run_writes_every_rank_step_and_phase(tmp_path):
    out = tmp_path / "ring.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    P = data["config"]["n_ranks"]
    assert {"cpu", "logical_cores", "mpi_library"} <= set(data["machine"])
    for mode in ("default", "async_progress"):
        timeline = data["modes"][mode]["timeline"]
        assert timeline["bit_identical_to_simulation"]
        assert timeline["max_abs_error_vs_one_process"] < 1e-12
        for run in timeline["runs"]:
            assert [r["rank"] for r in run["ranks"]] == list(range(P))
            for rank in run["ranks"]:
                for t, step in enumerate(rank["steps"]):
                    assert step["step"] == t
                    ends = [*step["post"], *step["compute"], *step["wait"]]
                    assert ends == sorted(ends)  # post, compute, wait in order
        probes = data["modes"][mode]["probe"]["ranks"]
        assert len(probes) == P
        assert all(0.0 <= p["arrived_before_wait"] <= 1.0 for r in probes for p in r)
    for P_mem, entry in data["memory"]["ranks"].items():
        for row in entry["rows"]:
            assert all(len(peaks) == int(P_mem) for peaks in row["ring_peak_bytes"])


def test_without_mpi_the_benchmark_says_what_to_install(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no mpiexec anywhere
    code = (
        "import sys, runpy; sys.modules['mpi4py'] = None; "
        f"sys.argv = ['bench', '--out', {str(tmp_path / 'x.json')!r}]; "
        f"runpy.run_path({str(BENCH)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2
    assert "pip install mpi4py mpich" in done.stderr
    assert not (tmp_path / "x.json").exists()

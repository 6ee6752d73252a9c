"""The whole repository (package, tests, benchmarks, tools, notebooks, docs) stays
ruff-clean and ruff-formatted (rules in pyproject.toml, notebooks/ruff.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.prefix) / "bin/ruff").exists(),
    reason="ruff is not installed",
)
@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean_over_the_whole_repository(command):
    ruff = shutil.which("ruff") or str(Path(sys.prefix) / "bin/ruff")
    result = subprocess.run([ruff, *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

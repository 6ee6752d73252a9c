"""The code stays ruff-clean (rules and line length in pyproject.toml)."""

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
def test_ruff_check_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.prefix) / "bin/ruff")
    result = subprocess.run(
        [ruff, "check", "attention_np", "tests", "benchmarks", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""Every numbered notebook executes top to bottom and follows the course skeleton.

The notebooks run in memory (the repository's .ipynb files are never written) with
ATTENTION_NP_FIGURES pointing at a temporary folder, in a kernel of this interpreter,
with the notebook's folder as working directory, exactly like tools/run_notebooks.py.
Each must finish in under 60 s on a laptop; the per-cell timeout below is generous so
a slow CI machine does not fail spuriously, and the duration is printed (pytest -s).
"""

import importlib.util
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell on a slow CI machine; locally < 60 s per notebook
MAX_DEFS = 2  # notebooks call the package; at most a couple of tiny helpers


def load_runner():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", ROOT / "tools" / "run_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_of(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def markdown_of(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_NP_FIGURES", str(tmp_path / "figures"))
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    load_runner().execute(nb, path.parent, timeout=CELL_TIMEOUT)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("ename")]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_skeleton(path):
    nb = nbformat.read(path, as_version=4)
    text = markdown_of(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "## Summary" in text and "## Exercises" in text
    assert "np.random.default_rng(0)" in code_of(nb)
    defs = re.findall(r"^\s*def ", code_of(nb), flags=re.MULTILINE)
    assert len(defs) <= MAX_DEFS, "library code belongs in attention_np/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_and_shows_a_figure(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), (
        "run tools/run_notebooks.py"
    )
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_runner_strips_volatile_outputs_and_merges_streams():
    runner = load_runner()
    new_output = nbformat.v4.new_output
    cell = nbformat.v4.new_code_cell("print('a'); print('b')")
    cell.metadata["execution"] = {"iopub.execute_input": "2024-01-01T00:00:00Z"}
    cell.outputs = [
        new_output("stream", name="stdout", text="a\n"),
        new_output("stream", name="stdout", text="b\n"),
        new_output("display_data", data={runner.WIDGET_MIME: {"model_id": "x"}}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"state": {}}
    runner.clean(nb)
    assert "widgets" not in nb.metadata and "execution" not in cell.metadata
    assert [(o.output_type, o.text) for o in cell.outputs] == [("stream", "a\nb\n")]


def test_explore_attention_in_a_kernel_shows_the_static_figure_once(tmp_path):
    source = (
        "import numpy as np\n"
        "from attention_np.viz import explore_attention\n"
        "w = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3))\n"
        "explore_attention(w, ['a', 'b', 'c'], ['w', 'x', 'y', 'z'])"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    load_runner().execute(nb, tmp_path, timeout=CELL_TIMEOUT)
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1

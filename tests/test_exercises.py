"""Exercise notebooks: solutions pass their checks, student copies run and say
"not implemented", and the builder replaces exactly the marked regions.

Solution notebooks run in a real kernel (like tools/run_notebooks.py). Student copies
run in-process, cell by cell, which is enough to prove that every stub is reported
and nothing crashes, and takes a fraction of a second.
"""

import ast
import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attention_np.exercises.build import (
    BEGIN,
    END,
    MarkerError,
    build_student_copies,
    student_notebook,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _report_mode(monkeypatch):
    """Checkers print and return False here, even if the caller exported strict mode."""
    monkeypatch.delenv("ATTENTION_NP_STRICT", raising=False)


SRC = ROOT / "notebooks" / "exercises"
NOTEBOOKS = sorted(SRC.glob("*.ipynb"))


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"])


def check_cells(nb):
    """The cells that call a checker (nbgrader autograder cells)."""
    return [
        c
        for c in nb["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"
    ]


def text_of(outputs):
    parts = []
    for o in outputs:
        parts.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def run_in_process(nb):
    """Execute code cells in one namespace; return [(stdout, value of last expr)]."""
    namespace, results = {"__name__": "__main__"}, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse(source(cell))
        last = (
            tree.body.pop()
            if tree.body and isinstance(tree.body[-1], ast.Expr)
            else None
        )
        buffer, value = io.StringIO(), None
        with contextlib.redirect_stdout(buffer):
            exec(compile(tree, "<cell>", "exec"), namespace)
            if last is not None:
                value = eval(
                    compile(ast.Expression(last.value), "<cell>", "eval"), namespace
                )
        results.append((cell, buffer.getvalue(), value))
    return results


def test_there_are_at_least_ten_exercises_in_teaching_order():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) >= 10
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solution_notebook_is_nbgrader_ready(path):
    """Each solution region sits in a cell nbgrader knows is a solution cell, there
    is a check cell, and grade ids are unique (nbgrader refuses duplicates)."""
    nb = load(path)
    ids = [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in nb["cells"]
        if "nbgrader" in c["metadata"]
    ]
    assert len(ids) == len(set(ids))
    marked = [c for c in nb["cells"] if BEGIN in source(c)]
    assert marked, "no solution region"
    assert all(c["metadata"].get("nbgrader", {}).get("solution") for c in marked)
    assert check_cells(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_solution_notebook_shows_every_check_passing(path):
    for cell in check_cells(load(path)):
        out = text_of(cell["outputs"])
        assert "cases pass" in out and "✗" not in out and out.rstrip().endswith("True")


def load_runner():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", ROOT / "tools" / "run_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solution_notebook_executes_and_every_check_passes(path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    load_runner().execute(nb, path.parent, timeout=120)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("ename")]
    checks = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]
    for cell in checks:
        out = text_of(cell.outputs)
        assert "cases pass" in out and "✗" not in out, out
        assert out.rstrip().endswith("True"), out  # the checker returned True


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    build_student_copies(SRC, out, log=lambda *_: None)
    return out


def test_make_student_command_builds_a_copy_of_every_notebook(tmp_path):
    out = tmp_path / "student"
    result = subprocess.run(
        [sys.executable, "-m", "attention_np.exercises", "build", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert (out / "README.md").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_contains_no_solution_and_no_outputs(path, student_dir):
    nb = load(student_dir / path.name)
    text = "\n".join(source(c) for c in nb["cells"])
    assert BEGIN not in text and END not in text
    assert "raise NotImplementedError()" in text
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_runs_and_every_check_says_not_implemented(path, student_dir):
    results = run_in_process(load(student_dir / path.name))  # raises if a cell fails
    checks = [
        (out, value)
        for cell, out, value in results
        if cell["metadata"].get("nbgrader", {}).get("grade")
    ]
    assert checks
    for out, value in checks:
        assert value is False
        assert "not implemented yet" in out and "✗" not in out


def test_student_copy_runs_in_a_real_kernel(student_dir):
    nbformat = pytest.importorskip("nbformat")
    path = student_dir / NOTEBOOKS[0].name
    nb = nbformat.read(path, as_version=4)
    load_runner().execute(nb, path.parent, timeout=120)
    out = "".join(text_of(c.outputs) for c in nb.cells if c.cell_type == "code")
    assert "not implemented yet" in out


# --- the builder on a tiny synthetic notebook --------------------------------------


def code_cell(text, outputs=()):
    return {
        "cell_type": "code",
        "metadata": {},
        "source": text,
        "outputs": list(outputs),
        "execution_count": 3,
    }


def markdown_cell(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


FUNCTION = f'''def f(x):
    """Docstring stays."""
    {BEGIN}
    y = x + 1
    return y
    {END}'''


def test_builder_replaces_region_keeping_signature_docstring_and_indent():
    nb, count = student_notebook({"cells": [code_cell(FUNCTION)]})
    assert count == 1
    assert source(nb["cells"][0]) == (
        'def f(x):\n    """Docstring stays."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()"
    )


def test_builder_replaces_several_regions_and_keeps_code_between_them():
    text = f"a = 1\n{BEGIN}\nb = 2\n{END}\nc = 3\n  {BEGIN}\n  d = 4\n  {END}\ne = 5"
    nb, count = student_notebook({"cells": [code_cell(text)]})
    assert count == 2
    assert source(nb["cells"][0]) == (
        "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nc = 3\n"
        "  # YOUR CODE HERE\n  raise NotImplementedError()\ne = 5"
    )


def test_builder_leaves_unmarked_cells_as_they_are_and_clears_outputs():
    cells = [
        markdown_cell("# Title\ntext"),
        code_cell(["x = 1\n", "y = 2"], [{"a": 1}]),
    ]
    original = json.loads(json.dumps(cells))
    nb, count = student_notebook({"cells": cells})
    assert count == 0
    assert nb["cells"][0] == original[0]
    assert nb["cells"][1]["source"] == ["x = 1\n", "y = 2"]
    assert nb["cells"][1]["outputs"] == [] and nb["cells"][1]["execution_count"] is None
    assert cells == original  # the input notebook is not modified


def test_builder_replaces_a_markdown_region_with_an_answer_stub():
    text = f"Explain:\n<!-- {BEGIN} -->\nThe answer.\n<!-- {END} -->\nEnd."
    nb, count = student_notebook({"cells": [markdown_cell(text)]})
    assert count == 1
    assert source(nb["cells"][0]) == "Explain:\nYOUR ANSWER HERE\nEnd."


@pytest.mark.parametrize(
    "text",
    [f"{BEGIN}\nx = 1", f"x = 1\n{END}", f"{BEGIN}\n{BEGIN}\n{END}\n{END}"],
    ids=["begin without end", "end without begin", "nested"],
)
def test_builder_rejects_unmatched_markers_naming_the_cell(text):
    with pytest.raises(MarkerError, match="cell 1"):
        student_notebook({"cells": [code_cell("ok = 1"), code_cell(text)]})


def test_builder_refuses_to_overwrite_the_solutions(tmp_path):
    (tmp_path / "a.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match="overwrite"):
        build_student_copies(tmp_path, tmp_path, log=lambda *_: None)

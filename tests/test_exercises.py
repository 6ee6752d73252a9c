"""Exercise notebooks and the student kit.

Solution notebooks: named after the lesson they follow, nbgrader metadata right
(setup and check cells locked, one graded check cell per function, each importing its
checker right before calling it), every check passing in the committed outputs and
when run again. Student kit: no solution code, no solution notebook, no import of the
package's implementation of a graded function; every check cell of a fresh copy fails
with "not implemented yet". The builder, the wheel and the audit on small examples.

Notebooks run in-process here, cell by cell in one namespace (a second per notebook);
tests/test_nbgrader_e2e.py runs them through nbgrader in real kernels.
"""

import ast
import contextlib
import io
import json
import re
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

import attention_np.exercises as ex
from attention_np.exercises import guard
from attention_np.exercises.audit import audit, audit_notebook
from attention_np.exercises.build import BEGIN, END, MarkerError, student_notebook
from attention_np.exercises.kit import MARKER, build_kit

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "exercises"
NOTEBOOKS = sorted(SRC.glob("*.ipynb"))
LESSONS = {p.name[:2]: p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
GUIDE = SRC / "README.md"


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def nbgrader(cell):
    return cell["metadata"].get("nbgrader", {})


def check_cells(nb):
    return [
        c for c in nb["cells"] if c["cell_type"] == "code" and nbgrader(c).get("grade")
    ]


def solution_code_cells(nb):
    return [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and nbgrader(c).get("solution")
    ]


def defined_functions(nb):
    names = []
    for cell in solution_code_cells(nb):
        tree = ast.parse(source(cell))
        names += [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    return names


def checker_calls(nb):
    """[(checker name, student function name)] of the check cells, in order."""
    calls = []
    for cell in check_cells(nb):
        call = ast.parse(source(cell)).body[-1].value
        calls.append((call.func.id, call.args[0].id))
    return calls


def run_in_process(nb):
    """Execute code cells in one namespace; [(cell, stdout, exception or None)]."""
    namespace, results = {"__name__": "__main__"}, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        buffer, error = io.StringIO(), None
        with contextlib.redirect_stdout(buffer):
            try:
                exec(compile(source(cell), "<cell>", "exec"), namespace)
            except AssertionError as exc:
                error = exc
        results.append((cell, buffer.getvalue(), error))
    return results


# --- names and numbers ---------------------------------------------------------------


def test_seventeen_exercises_each_named_after_the_lesson_it_follows():
    assert len(NOTEBOOKS) == 17
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d[a-e]_[a-z0-9_]+", path.stem), path.name
        lesson = path.name[:2]
        assert lesson in LESSONS, f"{path.name}: no lesson {lesson}"
        title = source(load(path)["cells"][0])
        assert title.startswith(f"# Exercise {path.stem[:3]}:"), title[:60]
        assert f"Follows lesson {lesson}" in title
        # the lesson's own title (its first words, up to a colon), as in the lesson
        said = re.search(rf"Follows lesson {lesson} \(\*([^*]+)\*\)", title).group(1)
        heading = source(load(LESSONS[lesson])["cells"][0]).split("\n")[0]
        assert heading.startswith(f"# {lesson} · {said.split(':')[0]}"), (said, heading)


def test_the_site_landing_page_counts_the_exercises():
    # docs/index.md once said "Sixteen notebooks" after a seventeenth was added
    words = ["Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen", "Twenty"]
    said = re.findall(
        rf"\b({'|'.join(words)}) notebooks", (ROOT / "docs/index.md").read_text()
    )
    assert said == [words[len(NOTEBOOKS) - 15]]


def test_the_letters_count_up_within_each_lesson():
    by_lesson = {}
    for path in NOTEBOOKS:
        by_lesson.setdefault(path.name[:2], []).append(path.name[2])
    for letters in by_lesson.values():
        assert letters == list("abcde"[: len(letters)])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_guide_lists_the_notebook(path):
    assert f"`{path.stem}`" in GUIDE.read_text(encoding="utf-8")


def test_every_notebook_named_in_the_readmes_exists():
    named = set()
    for text in (GUIDE.read_text(), (ROOT / "README.md").read_text()):
        named |= set(re.findall(r"\b(\d\d[a-e]_[a-z0-9_]+)\b", text))
    assert named and named <= {p.stem for p in NOTEBOOKS}


# --- nbgrader metadata ---------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgrader_metadata_locks_setup_and_check_cells(path):
    nb = load(path)
    ids = [nbgrader(c)["grade_id"] for c in nb["cells"] if nbgrader(c)]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"ex{path.stem[:3]}_") for i in ids)
    for cell in nb["cells"]:
        meta = nbgrader(cell)
        if cell["cell_type"] == "code":
            assert meta, "every code cell carries nbgrader metadata"
            assert meta["locked"] is not meta["solution"]  # answer cells alone unlocked
        if BEGIN in source(cell):
            assert meta.get("solution"), "a solution region outside a solution cell"
    for cell in check_cells(nb):
        assert nbgrader(cell)["locked"] and nbgrader(cell)["points"] == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_check_cell_imports_its_checker_right_before_calling_it(path):
    for cell in check_cells(load(path)):
        body = ast.parse(source(cell)).body
        assert len(body) == 2, source(cell)
        imp, call = body
        assert (
            isinstance(imp, ast.ImportFrom) and imp.module == "attention_np.exercises"
        )
        assert [a.name for a in imp.names] == [call.value.func.id]
        assert call.value.func.id in ex.__all__


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_function_the_student_writes_has_its_own_graded_check(path):
    nb = load(path)
    checked = [fn for _, fn in checker_calls(nb)]
    assert sorted(checked) == sorted(defined_functions(nb))


def graded_functions(nb):
    """{student function: checker object} for a notebook."""
    out = {}
    for check_name, fn in checker_calls(nb):
        module = sys.modules[getattr(ex, check_name).__module__]
        checkers = [v for v in vars(module).values() if isinstance(v, ex.Checker)]
        out[fn] = next(c for c in checkers if c.call.startswith(f"{check_name}("))
    return out


# --- what a notebook imports ---------------------------------------------------------


def imported_objects(nb):
    """[(name, object)] imported by name from attention_np in any code cell."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(source(cell))):
            if isinstance(node, ast.ImportFrom) and node.module.startswith(
                "attention_np"
            ):
                module = __import__(node.module, fromlist=["_"])
                out += [
                    (a.asname or a.name, getattr(module, a.name)) for a in node.names
                ]
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_imports_the_implementation_of_what_it_grades(path):
    nb = load(path)
    forbidden = {}
    for checker in graded_functions(nb).values():
        forbidden.update(guard.resolve(checker.forbidden))
    for name, obj in imported_objects(nb):
        code = getattr(getattr(obj, "__wrapped__", obj), "__code__", None)
        assert code not in forbidden, f"{path.name} imports {name}"


def test_no_package_name_shadows_a_function_the_student_wrote_before():
    written = set()
    for path in NOTEBOOKS:
        nb = load(path)
        written |= set(defined_functions(nb))
        for name, _ in imported_objects(nb):
            assert name not in written, f"{path.name} imports {name}"


def test_no_hint_contains_a_line_of_a_solution():
    lines = set()
    for path in NOTEBOOKS:
        for cell in solution_code_cells(load(path)):
            region = source(cell).split(BEGIN)[-1].split(END)[0]
            for line in region.split("\n"):
                code = line.split("#")[0].strip()
                if len(code) >= 16:
                    lines.add(code)
    texts = [
        h.text
        for checker in (v for m in list(sys.modules.values())
                        if isinstance(m, types.ModuleType)
                        and m.__name__.startswith("attention_np.exercises.")
                        for v in vars(m).values() if isinstance(v, ex.Checker))
        for h in checker.hints
    ]  # fmt: skip
    assert texts and lines
    for line in lines:
        assert not any(line in t for t in texts), line


# --- the solutions ------------------------------------------------------------------


def text_of(outputs):
    parts = [
        o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs
    ]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_solution_notebook_shows_every_check_passing(path):
    nb = load(path)
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("ename")]
    for cell in check_cells(nb):
        out = text_of(cell["outputs"])
        assert re.search(r"✓ \d+/\d+ cases pass", out) and "✗" not in out, out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solution_notebook_runs_and_every_check_passes(path):
    for cell, out, error in run_in_process(load(path)):
        assert error is None, out
        if nbgrader(cell).get("grade"):
            assert "cases pass" in out and "✗" not in out, out


# --- the student kit ----------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "student"
    result = subprocess.run(
        [sys.executable, "-m", "attention_np.exercises", "build", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    "args",
    [["audit", "no/such/folder"], ["build", "unused", "--src", "no/such/folder"]],
)
def test_the_command_line_refuses_a_folder_that_does_not_exist(tmp_path, args):
    result = subprocess.run(
        [sys.executable, "-m", "attention_np.exercises", *args],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: argument" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "unused").exists()


def test_make_student_writes_the_kit(kit):
    assert sorted(p.name for p in kit.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert {"README.md", "requirements.txt", MARKER} <= {p.name for p in kit.iterdir()}
    wheels = list(kit.glob("*.whl"))
    assert len(wheels) == 1
    assert f"./{wheels[0].name}" in (kit / "requirements.txt").read_text()


def test_the_kit_holds_no_solution_notebook_and_no_solution_code(kit):
    solution_lines = set()
    for path in NOTEBOOKS:
        for cell in solution_code_cells(load(path)):
            region = source(cell).split(BEGIN)[-1].split(END)[0]
            solution_lines |= {
                line.strip() for line in region.split("\n")
                if len(line.split("#")[0].strip()) >= 12
            }  # fmt: skip
    files = [p for p in kit.rglob("*") if p.is_file() and p.suffix != ".whl"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    assert BEGIN not in text and END not in text
    assert not [line for line in solution_lines if line in text]
    with zipfile.ZipFile(next(kit.glob("*.whl"))) as wheel:
        names = wheel.namelist()
    assert not [n for n in names if n.endswith(".ipynb") or "notebooks" in n]
    assert "attention_np/exercises/framework.py" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_imports_no_implementation_of_a_graded_function(path, kit):
    nb = load(kit / path.name)
    forbidden = {}
    for checker in graded_functions(load(path)).values():
        forbidden.update(guard.resolve(checker.forbidden))
    for name, obj in imported_objects(nb):
        assert getattr(obj, "__code__", None) not in forbidden, name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_keeps_locks_and_every_check_fails_as_not_implemented(path, kit):
    nb = load(kit / path.name)
    assert [nbgrader(c) for c in nb["cells"]] == [
        nbgrader(c) for c in load(path)["cells"]
    ]
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    checks = [(out, err) for cell, out, err in run_in_process(nb)
              if nbgrader(cell).get("grade")]  # fmt: skip
    assert checks
    for out, error in checks:
        assert isinstance(error, AssertionError) and "not implemented yet" in str(error)
        assert "not implemented yet" in out


def test_the_wheel_installs_and_its_checkers_run(kit, tmp_path):
    wheel = next(kit.glob("*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)], check=True, capture_output=True,
    )  # fmt: skip
    code = (
        "import attention_np.exercises as ex, numpy as np\n"
        f"assert ex.__file__.startswith({str(target)!r})\n"
        "ex.check_causal_mask(lambda N, M: np.arange(M) <= np.arange(N)[:, None])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, cwd=tmp_path,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cases pass" in result.stdout


def test_a_rebuild_replaces_the_kit_but_a_foreign_folder_is_refused(tmp_path):
    out = tmp_path / "kit"
    build_kit(SRC, out, wheel=False, log=lambda *_: None)
    (out / "stale.ipynb").write_text("{}")
    build_kit(SRC, out, wheel=False, log=lambda *_: None)
    assert not (out / "stale.ipynb").exists()
    foreign = tmp_path / "work"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("a student's work")
    with pytest.raises(ValueError, match="not empty"):
        build_kit(SRC, foreign, wheel=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="overwrite"):
        build_kit(SRC, SRC, wheel=False, log=lambda *_: None)


def test_a_student_copy_runs_in_a_real_kernel_until_the_first_check(kit):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from run_notebooks import execute
    finally:
        sys.path.pop(0)
    nb = nbformat.read(kit / NOTEBOOKS[0].name, as_version=4)
    with pytest.raises(CellExecutionError, match="not implemented yet"):
        execute(nb, kit, timeout=120)


# --- the audit -----------------------------------------------------------------------


def test_the_audit_flags_bypass_attempts_and_nothing_in_the_notebooks(tmp_path, kit):
    assert audit(SRC) == [] and audit(kit) == []
    nb = load(kit / NOTEBOOKS[0].name)
    cell = solution_code_cells(nb)[0]
    cell["source"] = (
        "import os\nos.environ['ATTENTION_NP_STRICT'] = '0'\n"
        "check_softmax = lambda fn: None\n"
        "import sys; sys.modules['attention_np.exercises'] = None\n"
        "from attention_np import softmax_forward\n"
        "x = 1  # a comment about check_softmax = ...\n"
        "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
        "exec(inspect.getsource(f))\n"
    )
    path = tmp_path / "bypass.ipynb"
    path.write_text(json.dumps(nb))
    found = audit_notebook(path)
    assert [f.line for f in found] == [2, 3, 4, 5, 7, 8]


# --- the builder on a tiny synthetic notebook --------------------------------------


def code_cell(text, outputs=()):
    return {"cell_type": "code", "metadata": {}, "source": text,
            "outputs": list(outputs), "execution_count": 3}  # fmt: skip


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

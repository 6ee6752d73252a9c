"""Student copies of the exercise notebooks: every solution replaced by a stub.

The solution notebooks in ``notebooks/exercises/`` mark each solution with
nbgrader's markers::

    def softmax(x):
        \"\"\"docstring (kept)\"\"\"
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

``student_notebook_files(src, out)`` writes each notebook to ``out`` with every marked
region of a code cell replaced by ``# YOUR CODE HERE`` / ``raise
NotImplementedError()`` at the indentation of the BEGIN line (a region in a markdown
cell becomes ``YOUR ANSWER HERE``; nbgrader's stubs, so both tools give the same
copies), outputs and execution counts cleared, everything else kept (cell metadata
too, so nbgrader's locked and graded cells stay locked and graded). Plain JSON: no
nbformat, no server, no database. ``kit.py`` puts the copies and a wheel of the
package into
the folder handed out to students.
"""

import json
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)


class MarkerError(ValueError):
    """A BEGIN without END, an END without BEGIN, or nested regions."""


def strip_solutions(source, stub=CODE_STUB):
    """(new source, number of regions replaced) for one cell's source text."""
    out, inside, count = [], False, 0
    for number, line in enumerate(source.split("\n"), start=1):
        if BEGIN in line:
            if inside:
                raise MarkerError(f"line {number}: nested {BEGIN!r}")
            inside, count = True, count + 1
            indent = re.match(r"\s*", line).group(0)
            out.extend(indent + s for s in stub)
        elif END in line:
            if not inside:
                raise MarkerError(f"line {number}: {END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{BEGIN!r} without {END!r}")
    return "\n".join(out), count


def _source_lines(text):
    """The list form of a cell source that Jupyter writes (lines keep their \\n)."""
    return text.splitlines(keepends=True)


def student_notebook(nb):
    """(student copy of a notebook dict, regions replaced); ``nb`` is not modified."""
    nb = json.loads(json.dumps(nb))  # deep copy
    total = 0
    for index, cell in enumerate(nb.get("cells", [])):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        stub = CODE_STUB if cell.get("cell_type") == "code" else TEXT_STUB
        try:
            new, count = strip_solutions(source, stub)
        except MarkerError as err:
            raise MarkerError(f"cell {index}: {err}") from None
        if count:
            cell["source"] = _source_lines(new)
        total += count
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)  # timings from a run
    return nb, total


def title(nb):
    """The first markdown heading of a notebook, without the leading #s."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell.get("source", ""))
            for line in text.split("\n"):
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def default_source():
    """notebooks/exercises of the checkout this package was installed from."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / "notebooks" / "exercises"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "notebooks/exercises not found next to the package or in the current "
        "directory; pass --src DIR"
    )


def student_notebook_files(src, out, *, log=print):
    """Write a student copy of every ``src/*.ipynb`` into the folder ``out``.

    Returns (paths written, [(file name, title)]).
    """
    src, out = Path(src), Path(out)
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb files in {src}")
    written, titles = [], []
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        try:
            student, count = student_notebook(nb)
        except MarkerError as err:
            raise MarkerError(f"{path}: {err}") from None
        target = out / path.name
        text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
        target.write_text(text, encoding="utf-8")
        written.append(target)
        titles.append((path.name, title(nb)))
        log(f"wrote {target} ({count} exercise{'s' if count != 1 else ''} to fill in)")
    return written, titles

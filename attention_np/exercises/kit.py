"""The student kit: student copies of the notebooks and a wheel of this package.

``build_kit(src, out)`` writes into ``out``:

- the student copy of every ``src/*.ipynb`` (``build.student_notebook``: solutions
  replaced by stubs, outputs cleared);
- ``attention_np-<version>-py3-none-any.whl``: the package, checkers included, built
  from its installed source files (no notebooks, no solutions, no tests);
- ``requirements.txt`` (the wheel, NumPy and JupyterLab) and a ``README.md`` for
  students.

The wheel is written with ``zipfile`` (PEP 427: the files, METADATA, WHEEL and a
RECORD of sha256 hashes), with fixed timestamps so that two builds are identical and
no build backend or network is needed. ``out`` must be new, empty, or an earlier kit
(a ``.attention_np_kit`` marker says so); an earlier kit is replaced.
"""

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

import attention_np

from .build import student_notebook_files

MARKER = ".attention_np_kit"
REQUIREMENTS = ("numpy>=1.26,<3", "jupyterlab>=4,<5")
EPOCH = (1980, 1, 1, 0, 0, 0)


def _hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _package_files(package_dir):
    """(archive name, bytes) of every .py file of the package, sorted."""
    root = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path.relative_to(root).as_posix(), path.read_bytes()


def build_wheel(out, *, package_dir=None, version=None):
    """Write the package's wheel into ``out``; return its path."""
    package_dir = Path(package_dir or Path(attention_np.__file__).parent)
    version = version or attention_np.__version__
    name = f"attention_np-{version}"
    info = f"{name}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\nName: attention_np\n"
        f"Version: {version}\n"
        "Summary: Attention mechanisms from scratch in NumPy (student kit)\n"
        "Requires-Python: >=3.10\nRequires-Dist: numpy>=1.26,<3\n"
    )
    wheel = (
        "Wheel-Version: 1.0\nGenerator: attention_np.exercises.kit\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files = list(_package_files(package_dir))
    files += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", wheel.encode()),
    ]
    record = "".join(f"{n},{_hash(d)},{len(d)}\n" for n, d in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    path = Path(out) / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in files:
            entry = zipfile.ZipInfo(arcname, EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return path


def _prepare(out):
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(
                f"{out} is not empty and is not an earlier student kit: choose a new "
                "or empty folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m attention_np.exercises build\n")
    return out


def build_kit(src, out, *, wheel=True, log=print):
    """Write the student kit into ``out``; return the notebook paths written."""
    src = Path(src)
    if Path(out).resolve() == src.resolve():
        raise ValueError(f"refusing to overwrite the solutions in {src}")
    out = _prepare(out)
    written, titles = student_notebook_files(src, out, log=log)
    lines = list(REQUIREMENTS)
    if wheel:
        whl = build_wheel(out)
        lines.insert(0, f"./{whl.name}")
        log(f"wrote {whl}")
    (out / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(titles, wheel), encoding="utf-8")
    return written


def _readme(titles, wheel):
    rows = "\n".join(f"| `{name}` | {text} |" for name, text in titles)
    install = (
        "python -m pip install -r requirements.txt   # the wheel, NumPy, JupyterLab"
        if wheel
        else "python -m pip install numpy jupyterlab   # and the attention_np package"
    )
    return f"""# Exercises: attention from scratch in NumPy

## Setup (once)

Python 3.10 or newer. In this folder:

```bash
python -m venv .venv
source .venv/bin/activate        # Windows: .venv\\Scripts\\activate
{install}
jupyter lab
```

## Working on an exercise

Each notebook follows one lesson of the course (07a comes after lesson 07). In each:

1. read the task and the math;
2. replace every `# YOUR CODE HERE` / `raise NotImplementedError()` with your code
   (keep the `def` line and the docstring);
3. run the check cell below it. It draws new random cases every time, prints ✓ or ✗
   for each (with a hint when it recognises the mistake) and ends with an error
   unless every case passes. Fix, re-run, repeat.

The check cells are graded: a cell that ends with an error scores 0. Your function
must compute the answer itself (a call of the package's own implementation of the
same function fails the check), return within 10 s per case and leave its inputs
unchanged. Do not edit the locked cells.

| notebook | topic |
|---|---|
{rows}
"""

"""Flag answer-cell lines that try to get around the checks, for a teacher to read.

The checks run in the student's own kernel, so code in an answer cell can in
principle change anything the check cell relies on: redefine a checker, patch the
package, edit ``sys.modules``, switch the profile hook or the alarm off, run the
package's code in a thread started before the check or in another process, or
``exec`` its source. The locked check cell re-imports its checker, and the
checkers read no environment variable, so the simple versions of these fail
anyway; ``audit`` lists every line that looks like one of them, so a teacher can
look at those submissions (and at nothing else).

``python -m attention_np.exercises audit DIR`` reads every ``*.ipynb`` under DIR,
looks at the code cells a student could edit (answer cells and cells they added,
never the locked ones) and prints ``path:cell:line: text`` for each match.
"""

import json
import re
from pathlib import Path
from typing import NamedTuple

PATTERNS = {
    "redefines or imports a checker": r"\bcheck_\w+\s*=|def\s+check_\w+|"
    r"attention_np\.exercises|from\s+attention_np\s+import\s+exercises",
    "patches modules or builtins": r"sys\.modules|\bbuiltins\b|importlib|"
    r"setattr\s*\(|globals\s*\(\s*\)\s*\[|__code__|monkeypatch",
    "touches the time limit or the profiler": r"\bsignal\b|setprofile|settrace|"
    r"setitimer|os\._exit",
    "sets environment variables": r"os\.environ|putenv",
    "runs code out of the checker's sight": r"\bthreading\b|\b_thread\b|"
    r"concurrent\.futures|PoolExecutor|multiprocessing|subprocess|\bexec\s*\(|"
    r"\beval\s*\(|getsource|_getframe|\bgc\.",
    "imports from the package": r"^\s*(from\s+attention_np\S*\s+import|"
    r"import\s+attention_np)",
}


class Finding(NamedTuple):
    path: Path
    cell: int
    line: int
    text: str
    reason: str


def editable_code_cells(nb):
    """(index, source) of the code cells a student may edit."""
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or meta.get("locked"):
            continue
        source = cell.get("source", "")
        yield index, "".join(source) if isinstance(source, list) else source


def audit_notebook(path):
    """Every suspicious line of one notebook."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for index, source in editable_code_cells(nb):
        for number, line in enumerate(source.split("\n"), start=1):
            code = line.split("#", 1)[0]
            for reason, pattern in PATTERNS.items():
                if re.search(pattern, code):
                    found.append(Finding(path, index, number, line.strip(), reason))
                    break
    return found


def audit(folder):
    """Findings for every notebook under ``folder``, sorted by path."""
    found = []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            found.extend(audit_notebook(path))
    return found

"""A real nbgrader class, end to end: every wrong answer scores zero.

A temporary course uses the ``nbgrader_config.py`` printed in the teacher's guide
(notebooks/exercises/README.md), generates the release copies of all 17 exercises
with ``nbgrader generate_assignment``, and receives submissions:

- ``correct``: every answer cell holds the solution -> full marks on every check;
- ``buggy``: one typical bug in every graded function -> 0 on every check;
- ``blank``: the release copies untouched -> 0 everywhere (``nbgrader validate``
  says so too);
- bypass attempts, each on a few notebooks -> 0 on every check they touch:
  redefining the checker in an answer cell, setting environment variables, calling
  the package's implementation, answers hard-coded from an earlier (visible) run,
  and a function that never returns.

Then ``nbgrader autograde`` runs in real kernels and the scores are read from the
gradebook (and, for the correct submission, from ``nbgrader export`` as CSV). The
tests split the students between them so that ``pytest -n 2`` runs them in
parallel; each worker generates its own course once.
"""

import base64
import csv
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

try:
    from nbgrader.api import Gradebook
except ImportError:  # the test dependency is missing: say so, do not fail
    pytest.skip(
        "nbgrader is not installed: `pip install 'nbgrader>=0.9.5,<0.10'` "
        "(it is in requirements.txt) to run the classroom end-to-end test",
        allow_module_level=True,
    )

import attention_np as an
import attention_np.exercises as ex
from attention_np.exercises.audit import audit
from attention_np.exercises.build import BEGIN, END

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "exercises"
GUIDE = SRC / "README.md"
NOTEBOOKS = sorted(SRC.glob("*.ipynb"))
ASSIGNMENT = "exercises"

# one typical bug per graded function: grade id -> (text in the solution, replacement)
BUGS = {
    "ex01a_softmax": ("m = np.where(np.isfinite(m), m, 0.0)", "m = m"),
    "ex02a_attention": ("/ np.sqrt(d)", ""),
    "ex03a_causal": ("return j <= i", "return j < i"),
    "ex03a_padding": ("< lengths[:, None]", "<= lengths[:, None]"),
    "ex05a_split": (".transpose(0, 2, 1, 3)", ""),
    "ex05a_merge": ("x.transpose(0, 2, 1, 3).reshape", "x.reshape"),
    "ex05b_mha_forward": (' + params["b_o"]', ""),
    "ex07a_softmax_backward": ("return y * (dout - row)", "return dout - row"),
    "ex07b_attention_backward": ("dq = scale * dS @ k", "dq = dS @ k"),
    "ex07c_mha_backward": ("dx += d_cat", "dx = d_cat"),
    "ex07d_numerical_grad": ("/ (2 * h)", "/ h"),
    "ex07d_gradient_check": ("rng.standard_normal(np.shape(out))",
                             "np.ones(np.shape(out))"),
    "ex07e_score_change": ("shift = scale * (q @ b)", "shift = q @ b"),
    "ex07e_bias_gradients": ("np.abs(grads[name]).max()", "np.abs(grads[name]).mean()"),
    "ex07e_answers": ('{"b_k"}', '{"b_k", "b_v"}'),
    "ex08a_rope": ("positions[..., None] * theta",
                   "(positions[..., None] + 1) * theta"),
    "ex09a_layernorm_backward": ("- xhat * mean_gx", ""),
    "ex14a_online_softmax": ("m_new = np.maximum(m, xb.max(axis=-1))",
                             "m_new = xb.max(axis=-1)"),
    "ex14a_online_attention": ("acc = acc * c[..., None] +", "acc = acc +"),
    "ex15a_linear_attention_rnn": ("+ eps  #", "+ 1e-6  #"),
    "ex18a_fast_weight_update": ("return lam * A + eta", "return A + eta"),
    "ex18a_delta_rule_update": ("(v - stored)", "v"),
    "ex19a_ttt_grad": ("- (x_v - x_k)", "- x_v"),
    "ex19a_ttt_ln_grad": ("G = layers.layernorm_backward(r, cache)[0]", "G = r"),
    "ex20a_gated_delta_step": ("u = beta * (v - k @ S_decayed)", "u = beta * v"),
    "ex20a_gated_delta_chunk": ("np.exp(np.where(causal, diff, -np.inf))",
                                "np.exp(diff)"),
}  # fmt: skip

# answers that call the package's own implementation: grade id -> function body
REFERENCE_CALLS = {
    "ex01a_softmax": "from attention_np import softmax_forward\n"
    "return softmax_forward(x)[0]",
    "ex02a_attention": "import attention_np\n"
    "return attention_np.attention_forward(q, k, v, mask, causal=False)[0]",
    "ex03a_causal": "from attention_np.masks import causal_mask as cm\nreturn cm(N, M)",
    "ex08a_rope": "from attention_np.positional import rope_forward\n"
    "return rope_forward(x, positions, base=base)[0]",
    "ex18a_fast_weight_update": "from attention_np.memory import fast_weight_update "
    "as f\nreturn f(A, h, lam=lam, eta=eta)",
}


def config_from_the_guide():
    """The nbgrader_config.py block of the teacher's guide, verbatim."""
    lines = GUIDE.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if "# nbgrader_config.py" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
    return textwrap.dedent("\n".join(lines[start:end])) + "\n"


def environment(tmp):
    """The activated venv of the recipe (alembic on PATH), and no user config."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env["JUPYTER_CONFIG_DIR"] = str(tmp / "jupyter-config")
    env["JUPYTER_DATA_DIR"] = str(tmp / "jupyter-data")
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.pop("JUPYTER_PATH", None)
    return env


def nbgrader(course, *args):
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course, env=environment(course.parent), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    return result


def generate(course):
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(config_from_the_guide())
    for path in NOTEBOOKS:
        shutil.copy(path, course / "source" / ASSIGNMENT / path.name)
    result = nbgrader(course, "generate_assignment", ASSIGNMENT)
    (course / ("READY" if result.returncode == 0 else "FAILED")).write_text("")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def template(tmp_path_factory, request):
    """A course with the 17 exercises generated, copied by each test. Under
    pytest-xdist the first worker generates it and the others wait for it."""
    if not hasattr(request.config, "workerinput"):  # not an xdist worker
        course = tmp_path_factory.mktemp("template") / "course"
        generate(course)
        return course
    shared = tmp_path_factory.getbasetemp().parent / "nbgrader-template"
    try:
        shared.mkdir()  # atomic: exactly one worker gets to generate
    except FileExistsError:
        for _ in range(1200):
            if (shared / "course" / "READY").exists():
                return shared / "course"
            if (shared / "course" / "FAILED").exists():
                pytest.fail("generate_assignment failed in the other worker")
            time.sleep(0.5)
        pytest.fail("the other worker did not generate the course in 10 minutes")
    generate(shared / "course")
    return shared / "course"


@pytest.fixture
def course(template, tmp_path):
    target = tmp_path / "course"
    shutil.copytree(template, target)
    return target


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def gid(cell):
    return cell["metadata"].get("nbgrader", {}).get("grade_id")


def solutions(path):
    """{grade id: solution cell source without the markers} of a source notebook."""
    out = {}
    for cell in load(path)["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            text = "".join(cell["source"])
            out[gid(cell)] = "\n".join(
                line
                for line in text.split("\n")
                if BEGIN not in line and END not in line
            )
    return out


def submit(course, student, name, edit=None):
    """Copy the release copy of notebook ``name`` for ``student``; ``edit(grade_id,
    release source, solution source) -> new source or None`` fills answer cells."""
    nb = load(course / "release" / ASSIGNMENT / name)
    answers = solutions(SRC / name)
    for cell in nb["cells"]:
        if edit and cell["metadata"].get("nbgrader", {}).get("solution"):
            new = edit(gid(cell), "".join(cell["source"]), answers[gid(cell)])
            if new is not None:
                cell["source"] = new
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(nb, indent=1))


def autograde(course):
    result = nbgrader(course, "autograde", ASSIGNMENT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def auto_scores(course, student):
    """{(notebook, grade id): (score, max)} of the autograded check cells."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        return {
            (nb.name, grade.name): (grade.score, grade.max_score)
            for nb in submission.notebooks
            for grade in nb.grades
            if grade.cell.cell_type == "code"
        }


def graded_ids(name):
    return [gid(c) for c in load(SRC / name)["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade")
            and c["cell_type"] == "code"]  # fmt: skip


def test_correct_submission_gets_full_marks_and_the_csv_export_says_so(course):
    for path in NOTEBOOKS:
        submit(course, "correct", path.name, lambda g, release, answer: answer)
    autograde(course)
    scores = auto_scores(course, "correct")
    assert len(scores) == sum(len(graded_ids(p.name)) for p in NOTEBOOKS) == 26
    assert all(score == top == 1 for score, top in scores.values()), scores
    assert nbgrader(course, "export", "--to", "grades.csv").returncode == 0
    rows = list(csv.DictReader((course / "grades.csv").open()))
    row = next(r for r in rows if r["student_id"] == "correct")
    assert (
        float(row["raw_score"]) == 26
    )  # + 1 point for the explanation, graded by hand
    assert float(row["max_score"]) == 27


def test_every_buggy_function_gets_zero(course):
    def plant(grade_id, release, answer):
        if grade_id not in BUGS:
            return answer  # the written explanation of 07e is graded by hand
        old, new = BUGS[grade_id]
        assert old in answer, (grade_id, old)
        return answer.replace(old, new, 1)

    for path in NOTEBOOKS:
        submit(course, "buggy", path.name, plant)
    autograde(course)
    scores = auto_scores(course, "buggy")
    assert len(scores) == 26
    assert all(score == 0 for score, _ in scores.values()), scores


def test_blank_submission_gets_zero_and_validate_says_it_fails(course):
    for path in NOTEBOOKS:
        submit(course, "blank", path.name)
    autograde(course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(ASSIGNMENT, "blank")
        assert submission.score == 0 and submission.max_score == 27
    release = course / "release" / ASSIGNMENT / NOTEBOOKS[0].name
    result = nbgrader(course, "validate", str(release))
    assert "Success" not in result.stdout and "failed" in result.stdout.lower()


def recorded_answers(name, grade_id, check):
    """What a student could copy from a visible run: every case's inputs -> the
    right output, from a run of the check (fresh random cases, as in a notebook)."""
    namespace = {"np": np, "an": an}
    exec(solutions(SRC / name)[grade_id], namespace)
    fn = next(v for v in namespace.values() if callable(v))
    table = {}

    def recorder(*args):
        table[key(args)] = fn(*args)
        return table[key(args)]

    check(recorder)
    return table


def key(args):
    parts = [np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else
             repr(a).encode() for a in args]  # fmt: skip
    return hashlib.sha1(b"|".join(parts)).hexdigest()


ENDLESS = """    import time

    while True:  # never returns
        time.sleep(0.01)"""

HARD_CODED = """import base64, hashlib, pickle

_TABLE = pickle.loads(base64.b64decode("{table}"))


def _key(args):
    parts = [np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else
             repr(a).encode() for a in args]
    return hashlib.sha1(b"|".join(parts)).hexdigest()


def {name}(*args):
    return _TABLE[_key(args)]"""


def test_bypass_attempts_get_zero(course):
    def redefine(grade_id, release, answer):  # a stub, and the checkers replaced
        checks = re.findall(r"check_\w+", json.dumps(load(SRC / current)))
        fakes = "".join(f"\n\n{c} = lambda *a, **k: None" for c in set(checks))
        return release + fakes

    def environ(grade_id, release, answer):
        return release + (
            "\n\nimport os\nos.environ['ATTENTION_NP_STRICT'] = '0'\n"
            "os.environ['ATTENTION_NP_GRADING'] = '0'"
        )

    def reference(grade_id, release, answer):
        if grade_id not in REFERENCE_CALLS:
            return None
        body = "\n".join(
            "    " + line for line in REFERENCE_CALLS[grade_id].split("\n")
        )
        return release.split("    # YOUR CODE HERE")[0] + body

    def hard_coded(grade_id, release, answer):
        check = {
            "ex01a_softmax": ex.check_softmax,
            "ex03a_causal": ex.check_causal_mask,
            "ex07e_bias_gradients": ex.check_bias_gradients,
        }.get(grade_id)
        if check is None:
            return None
        table = recorded_answers(current, grade_id, check)
        data = base64.b64encode(pickle.dumps(table)).decode()
        name = re.search(r"def (\w+)", release).group(1)
        return HARD_CODED.format(table=data, name=name)

    def endless(grade_id, release, answer):
        if grade_id != "ex05a_split":
            return None
        head = release.split("    # YOUR CODE HERE")[0]
        return head + ENDLESS

    attempts = {
        "redefiner": (redefine, ["01a_stable_softmax", "14a_online_softmax"]),
        "environ": (environ, ["07a_softmax_backward", "15a_linear_attention_rnn"]),
        "reference": (reference, ["01a_stable_softmax", "02a_attention_forward",
                                  "03a_masks", "08a_rope", "18a_fast_weight_update"]),
        "hardcoder": (hard_coded, ["01a_stable_softmax", "03a_masks",
                                   "07e_why_key_bias_gets_no_gradient"]),
        "endless": (endless, ["05a_split_merge_heads"]),
    }  # fmt: skip
    for student, (edit, names) in attempts.items():
        for stem in names:
            current = stem + ".ipynb"  # read by the edits above
            submit(course, student, current, edit)
    autograde(course)
    for student, (_, names) in attempts.items():
        scores = auto_scores(course, student)
        touched = {(n, g) for n in names for g in graded_ids(n + ".ipynb")}
        assert touched <= set(scores)
        assert all(scores[k][0] == 0 for k in touched), (student, scores)
    autograded = course / "autograded"
    text = (autograded / "reference" / ASSIGNMENT / "08a_rope.ipynb").read_text()
    assert "your function calls attention_np.positional.rope_forward" in text
    text = (
        autograded / "endless" / ASSIGNMENT / "05a_split_merge_heads.ipynb"
    ).read_text()
    assert "did not return within 10 s" in text
    flagged = {f.path.parts[-3] for f in audit(course / "submitted")}
    assert {"redefiner", "environ", "reference"} <= flagged

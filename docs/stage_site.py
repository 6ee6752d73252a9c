"""Lay out the Sphinx source tree of the course site (``make site`` runs it).

    python docs/stage_site.py OUT        # make site: OUT = build/site-src

Nothing here is committed twice: every page comes from the repository at build time.

- ``index.md``: docs/index.md, its ``<!-- site:... -->`` markers replaced by toctrees;
  the lessons are grouped into the parts of notebooks/README.md, in its order.
- ``notebooks/``: the committed, executed lesson notebooks (rendered with their
  outputs, never executed) and notebooks/README.md (the course map).
- ``notebooks/exercises/``: the student view of the exercise notebooks, written by
  the package's own builder (solutions replaced by stubs, outputs cleared), the
  teacher's guide (notebooks/exercises/README.md) and the students' README.
- ``api/``: one page per subpackage, generated from ``__all__`` (or, for a module
  without ``__all__``, from the public functions and classes it defines): an
  autosummary table, then every object under its defining module, each documented
  once (where a name is exported by several groups, the group that defines it owns it).
"""

import importlib
import inspect
import re
import shutil
import sys
from pathlib import Path

from plaintext_docstrings import to_rst

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = NOTEBOOKS / "exercises"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
EXERCISE_GLOB = "[0-9][0-9][a-z]_*.ipynb"  # 07a_..., named after their lesson

# API groups, in the order of the reference's table of contents; any other public
# subpackage, and any public top-level module none of whose objects attention_np
# re-exports (e.g. naive, validate), joins after them (api_groups)
GROUPS = [
    "attention_np",
    "attention_np.efficient",
    "attention_np.parallel",
    "attention_np.memory",
    "attention_np.transformer",
    "attention_np.train",
    "attention_np.decoding",
    "attention_np.additive",
    "attention_np.positional",
    "attention_np.analysis",
    "attention_np.viz",
    "attention_np.gradcheck",
    "attention_np.exercises",
]
NOT_API = {"__main__", "gradcheck_cases"}  # command lines and the gradcheck registry


class StageError(RuntimeError):
    """The repository does not have what a page needs (the message says what)."""


# -- lessons and exercises ------------------------------------------------------------


def lesson_parts(readme, lessons):
    """[(part title, [lesson stem, ...]), ...] in the order of notebooks/README.md."""
    parts, current = [], None
    for line in readme.splitlines():
        heading = re.match(r"##\s+(Part\b.*)", line)
        if heading:
            current = (heading.group(1).strip(), [])
            parts.append(current)
        elif line.startswith("## "):
            current = None
        elif current is not None:
            current[1].extend(re.findall(r"\]\((\d\d_[\w-]+)\.ipynb\)", line))
    listed = [stem for _, stems in parts for stem in stems]
    missing = sorted(set(lessons) - set(listed))
    unknown = sorted(set(listed) - set(lessons))
    if missing or unknown:
        raise StageError(
            "notebooks/README.md and notebooks/ disagree: "
            f"not in any part: {missing}; listed but missing: {unknown}"
        )
    return parts


def toctree(caption, entries, *, hidden=False):
    lines = ["```{toctree}", f":caption: {caption}", ":maxdepth: 1"]
    lines += [":hidden:"] if hidden else []
    return "\n".join(lines + [""] + entries + ["```", ""])


def stage_notebooks(out):
    """Copy lessons and course map; write student copies; return the toctrees."""
    from attention_np.exercises.kit import build_kit

    lessons = sorted(p.stem for p in NOTEBOOKS.glob(LESSON_GLOB))
    if not lessons:
        raise StageError(f"no lesson notebooks {NOTEBOOKS / LESSON_GLOB}")
    (out / "notebooks").mkdir(parents=True)
    for stem in lessons:
        shutil.copy2(NOTEBOOKS / f"{stem}.ipynb", out / "notebooks" / f"{stem}.ipynb")
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    # a link to a folder is no page on the site: point it at the teacher's guide
    site_readme = readme.replace("](exercises/)", "](exercises/README.md)")
    (out / "notebooks" / "README.md").write_text(site_readme, encoding="utf-8")

    student = out / "notebooks" / "exercises"
    build_kit(EXERCISES, student, wheel=False, log=lambda message: None)
    (student / "requirements.txt").unlink()  # the site links no downloads
    (student / "README.md").rename(student / "for_students.md")
    shutil.copy2(EXERCISES / "README.md", student / "README.md")
    exercises = sorted(p.stem for p in student.glob(EXERCISE_GLOB))

    trees = [toctree("Course", ["Course map <notebooks/README>"])]
    for title, stems in lesson_parts(readme, lessons):
        trees.append(toctree(title, [f"notebooks/{stem}" for stem in stems]))
    entries = [
        "Teacher's guide <notebooks/exercises/README>",
        "For students <notebooks/exercises/for_students>",
    ]
    entries += [f"notebooks/exercises/{stem}" for stem in exercises]
    return "\n".join(trees), toctree("Exercises", entries)


# -- API reference -------------------------------------------------------------------


def public_names(module):
    """``__all__``, or the public functions and classes the module itself defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    )


def home_module(obj, group):
    """The module that defines ``obj`` (its group for constants)."""
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return obj.__module__
    return group


def owners(modules):
    """{id(obj): group}: an object exported by several groups belongs to the group
    that defines it (the longest group name that prefixes its module)."""
    exporters = {}
    for group, module in modules.items():
        for name in public_names(module):
            obj = getattr(module, name)
            exporters.setdefault(id(obj), (obj, []))[1].append(group)
    owner = {}
    for key, (obj, groups) in exporters.items():
        home = home_module(obj, groups[0])
        prefixes = [g for g in groups if home == g or home.startswith(g + ".")]
        owner[key] = max(prefixes, key=len) if prefixes else groups[0]
    return owner


def directive(obj):
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def heading(text, char):
    return f"{text}\n{char * len(text)}\n"


def first_line(module):
    doc = inspect.getdoc(module) or ""
    return doc.strip().split("\n")[0].strip()


def api_page(group, module, owner):
    """reStructuredText of one group's page."""
    own, elsewhere = {}, []
    for name in public_names(module):
        obj = getattr(module, name)
        if owner[id(obj)] == group:
            own.setdefault(home_module(obj, group), []).append((name, obj))
        else:
            elsewhere.append((name, obj, owner[id(obj)]))
    lines = [
        heading(group, "="),
        f".. automodule:: {group}",
        "",
        f".. currentmodule:: {group}",
        "",
    ]
    if own:
        lines += [".. autosummary::", ""]
        lines += [f"   {name}" for home in sorted(own) for name, _ in own[home]]
        lines.append("")
    for home in sorted(own, key=lambda h: (h != group, h)):
        lines.append(heading(f"``{home}``", "-"))
        summary = first_line(importlib.import_module(home)) if home != group else ""
        if summary:  # the module's summary line, as autodoc would read it
            lines += to_rst([summary]) + [""]
        for name, obj in own[home]:
            lines += [f".. {directive(obj)}:: {name}", ""]
    if elsewhere:
        lines.append(heading("Also exported here", "-"))
        for name, obj, where in elsewhere:
            role = (
                "class" if inspect.isclass(obj) else "func" if callable(obj) else "data"
            )
            lines.append(f"- ``{name}``: :py:{role}:`{where}.{name}`")
        lines.append("")
    return "\n".join(lines)


def api_groups():
    """{group name: module}: GROUPS, then the public modules they leave out."""
    import pkgutil

    import attention_np

    modules = {group: importlib.import_module(group) for group in GROUPS}
    exported = {id(getattr(attention_np, name)) for name in attention_np.__all__}
    for info in pkgutil.iter_modules(attention_np.__path__):
        name = f"attention_np.{info.name}"
        if name in modules or info.name.startswith("_") or info.name in NOT_API:
            continue
        module = importlib.import_module(name)
        objects = {id(getattr(module, n)) for n in public_names(module)}
        if info.ispkg or (objects and not objects & exported):
            modules[name] = module
    return modules


def stage_api(out):
    modules = api_groups()
    owner = owners(modules)
    api = out / "api"
    api.mkdir(parents=True)
    for group, module in modules.items():
        (api / f"{group}.rst").write_text(
            api_page(group, module, owner), encoding="utf-8"
        )
    index = [
        heading("API reference", "="),
        "Every public function and class of ``attention_np``, grouped by",
        "subpackage and generated from the docstrings (``[source]`` shows the",
        "code). Every layer is a pair ``out, cache = thing_forward(...)`` /",
        "``grads = thing_backward(dout, cache)``.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    index += [f"   {group}" for group in modules]
    (api / "index.rst").write_text("\n".join(index) + "\n", encoding="utf-8")


# -- the whole tree ------------------------------------------------------------------


def stage(out):
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    lessons, exercises = stage_notebooks(out)
    stage_api(out)
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for marker, text in [
        ("<!-- site:lessons -->", lessons),
        ("<!-- site:exercises -->", exercises),
        ("<!-- site:api -->", toctree("Reference", ["api/index"])),
    ]:
        if marker not in index:
            raise StageError(f"docs/index.md lost its marker {marker}")
        index = index.replace(marker, text)
    (out / "index.md").write_text(index, encoding="utf-8")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python docs/stage_site.py OUT")
    try:
        stage(argv[0])
    except StageError as err:
        sys.exit(f"stage_site: {err}")
    print(f"stage_site: Sphinx sources in {argv[0]}")


if __name__ == "__main__":
    main()

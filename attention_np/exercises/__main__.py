"""Command line for teachers.

python -m attention_np.exercises build OUT [--src DIR] [--no-wheel]
    the student kit: student copies of the notebooks, a wheel of the package,
    requirements.txt and a README (``make student`` runs it with OUT = student/)
python -m attention_np.exercises audit DIR
    lines in submitted notebooks that try to get around the checks (exit 1
    when there are any)

A DIR or --src that is not a directory is a usage error (``error: ...``, exit 2).
"""

import argparse
import sys
from pathlib import Path

from .audit import audit
from .build import MarkerError, default_source
from .kit import build_kit


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m attention_np.exercises")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="write the student kit (notebooks with stubs and a wheel) to OUT"
    )
    build.add_argument("out", help="output folder, e.g. student")
    build.add_argument(
        "--src", default=None, help="solution notebooks (default notebooks/exercises)"
    )
    build.add_argument("--no-wheel", action="store_true", help="notebooks only")
    check = sub.add_parser("audit", help="flag suspicious lines in submitted notebooks")
    check.add_argument("folder", help="e.g. submitted/ of an nbgrader course")
    args = parser.parse_args(argv)
    if args.command == "audit":
        if not Path(args.folder).is_dir():  # auditing nothing is not a clean audit
            check.error(f"argument folder: {args.folder} is not a directory")
        return _audit(args.folder)
    if args.src is not None and not Path(args.src).is_dir():
        build.error(f"argument --src: {args.src} is not a directory")
    try:
        src = args.src or default_source()
        written = build_kit(src, args.out, wheel=not args.no_wheel)
    except (FileNotFoundError, MarkerError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(written)} student notebooks in {args.out}/ (see {args.out}/README.md)")
    return 0


def _audit(folder):
    findings = audit(folder)
    for f in findings:
        print(f"{f.path}:cell {f.cell}:line {f.line}: {f.reason}: {f.text}")
    print(f"{len(findings)} suspicious line(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m attention_np.exercises build OUT [--src DIR]``.

Writes student copies of the solution notebooks (``make student`` runs it with
OUT = student/). See ``attention_np/exercises/build.py``.
"""

import argparse
import sys

from .build import MarkerError, build_student_copies, default_source


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m attention_np.exercises")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="write student copies (solutions replaced by stubs) into OUT"
    )
    build.add_argument("out", help="output folder, e.g. student")
    build.add_argument(
        "--src", default=None, help="solution notebooks (default notebooks/exercises)"
    )
    args = parser.parse_args(argv)
    try:
        src = args.src or default_source()
        written = build_student_copies(src, args.out)
    except (FileNotFoundError, MarkerError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(written)} student notebooks in {args.out}/ (see {args.out}/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

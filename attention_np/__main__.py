"""Command line: ``python -m attention_np gradcheck [-k PATTERN] [--seed S]``.

Runs the finite-difference check on every layer in the package and prints one report
per layer; the exit code is 1 when any gradient disagrees, 2 for a usage error (a bad
flag, a negative seed, or a -k pattern that matches no layer: argparse's
``error: ...``).
"""

import argparse
import importlib
import pkgutil
import sys

import numpy as np

from . import validate as V
from .gradcheck import as_check, check_layer


def case_modules():
    """Every ``gradcheck_cases`` module in the package, core first.

    Each holds a ``CASES`` dict {name: case(rng) -> (forward, backward, inputs)}; a new
    sub-package joins the report by adding its own ``gradcheck_cases.py``.
    """
    import attention_np

    names = [
        info.name
        for info in pkgutil.walk_packages(attention_np.__path__, "attention_np.")
        if info.name.rsplit(".", 1)[-1] == "gradcheck_cases"
    ]
    return sorted(names, key=lambda n: (n.count("."), n))


def all_cases():
    """Every registered gradient-check case, as {name: case}."""
    cases = {}
    for module in case_modules():
        cases.update(importlib.import_module(module).CASES)
    return cases


def run_gradcheck(pattern="", seed=0, file=None):
    """Check every case whose name contains ``pattern``; return the failed names.

    Raises ValueError when no case matches: checking nothing is not a pass.
    """
    failed = []
    cases = {n: c for n, c in all_cases().items() if pattern.lower() in n.lower()}
    if not cases:
        raise ValueError(f"no gradcheck case matches -k {pattern!r}")
    for name, case in cases.items():
        rng = np.random.default_rng(seed)
        forward, backward, inputs = as_check(case(rng))
        if not check_layer(forward, backward, inputs, rng=rng, title=name, file=file):
            failed.append(name)
    print(
        f"\n{len(cases) - len(failed)}/{len(cases)} layers ok"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        file=file,
    )
    return failed


def main(argv=None):
    """Exit status: 0 every gradient agrees, 1 some disagree, 2 a usage error."""
    parser = argparse.ArgumentParser(prog="python -m attention_np")
    sub = parser.add_subparsers(dest="command", required=True)
    gc = sub.add_parser("gradcheck", help="finite-difference check of every backward")
    gc.add_argument(
        "-k", "--pattern", default="", help="only layers whose name contains this"
    )
    gc.add_argument("--seed", type=V.cli_int(0), default=0, help="an integer >= 0")
    args = parser.parse_args(argv)
    names = [n for n in all_cases() if args.pattern.lower() in n.lower()]
    if not names:
        gc.error(f"argument -k/--pattern: no gradcheck case matches {args.pattern!r}")
    return 1 if run_gradcheck(args.pattern, args.seed) else 0


if __name__ == "__main__":
    sys.exit(main())

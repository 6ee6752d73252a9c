"""Command line: ``python -m attention_np gradcheck [-k PATTERN] [--seed S]``.

Runs the finite-difference check on every layer in the package and prints one report
per layer; the exit code is 1 when any gradient disagrees.
"""

import argparse
import importlib
import pkgutil
import sys

import numpy as np

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
    """Check every case whose name contains ``pattern``; return the failed names."""
    failed = []
    cases = {n: c for n, c in all_cases().items() if pattern.lower() in n.lower()}
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
    parser = argparse.ArgumentParser(prog="python -m attention_np")
    sub = parser.add_subparsers(dest="command", required=True)
    gc = sub.add_parser("gradcheck", help="finite-difference check of every backward")
    gc.add_argument(
        "-k", "--pattern", default="", help="only layers whose name contains this"
    )
    gc.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "gradcheck":
        return 1 if run_gradcheck(args.pattern, args.seed) else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

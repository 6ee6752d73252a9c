"""Execute notebooks in place so their committed outputs (and figures/) are current.

    python tools/run_notebooks.py notebooks/01_similarity_and_softmax.ipynb ...

Each notebook runs top to bottom in a fresh kernel of *this* Python interpreter, with
its own folder as the working directory, and is written back with its outputs. A
notebook that fails is left untouched, and the exit status is 1. Per-notebook wall
times are printed.

To keep a re-run's diff minimal, volatile things are dropped before writing: the
execution timing metadata, the notebook's widget state, and widget outputs (live
widgets need a kernel; their model ids are random); printed text that arrived in
several stream messages is merged back into one output. The notebooks themselves are
seeded and print no timestamps.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class _ThisInterpreter(KernelSpecManager):
    """Always hand out a python3 kernel running sys.executable (not a user kernel)."""

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python")


def execute(nb, cwd, timeout=300):
    """Run every cell of ``nb`` (in memory) with ``cwd`` as working directory.

    Raises nbclient's CellExecutionError (with the traceback) when a cell fails.
    """
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        record_timing=False,  # no per-cell timestamps in the metadata
        resources={"metadata": {"path": str(cwd)}},
    )
    # kernel-process logs (e.g. ipykernel's TCP notice) are noise here; cell errors
    # and outputs arrive through the messaging channel, not this stream
    client.execute(stderr=subprocess.DEVNULL)
    return clean(nb)


def clean(nb):
    """Drop volatile metadata and widget outputs; returns ``nb`` (changed in place).

    (nbclient must keep recording widget state while it runs: with
    store_widget_state=False it fails on Output widgets, so the state is dropped here.)
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            kept = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
            cell.outputs = coalesce_streams(kept)
    return nb


def coalesce_streams(outputs):
    """Merge consecutive stdout (or stderr) chunks: how a print is split into
    messages depends on timing, which would make re-runs differ."""
    merged = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and out.output_type == prev.output_type == "stream"
            and out.name == prev.name
        ):
            prev.text += out.text
        else:
            merged.append(out)
    return merged


def run_file(path, timeout):
    """Execute one notebook in place; returns (ok, seconds)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        execute(nb, path.parent, timeout)
    except Exception as err:  # report every failing notebook, then exit non-zero
        print(f"FAILED {path} after {time.perf_counter() - start:.1f} s\n{err}")
        return False, time.perf_counter() - start
    nbformat.write(nb, path)
    seconds = time.perf_counter() - start
    print(f"ok     {path}  {seconds:6.1f} s", flush=True)
    return True, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks to execute in place")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    results = [run_file(p, args.timeout) for p in args.paths]
    failed = sum(not ok for ok, _ in results)
    total = sum(s for _, s in results)
    print(f"{len(results) - failed}/{len(results)} notebooks ok in {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

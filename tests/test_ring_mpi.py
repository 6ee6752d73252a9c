"""The MPI ring (and Ulysses) over real processes: ``mpiexec -n 2`` and ``-n 4`` of
``python -m attention_np.parallel.ring`` match single-process attention and the
one-process simulation bit for bit; the MPI functions take N != M, masks and both
alignments. Skipped without mpi4py or mpiexec; the package itself (and the MPI
functions on one rank) must work without mpi4py."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attention_np.parallel import (
    ring,
    ring_attention_mpi_backward,
    ring_attention_mpi_forward,
)
from attention_np.parallel.gradcheck_cases import OneRankComm

# pip's mpich wheel puts mpiexec next to the interpreter, which need not be on PATH
_SEARCH = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
)
MPIEXEC = shutil.which("mpiexec", path=_SEARCH)
HAS_MPI4PY = importlib.util.find_spec("mpi4py") is not None
if not HAS_MPI4PY:
    SKIP_REASON = "mpi4py is not installed (pip install mpi4py mpich)"
else:
    SKIP_REASON = "no mpiexec next to Python or on PATH (pip install mpich)"
needs_mpi = pytest.mark.skipif(not (HAS_MPI4PY and MPIEXEC), reason=SKIP_REASON)
MODULE = "attention_np.parallel.ring"


def run_mpi(n_ranks, *args):
    return subprocess.run(
        [MPIEXEC, "-n", str(n_ranks), sys.executable, "-m", MODULE, *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def max_error(stdout):
    found = re.search(r"max abs error ([0-9.e+-]+)", stdout)
    assert found, stdout
    return float(found.group(1))


@pytest.mark.parametrize(
    "n_ranks,args",
    [
        (2, ["--layout", "zigzag"]),
        (4, ["--layout", "zigzag"]),
        (4, ["--layout", "contiguous"]),
        (4, ["--layout", "striped", "--no-causal"]),
    ],
)
@needs_mpi
def test_mpi_ring_matches_one_process_and_the_simulation(n_ranks, args):
    result = run_mpi(n_ranks, "--seq-len", "64", "--compare-sim", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exact match with single-process attention" in result.stdout
    assert max_error(result.stdout) < 1e-12
    assert "bit-identical" in result.stdout
    assert len(re.findall(r"^\s+\d+\s+\[", result.stdout, re.M)) == n_ranks  # rows


@needs_mpi
@pytest.mark.parametrize("n_ranks", [2, 4])
def test_mpi_ulysses_alltoall_matches_one_process(n_ranks):
    result = run_mpi(
        n_ranks, "--algorithm", "ulysses", "--seq-len", "64", "--compare-sim"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert max_error(result.stdout) < 1e-12
    assert "bit-identical" in result.stdout


@needs_mpi
def test_mpi_ulysses_with_ranks_that_do_not_divide_heads_exits_2():
    result = run_mpi(3, "--algorithm", "ulysses", "--seq-len", "48", "--heads", "4")
    assert result.returncode == 2
    assert "n_ranks=3 does not divide H=4" in result.stderr


def test_the_program_explains_how_to_install_mpi4py_when_it_is_missing(
    monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    assert ring.main(["--seq-len", "16"]) == 2
    assert "pip install mpi4py mpich" in capsys.readouterr().err


def test_the_package_works_without_mpi4py():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import numpy as np\n"
        "from attention_np.parallel import ring_attention_forward\n"
        "x = np.random.default_rng(0).standard_normal((8, 3))\n"
        "out, _ = ring_attention_forward(x, x, x, n_ranks=2, causal=True)\n"
        "print(out.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(8, 3)"


@needs_mpi
def test_an_error_on_one_rank_aborts_every_rank_instead_of_hanging():
    code = (
        "import sys, attention_np.parallel.ring as ring\n"
        "def boom(*args): raise RuntimeError('planted failure on rank 0')\n"
        "ring.check = boom\n"
        "sys.exit(ring.main(['--seq-len', '16']))\n"
    )
    result = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "planted failure on rank 0" in result.stdout + result.stderr


GENERAL = """
import numpy as np
from mpi4py import MPI
import attention_np as an
from attention_np.parallel import (
    layout_positions, ring_attention_mpi_backward, ring_attention_mpi_forward,
    ulysses_mpi_backward, ulysses_mpi_forward,
)
comm = MPI.COMM_WORLD
P, r = comm.Get_size(), comm.Get_rank()
rng = np.random.default_rng(0)
B, H, N, M, d = 2, 2, 24, 40, 3
q, dout = rng.standard_normal((B, H, N, d)), rng.standard_normal((B, H, N, 5))
k, v = rng.standard_normal((B, H, M, d)), rng.standard_normal((B, H, M, 5))
mask = rng.random((B, 1, N, M)) > 0.3

def error(got, want, rows, cols):
    want = [want[0][..., rows, :], want[1][..., rows, :], want[2][..., cols, :],
            want[3][..., cols, :]]
    return max(float(np.abs(a - b).max()) for a, b in zip(got, want))

worst = 0.0
for causal, align in ((False, "top_left"), (True, "top_left"), (True, "bottom_right")):
    ref, cache = an.attention_forward(q, k, v, mask, causal=causal, align=align)
    want = (ref, *an.attention_backward(dout, cache))
    opts = {"comm": comm, "causal": causal, "align": align}
    for layout in ("contiguous", "zigzag", "striped"):
        rows, cols = (layout_positions(layout, n, P)[r] for n in (N, M))
        out, c = ring_attention_mpi_forward(
            q[..., rows, :], k[..., cols, :], v[..., cols, :], mask, layout=layout,
            block_q=3, block_k=4, **opts)
        grads = ring_attention_mpi_backward(dout[..., rows, :], c)
        worst = max(worst, error((out, *grads), want, rows, cols))
    rows = slice(r * N // P, (r + 1) * N // P)
    cols = slice(r * M // P, (r + 1) * M // P)
    out, c = ulysses_mpi_forward(q[..., rows, :], k[..., cols, :], v[..., cols, :],
                                 mask, **opts)
    grads = ulysses_mpi_backward(dout[..., rows, :], c)
    worst = max(worst, error((out, *grads), want, rows, cols))
print(f"rank {r} worst {worst:.1e}")
"""


@needs_mpi
def test_mpi_ring_and_ulysses_take_n_not_m_masks_and_both_alignments(tmp_path):
    script = tmp_path / "general.py"
    script.write_text(GENERAL)
    result = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    errors = [float(e) for e in re.findall(r"worst ([0-9.e+-]+)", result.stdout)]
    assert len(errors) == 2 and max(errors) < 1e-12, result.stdout


def test_the_mpi_functions_run_on_one_rank_without_mpi4py():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import numpy as np\n"
        "from attention_np.parallel import ring_attention_mpi_forward\n"
        "from attention_np.parallel import ring_attention_mpi_backward\n"
        "from attention_np.parallel.gradcheck_cases import OneRankComm\n"
        "x = np.random.default_rng(0).standard_normal((8, 3))\n"
        "comm = OneRankComm()\n"
        "out, c = ring_attention_mpi_forward(x, x, x, comm=comm, causal=True)\n"
        "grads = ring_attention_mpi_backward(out, c)\n"
        "print(len(grads), grads.stats.bytes_sent, c.stats.pairs)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3 0 [36]"


def _check_event_log(stats, n_steps):
    """Each step logs post, compute, wait, in that order, back to back in time."""
    events = stats.events
    assert [(e.step, e.phase) for e in events] == [
        (t, phase) for t in range(n_steps) for phase in ("post", "compute", "wait")
    ]
    for a, b in zip(events, events[1:], strict=False):
        assert a.start <= a.end == b.start  # one clock, consecutive laps
    compute = sum(e.end - e.start for e in events if e.phase == "compute")
    waiting = sum(e.end - e.start for e in events if e.phase != "compute")
    np.testing.assert_allclose(compute, stats.compute_s, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(waiting, stats.wait_s, rtol=1e-9, atol=1e-12)


def test_the_mpi_ring_logs_post_compute_and_wait_of_every_step_on_one_rank():
    x = np.random.default_rng(0).standard_normal((2, 8, 3))
    out, cache = ring_attention_mpi_forward(x, x, x, comm=OneRankComm(), causal=True)
    grads = ring_attention_mpi_backward(np.ones_like(out), cache)
    _check_event_log(cache.stats, 1)
    _check_event_log(grads.stats, 1)


EVENTS = """
import numpy as np
from mpi4py import MPI
from attention_np.parallel import (
    layout_positions, ring_attention_mpi_backward, ring_attention_mpi_forward)
comm = MPI.COMM_WORLD
P, r = comm.Get_size(), comm.Get_rank()
x = np.random.default_rng(0).standard_normal((2, 32, 4))
mine = x[:, layout_positions("zigzag", 32, P)[r]]
comm.Barrier()
out, cache = ring_attention_mpi_forward(mine, mine, mine, comm=comm, causal=True)
grads = ring_attention_mpi_backward(np.ones_like(out), cache)
logs = comm.gather((cache.stats.events, grads.stats.events), root=0)
if r == 0:
    for fwd, bwd in logs:
        for events in (fwd, bwd):
            phases = [(e.step, e.phase) for e in events]
            assert phases == [(t, p) for t in range(P)
                              for p in ("post", "compute", "wait")], phases
    # one clock for every process of the machine: rank r's wait of step t ends
    # after rank r - 1 posted the block it receives
    for rank in range(P):
        sender = logs[(rank - 1) % P][0]
        for t in range(P - 1):
            posted = [e.start for e in sender if e.phase == "post" and e.step == t][0]
            waited = [e.end for e in logs[rank][0] if e.phase == "wait" and e.step == t]
            assert waited[0] >= posted, (rank, t)
    print("events ok")
"""


@needs_mpi
def test_mpi_ring_event_logs_of_all_ranks_share_one_clock(tmp_path):
    script = tmp_path / "events.py"
    script.write_text(EVENTS)
    result = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "events ok" in result.stdout

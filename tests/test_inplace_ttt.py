"""In-Place TTT (Feng et al. 2026): every form agrees; zero conv is the plain MLP;
chunk-level causality; padding never leaks; context parallelism (simulated and MPI)."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import fd_check

from attention_np.memory import (
    init_inplace_ttt_params,
    inplace_ttt_backward,
    inplace_ttt_context_parallel,
    inplace_ttt_forward,
    shard_positions,
)
from attention_np.memory.chunk_conv import chunk_conv_backward, chunk_conv_forward
from attention_np.memory.inplace_ttt import PARAM_KEYS, gated_mlp

B, T, D, F, C = 2, 11, 3, 5, 4  # T is not a multiple of C: the last chunk is partial
LR = 0.4
FORMS = ("parallel", "sequential", "linear_attention")


def _setup(rng):
    p = init_inplace_ttt_params(D, F, rng=rng)
    p["conv"] = rng.standard_normal(p["conv"].shape)  # not the zero init
    p["W_target"] = p["W_target"] + 0.3 * rng.standard_normal((D, D))
    return rng.standard_normal((B, T, D)), p


@pytest.mark.parametrize("form", FORMS[1:])
@pytest.mark.parametrize("separate_target", [False, True])
def test_every_form_equals_the_parallel_form(rng, form, separate_target):
    x, p = _setup(rng)
    kw = dict(chunk_size=C, lr=LR, lengths=np.array([T, 6]))
    if separate_target:
        kw["target"] = rng.standard_normal((B, T, D))
    ref, _ = inplace_ttt_forward(x, p, form="parallel", **kw)
    out, _ = inplace_ttt_forward(x, p, form=form, **kw)
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("n_ranks", [1, 2, 3])
def test_context_parallel_simulation_equals_one_process(rng, n_ranks):
    x, p = _setup(rng)
    ref, _ = inplace_ttt_forward(x, p, chunk_size=C, lr=LR)
    out, shards = inplace_ttt_context_parallel(
        x, p, chunk_size=C, lr=LR, n_ranks=n_ranks
    )
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert shards[0][0] == 0 and shards[-1][1] == T
    assert all(a % C == 0 for a, _ in shards)  # every shard starts a chunk


def test_shards_are_whole_chunks_spread_evenly():
    assert shard_positions(10, chunk_size=2, n_ranks=2) == [(0, 6), (6, 10)]
    assert shard_positions(9, chunk_size=4, n_ranks=3) == [(0, 4), (4, 8), (8, 9)]
    with pytest.raises(ValueError, match="n_ranks"):
        shard_positions(8, chunk_size=4, n_ranks=3)  # 2 chunks cannot feed 3 ranks


def test_zero_conv_is_exactly_the_plain_mlp(rng):
    x, p = _setup(rng)
    p["conv"] = np.zeros_like(p["conv"])
    out, cache = inplace_ttt_forward(x, p, chunk_size=C, lr=LR)
    np.testing.assert_array_equal(out, gated_mlp(x, p))
    np.testing.assert_array_equal(cache.delta, 0.0)


def test_changing_a_token_changes_no_earlier_chunk_bit_for_bit(rng):
    x, p = _setup(rng)
    out, _ = inplace_ttt_forward(x, p, chunk_size=C, lr=LR)
    t = C + 1  # a token of chunk 1
    x2 = x.copy()
    x2[:, t] += 1.0
    out2, _ = inplace_ttt_forward(x2, p, chunk_size=C, lr=LR)
    np.testing.assert_array_equal(out2[:, :C], out[:, :C])  # chunk 0 untouched
    same = [i for i in range(C, 2 * C) if i != t]  # the rest of chunk 1
    np.testing.assert_array_equal(out2[:, same], out[:, same])
    assert np.all(np.abs(out2[:, t] - out[:, t]) > 0)  # through Z
    assert np.all(np.abs(out2[:, 2 * C :] - out[:, 2 * C :]).max(axis=-1) > 0)


def test_padding_rows_never_affect_valid_outputs(rng):
    x, p = _setup(rng)
    target = rng.standard_normal((B, T, D))
    lengths = np.array([T, 6])
    out, _ = inplace_ttt_forward(
        x, p, chunk_size=C, lr=LR, lengths=lengths, target=target
    )
    x2, t2 = x.copy(), target.copy()
    x2[1, 6:], t2[1, 6:] = np.nan, 1e6  # garbage in the padding rows
    out2, _ = inplace_ttt_forward(
        x2, p, chunk_size=C, lr=LR, lengths=lengths, target=t2
    )
    np.testing.assert_array_equal(out2[:, :6], out[:, :6])
    np.testing.assert_array_equal(out2[0], out[0])
    np.testing.assert_array_equal(out2[1, 6:], 0.0)
    alone, _ = inplace_ttt_forward(
        x[1:, :6], p, chunk_size=C, lr=LR, target=target[1:, :6]
    )
    np.testing.assert_allclose(out[1:, :6], alone, atol=1e-12)


def test_conv_stays_inside_its_chunk_and_sees_the_next_tokens(rng):
    t = rng.standard_normal((1, 2, C, D))  # (B, n, C, D)
    w = np.zeros((5, D))
    w[3] = 1.0  # offset +1: each position reads the next token
    out, _ = chunk_conv_forward(t, w)
    np.testing.assert_array_equal(out[:, :, :-1], t[:, :, 1:])
    np.testing.assert_array_equal(out[:, :, -1], 0.0)  # the next chunk is not seen


def test_chunk_conv_backward_matches_finite_differences(rng):
    fd_check(
        lambda p: chunk_conv_forward(p["t"], p["w"]),
        lambda d, c: dict(zip("tw", chunk_conv_backward(d, c), strict=True)),
        {"t": rng.standard_normal((2, 3, 4, 5)), "w": rng.standard_normal((5, 5))},
        rng,
    )


def test_updates_are_lr_times_z_transpose_v_hat(rng):
    x, p = _setup(rng)
    _, cache = inplace_ttt_forward(x, p, chunk_size=C, lr=LR)
    i = 1
    expected = LR * np.swapaxes(cache.Z[:, i], 1, 2) @ cache.V_hat[:, i]
    np.testing.assert_allclose(cache.delta[:, i], expected, atol=1e-12)


@pytest.mark.parametrize("separate_target", [False, True])
def test_backward_matches_finite_differences(rng, separate_target):
    x, params = _setup(rng)
    inputs = {"x": x, **params}
    if separate_target:
        inputs["target"] = rng.standard_normal((B, T, D))
    lengths = np.array([T, 6]) if separate_target else None

    def forward(p):
        weights = {k: p[k] for k in PARAM_KEYS}
        target = p.get("target")
        return inplace_ttt_forward(
            p["x"], weights, target, lengths, chunk_size=C, lr=LR
        )

    def backward(dout, cache):
        dx, dtarget, grads = inplace_ttt_backward(dout, cache)
        extra = {"target": dtarget} if separate_target else {}
        return {"x": dx, **grads, **extra}

    fd_check(forward, backward, inputs, rng)


def test_bad_inputs_are_named(rng):
    x, p = _setup(rng)
    with pytest.raises(ValueError, match="lengths"):
        inplace_ttt_forward(x, p, chunk_size=C, lr=LR, lengths=np.array([T + 1, 1]))
    with pytest.raises(ValueError, match="form"):
        inplace_ttt_forward(x, p, chunk_size=C, lr=LR, form="ring")
    p["conv"] = np.zeros((4, D))
    with pytest.raises(ValueError, match="odd"):
        inplace_ttt_forward(x, p, chunk_size=C, lr=LR)


# pip's mpich puts mpiexec next to the interpreter, which need not be on PATH
_SEARCH = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
)
MPIEXEC = shutil.which("mpiexec", path=_SEARCH)
HAS_MPI4PY = importlib.util.find_spec("mpi4py") is not None


def _cli(*flags):
    module = "attention_np.memory.inplace_ttt_cp"
    return subprocess.run(
        [sys.executable, "-m", module, *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--bogus"], "--bogus"),
        (["--chunk-size", "0"], "--chunk-size"),
        (["--chunk-size", "two"], "--chunk-size"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--seed", "-3"], "--seed"),
    ],
)
def test_the_mpi_check_rejects_bad_flags_with_exit_status_2(flags, named):
    result = _cli(*flags)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    not HAS_MPI4PY, reason="mpi4py is not installed (pip install mpi4py mpich)"
)
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec next to Python or on PATH")
def test_mpi_exscan_equals_one_process():
    module = "attention_np.memory.inplace_ttt_cp"
    result = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-m", module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(ok)" in result.stdout
    assert "RuntimeWarning" not in result.stderr


@pytest.mark.skipif(HAS_MPI4PY, reason="mpi4py is installed")
def test_the_mpi_check_without_mpi4py_ends_with_an_error_not_a_traceback():
    result = _cli()
    assert result.returncode == 2
    assert "error: mpi4py is not installed" in result.stderr


def test_the_package_does_not_import_its_runnable_mpi_check():
    # runpy warns when ``python -m`` runs a module its package has already imported
    code = (
        "import sys, attention_np.memory\n"
        "print('attention_np.memory.inplace_ttt_cp' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_lengths_may_be_a_list_and_target_positional(rng):
    x, p = _setup(rng)
    target = rng.standard_normal((B, T, D))
    ref, _ = inplace_ttt_forward(
        x, p, target=target, lengths=np.array([T, 6]), chunk_size=C, lr=LR
    )
    out, _ = inplace_ttt_forward(x, p, target, [T, 6], chunk_size=C, lr=LR)
    np.testing.assert_array_equal(out, ref)


def test_backward_gives_no_target_gradient_when_the_target_is_x(rng):
    x, p = _setup(rng)
    out, cache = inplace_ttt_forward(x, p, chunk_size=C, lr=LR)
    dx, dtarget, grads = inplace_ttt_backward(rng.standard_normal(out.shape), cache)
    assert dtarget is None and dx.shape == x.shape and set(grads) == set(p)

"""The exercise 19a checkers: two or more different correct solutions pass, planted
wrong ones fail by raising, and the hint names the planted mistake."""

import json
from pathlib import Path

import numpy as np
import pytest

from attention_np.exercises.build import student_notebook
from attention_np.exercises.recurrence_checks import (
    check_gated_delta_chunk,
    check_gated_delta_step,
)

# --- gated_delta_step --------------------------------------------------------------


def step_decay_first(S, q, k, v, alpha, beta):
    Sa = alpha * S
    S_new = Sa + beta * np.outer(k, v - k @ Sa)
    return q @ S_new, S_new


def step_householder(S, q, k, v, alpha, beta):
    """alpha (I - beta k^T k) S + beta k^T v: the transition-matrix form."""
    A = alpha * (np.eye(len(k)) - beta * np.outer(k, k))
    S_new = A @ S + beta * np.outer(k, v)
    return q @ S_new, S_new


def step_decay_after_write(S, q, k, v, alpha, beta):
    S_new = alpha * (S + beta * np.outer(k, v - k @ S))
    return q @ S_new, S_new


def step_read_before_write(S, q, k, v, alpha, beta):
    Sa = alpha * S
    return q @ S, Sa + beta * np.outer(k, v - k @ Sa)


def step_sum_rule(S, q, k, v, alpha, beta):
    S_new = alpha * S + beta * np.outer(k, v)
    return q @ S_new, S_new


def step_transposed(S, q, k, v, alpha, beta):
    S_new = alpha * S + beta * np.outer(v - k @ (alpha * S), k)  # (d_v, d_k)
    return q @ S_new.T, S_new


def step_in_place(S, q, k, v, alpha, beta):
    S *= alpha  # modifies the caller's state
    S += beta * np.outer(k, v - k @ S)
    return q @ S, S


# --- gated_delta_chunk -------------------------------------------------------------


def chunk_token_loop(S0, Q, K, V, log_alpha, beta):
    """Correct but not chunkwise: the checker judges answers, not methods."""
    S, out = S0, []
    for t in range(len(Q)):
        o, S = step_decay_first(S, Q[t], K[t], V[t], np.exp(log_alpha[t]), beta[t])
        out.append(o)
    return np.array(out), S


def chunk_ut(S0, Q, K, V, log_alpha, beta, *, unmasked=False, decay_in=True):
    B = np.cumsum(log_alpha)
    diff = B[:, None] - B[None, :]
    tril = np.tril(np.ones_like(diff, dtype=bool))
    G = np.exp(diff) if unmasked else np.exp(np.where(tril, diff, -np.inf))
    T = np.linalg.inv(np.eye(len(B)) + beta[:, None] * np.tril(K @ K.T * G, -1))
    W, U0 = T @ (beta[:, None] * K * np.exp(B)[:, None]), T @ (beta[:, None] * V)
    U = U0 - W @ S0
    Qe = Q * np.exp(B)[:, None] if decay_in else Q
    P = Q @ K.T * G if unmasked else np.tril(Q @ K.T * G)
    O = Qe @ S0 + P @ U
    return O, np.exp(B[-1]) * S0 + (K * np.exp(B[-1] - B)[:, None]).T @ U


def chunk_global_decay_on_keys(S0, Q, K, V, log_alpha, beta):
    O, _ = chunk_ut(S0, Q, K, V, log_alpha, beta)
    _, S = chunk_token_loop(S0, Q, K, V, np.zeros_like(log_alpha), beta)
    return O, S  # the state forgot the decays


def chunk_off_by_a_constant(S0, Q, K, V, log_alpha, beta):
    O, S = chunk_ut(S0, Q, K, V, log_alpha, beta)
    return O - 1e-3, S  # off by a constant: no known mistake


@pytest.mark.parametrize("fn", [step_decay_first, step_householder])
def test_correct_steps_pass(fn, capsys):
    assert check_gated_delta_step(fn)
    assert "✓ 5/5 cases pass." in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, hint",
    [
        (step_decay_after_write, "decay after the write"),
        (step_read_before_write, "output read before the write"),
        (step_sum_rule, "sum rule instead of the delta rule"),
        (step_transposed, None),
        (step_in_place, "modified in place"),
    ],
)
def test_wrong_steps_raise_with_the_right_hint(fn, hint, capsys):
    with pytest.raises(AssertionError):
        check_gated_delta_step(fn)
    out = capsys.readouterr().out
    assert "✗" in out
    if hint is None:
        assert "Hint" not in out  # no known mistake matches: no guess
    else:
        assert hint in out


@pytest.mark.parametrize("fn", [chunk_token_loop, chunk_ut])
def test_correct_chunks_pass(fn, capsys):
    assert check_gated_delta_chunk(fn)
    assert "✓ 4/4 cases pass." in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda *a: chunk_ut(*a, unmasked=True), "scores not causally masked"),
        (lambda *a: chunk_ut(*a, decay_in=False), "not decayed for the outputs"),
        (chunk_global_decay_on_keys, None),
        (chunk_off_by_a_constant, None),
    ],
)
def test_wrong_chunks_raise_with_the_right_hint(fn, hint, capsys):
    with pytest.raises(AssertionError):
        check_gated_delta_chunk(fn)
    out = capsys.readouterr().out
    assert ("Hint" not in out) if hint is None else (hint in out)


def test_a_solution_that_raises_is_reported_with_its_case(capsys):
    def broken(S, q, k, v, alpha, beta):
        return np.linalg.inv(np.zeros((2, 2))), S

    with pytest.raises(AssertionError, match="d_k != d_v"):
        check_gated_delta_step(broken)
    assert "raised LinAlgError" in capsys.readouterr().out


def test_a_stub_is_reported_as_not_implemented_and_raises(capsys):
    def stub(*args):
        raise NotImplementedError()

    for check in (check_gated_delta_step, check_gated_delta_chunk):
        with pytest.raises(AssertionError, match="not implemented yet"):
            check(stub)
        assert "not implemented yet" in capsys.readouterr().out


# --- the draft exercise notebook ---------------------------------------------------

DRAFT = (
    Path(__file__).resolve().parents[1]
    / "notebooks/exercises/drafts/20a_gated_recurrence.ipynb"
)


def _check_cells(nb):
    return [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("grade")
    ]


def test_the_committed_draft_shows_every_check_passing():
    nb = json.loads(DRAFT.read_text(encoding="utf-8"))
    cells = _check_cells(nb)
    assert len(cells) == 2
    for cell in cells:
        text = "".join(
            "".join(o.get("text", ""))
            + "".join(o.get("data", {}).get("text/plain", ""))
            for o in cell["outputs"]
        )
        assert (
            "cases pass" in text and "✗" not in text and text.rstrip().endswith("True")
        )


def test_the_student_copy_of_the_draft_raises_not_implemented(capsys):
    nb, replaced = student_notebook(json.loads(DRAFT.read_text(encoding="utf-8")))
    assert replaced == 2
    namespace = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            with pytest.raises(AssertionError, match="not implemented yet"):
                exec(source, namespace)
        elif "gated_delta_chunk(S, Q" not in source:  # the demo needs a solution
            exec(source, namespace)
    assert capsys.readouterr().out.count("not implemented yet") == 2

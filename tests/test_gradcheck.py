import io
import subprocess
import sys

import numpy as np
import pytest

from attention_np import (
    attention_backward,
    attention_forward,
    grad_report,
    numerical_grad,
    numerical_grads,
    rel_error,
)
from attention_np.__main__ import run_gradcheck
from attention_np.gradcheck import as_check, check_layer


def test_numerical_grad_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    g = numerical_grad(lambda a: np.sin(a) * a, x, dout)
    np.testing.assert_allclose(g, (np.cos(x) * x + np.sin(x)) * dout, atol=1e-8)


def test_numerical_grads_leave_inputs_unchanged(rng):
    inputs = {"a": rng.standard_normal(5), "b": rng.standard_normal(5)}
    before = {k: v.copy() for k, v in inputs.items()}
    grads = numerical_grads(lambda p: p["a"] * p["b"], inputs, np.ones(5))
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], before[k])
    np.testing.assert_allclose(grads["a"], before["b"], atol=1e-8)


def test_float32_is_refused():
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(lambda a: a, np.ones(3, np.float32), np.ones(3))
    with pytest.raises(TypeError, match="w has dtype float32"):
        numerical_grads(lambda p: p["w"], {"w": np.ones(3, np.float32)}, np.ones(3))


def test_rel_error_is_zero_for_equal_and_for_both_zero():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.ones(3), -np.ones(3)) == pytest.approx(1.0)


def wrong_attention_backward(dout, cache):
    """A planted bug: dk forgets the scale (uses q instead of q * scale)."""
    dq, dk, dv = attention_backward(dout, cache)
    return dq, dk / cache.scale, dv


@pytest.mark.parametrize(
    "backward,expected", [(attention_backward, True), (wrong_attention_backward, False)]
)
def test_check_layer_reports_a_planted_bug(rng, backward, expected):
    inputs = {n: rng.standard_normal((2, 3, 4)) for n in "qkv"}
    out = io.StringIO()
    ok = check_layer(
        lambda p: attention_forward(p["q"], p["k"], p["v"], causal=False),
        lambda dout, cache: dict(zip("qkv", backward(dout, cache), strict=False)),
        inputs,
        rng=rng,
        file=out,
    )
    assert ok is expected
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # one line per tensor
    assert ("FAIL" in lines[1]) is not expected and "ok" in lines[0]


def test_grad_report_format():
    out = io.StringIO()
    ok = grad_report(
        {"w": np.ones(2), "b": np.zeros(3)},
        {"w": np.ones(2), "b": np.full(3, 1e-3)},
        title="layer",
        file=out,
    )
    text = out.getvalue()
    assert not ok and text.startswith("layer\n")
    assert (
        "w" in text and "ok" in text.splitlines()[1] and "FAIL" in text.splitlines()[2]
    )


def test_whole_package_gradcheck_passes():
    out = io.StringIO()
    assert run_gradcheck(file=out) == []
    assert "FAIL" not in out.getvalue()


def test_cli_exit_codes():
    ok = subprocess.run(
        [sys.executable, "-m", "attention_np", "gradcheck", "-k", "softmax"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "2/2 layers ok" in ok.stdout


def test_cli_exits_one_on_failure(monkeypatch):
    from attention_np import gradcheck_cases

    case = gradcheck_cases.CASES["softmax"](np.random.default_rng(0))
    forward, _, inputs = as_check(case)

    def broken(rng):  # softmax's forward with a wrong backward
        return forward, lambda dout, cache: {"x": dout}, inputs

    monkeypatch.setitem(gradcheck_cases.CASES, "broken softmax", broken)
    from attention_np.__main__ import main

    assert main(["gradcheck", "-k", "broken"]) == 1


def test_main_returns_two_for_a_pattern_that_matches_nothing(capsys):
    from attention_np.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["gradcheck", "-k", "no_such_layer"])
    assert info.value.code == 2
    assert "no gradcheck case matches 'no_such_layer'" in capsys.readouterr().err


def test_run_gradcheck_refuses_to_check_nothing():
    with pytest.raises(ValueError, match="no_such_layer"):
        run_gradcheck("no_such_layer", file=io.StringIO())


def test_cli_seed_selects_the_upstream_gradient():
    a, b = io.StringIO(), io.StringIO()
    assert run_gradcheck("softmax", seed=0, file=a) == []
    assert run_gradcheck("softmax", seed=3, file=b) == []
    assert a.getvalue() != b.getvalue()  # other inputs, other differences

"""Determinism: the same seed gives bit-identical results, in one process and across
processes, and no library code touches NumPy's global random state (``np.random.seed``,
``np.random.rand``, ...) or creates an unseeded Generator."""

import ast
import hashlib
import inspect
import io
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import attention_np as an

PACKAGE = Path(an.__file__).resolve().parent
# np.random names that do not touch the global state: Generator machinery only
ALLOWED_NP_RANDOM = {
    "default_rng",
    "Generator",
    "BitGenerator",
    "SeedSequence",
    "PCG64",
    "PCG64DXSM",
    "Philox",
    "SFC64",
}


def mha_run(seed, dropout_p=0.3):
    """Everything stochastic in the core package, from one seed: params, x, dropout."""
    rng = np.random.default_rng(seed)
    params = an.init_mha_params(12, 3, rng=rng, d_kv=8)
    x_q, x_kv = rng.standard_normal((2, 4, 12)), rng.standard_normal((2, 5, 8))
    mask = an.combine_masks(an.padding_mask([5, 3], 5), an.causal_mask(4, 5))
    out, cache = an.mha_forward(
        x_q, x_kv, params, mask, n_heads=3, causal=False, dropout_p=dropout_p, rng=rng
    )
    dx_q, dx_kv, grads = an.mha_backward(rng.standard_normal(out.shape), cache)
    return [*params.values(), out, cache.weights, dx_q, dx_kv, *grads.values()]


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_attention_with_dropout_same_seed_is_bit_identical():
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal(s) for s in ((2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 7))
    )
    dout = rng.standard_normal((2, 3, 4, 7))
    runs = []
    for _ in range(2):
        out, cache = an.attention_forward(
            q, k, v, causal=True, dropout_p=0.4, rng=np.random.default_rng(42)
        )
        runs.append([out, cache.keep, *an.attention_backward(dout, cache)])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_mha_params_same_seed_is_bit_identical(dtype):
    a = an.init_mha_params(12, 3, rng=np.random.default_rng(7), d_kv=8, dtype=dtype)
    b = an.init_mha_params(12, 3, rng=np.random.default_rng(7), d_kv=8, dtype=dtype)
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == dtype
        np.testing.assert_array_equal(a[name], b[name])


def test_mha_forward_backward_same_seed_is_bit_identical():
    for a, b in zip(mha_run(3), mha_run(3), strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_dropout():
    assert digest(mha_run(3)) != digest(mha_run(4))


def test_results_are_bit_identical_across_processes():
    # fresh interpreters with different hash seeds must reproduce this process's bits
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_determinism import digest, mha_run
        print(digest(mha_run(3)))
        """
    )
    expected = digest(mha_run(3))
    for hash_seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert result.stdout.strip() == expected


# --- the global random state ----------------------------------------------------


def call_every_stochastic_entry_point():
    """Call each public function that takes an rng (and some that do not)."""
    rng = np.random.default_rng(11)
    mha_run(5)
    q = rng.standard_normal((2, 3, 4))
    out, cache = an.attention_forward(q, q, q, causal=True, dropout_p=0.5, rng=rng)
    an.attention_backward(out, cache)
    an.attention_weights(q, q, an.causal_mask(3), causal=False)
    an.softmax_forward(q, q > 0)
    an.init_mha_params(8, 2, rng=rng, bias=False)
    an.check_layer(
        lambda p: an.softmax_forward(p["x"]),
        lambda dout, c: {"x": an.softmax_backward(dout, c)},
        {"x": q},
        rng=rng,
        file=io.StringIO(),
    )
    an.numerical_grad(lambda a: a**2, q, q)
    from attention_np.__main__ import run_gradcheck

    run_gradcheck("softmax", file=io.StringIO())  # the CLI seeds its own Generators


COVERED_RNG_FUNCTIONS = {
    "attention_forward",
    "check_layer",
    "init_mha_params",
    "mha_forward",
}


def test_every_public_function_with_an_rng_argument_is_exercised():
    with_rng = {
        name
        for name in an.__all__
        if callable(obj := getattr(an, name))
        and "rng" in getattr(inspect.signature(obj), "parameters", {})
    }
    missing = with_rng - COVERED_RNG_FUNCTIONS
    assert not missing, (
        f"add calls of {sorted(missing)} to call_every_stochastic_entry_point "
        "and COVERED_RNG_FUNCTIONS in tests/test_determinism.py"
    )


def states_equal(a, b):
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in zip(a, b, strict=True)
    )


def test_no_function_touches_numpy_or_python_global_random_state():
    np.random.seed(1234)  # a known global state (the test's own business)
    random.seed(1234)
    np_before, py_before = np.random.get_state(), random.getstate()
    call_every_stochastic_entry_point()
    assert states_equal(np.random.get_state(), np_before)
    assert random.getstate() == py_before


def test_no_generator_is_created_without_a_seed_at_run_time(monkeypatch):
    real = np.random.default_rng

    def seeded_only(seed=None):
        assert seed is not None, "np.random.default_rng() called without a seed"
        return real(seed)

    monkeypatch.setattr(np.random, "default_rng", seeded_only)
    call_every_stochastic_entry_point()


def unseeded_default_rng(node):
    """True for a call default_rng() or default_rng(None)."""
    if not isinstance(node, ast.Call):
        return False
    if getattr(node.func, "attr", getattr(node.func, "id", "")) != "default_rng":
        return False
    if not node.args and not node.keywords:
        return True
    first = node.args[0] if node.args else node.keywords[0].value
    return isinstance(first, ast.Constant) and first.value is None


def np_random_uses(tree):
    """(line, text) of each np.random.X (X not allowed) or unseeded default_rng()."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "random"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in ("np", "numpy")
            and node.attr not in ALLOWED_NP_RANDOM
        ):
            found.append((node.lineno, f"np.random.{node.attr}"))
        if isinstance(node, ast.ImportFrom) and node.module == "numpy.random":
            bad = [a.name for a in node.names if a.name not in ALLOWED_NP_RANDOM]
            found += [(node.lineno, f"from numpy.random import {n}") for n in bad]
        if unseeded_default_rng(node):
            found.append((node.lineno, "default_rng() without a seed"))
    return sorted(found)


def test_package_source_never_uses_the_global_or_an_unseeded_random_state():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(PACKAGE.parent)
        offenders += [f"{rel}:{line}: {text}" for line, text in np_random_uses(tree)]
    assert not offenders, "take an explicit rng instead:\n" + "\n".join(offenders)


def test_the_source_scan_catches_what_it_should():
    bad = ast.parse(
        "import numpy as np\n"
        "np.random.seed(0)\n"
        "x = np.random.randn(3)\n"
        "from numpy.random import rand\n"
        "g = np.random.default_rng()\n"
        "h = np.random.default_rng(None)\n"
        "ok = np.random.default_rng(0)\n"
        "t = isinstance(ok, np.random.Generator)\n"
    )
    assert [line for line, _ in np_random_uses(bad)] == [2, 3, 4, 5, 6]

"""attention_np.recurrences follows the package's one contract (CONTRIBUTING.md):
the checks of tests/test_conventions.py applied to this subpackage's public API (it
is not yet in that file's SUBPACKAGES), and every public forward/backward pair is
called by a gradcheck LayerCase that returns the contract's gradients and modifies
nothing."""

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest

from attention_np import recurrences
from attention_np.gradcheck import LayerCase, case_functions
from attention_np.recurrences.gradcheck_cases import CASES

HERE = Path(__file__).resolve().parent


def _conventions():
    """tests/test_conventions.py as a module (its check functions)."""
    spec = importlib.util.spec_from_file_location(
        "_conventions", HERE / "test_conventions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONV = _conventions()
API = {
    f"{obj.__module__}.{name}": obj
    for name in recurrences.__all__
    if inspect.isfunction(obj := getattr(recurrences, name))
}


@pytest.mark.parametrize(
    "check",
    ["causal_violations", "backward_violations", "forward_violations",
     "init_violations"],
)  # fmt: skip
def test_public_api_passes_the_convention_checks(check):
    assert getattr(CONV, check)(API) == []


def test_no_private_name_is_imported_across_subpackages():
    bad = CONV.private_import_violations(Path(recurrences.__file__).parents[1])
    assert [b for b in bad if "recurrences" in b] == []


LAYER_CASES = {n: c(np.random.default_rng(0)) for n, c in CASES.items()}


def test_every_public_pair_is_called_by_a_layer_case():
    covered = {c.forward.__name__ for c in LAYER_CASES.values()}
    covered |= {getattr(c.forward, "contract_of", "") for c in LAYER_CASES.values()}
    pairs = {q.rsplit(".", 1)[-1] for q in API if q.endswith("_forward")}
    assert pairs - covered == set()
    assert all(isinstance(c, LayerCase) for c in LAYER_CASES.values())


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_returns_the_contract_and_modifies_nothing(name):
    case = LAYER_CASES[name]
    arrays = {n: np.array(a) for n, a in case.arrays.items()}
    params = {k: v.copy() for k, v in (case.params or {}).items()}
    state = np.random.get_state()[1].copy()
    forward, backward, inputs = case_functions(case)
    out, cache = forward(inputs)
    dout = np.random.default_rng(1).standard_normal(np.shape(out))
    backward(dout, cache)
    backward(dout, cache)
    for n, a in case.arrays.items():
        np.testing.assert_array_equal(a, arrays[n], err_msg=n)
    for k, v in (case.params or {}).items():
        np.testing.assert_array_equal(v, params[k], err_msg=k)
    np.testing.assert_array_equal(np.random.get_state()[1], state)

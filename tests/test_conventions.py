"""The package's one contract (CONTRIBUTING.md), checked mechanically on the public API.

The public API is every name exported from the ``__init__`` of the package and of its
subpackages, plus the public functions of the core modules that are not re-exported.
Some rules (``dout`` naming, ``init_*_params`` options) hold for every public-by-name
function (no leading underscore) defined in any module of the package, exported or
not: ``every_module_function`` walks them all. Each check is a function that returns
the list of violations it finds, so that it can be run on the real API (no
violations) and on planted ones (each one found).
"""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import attention_np as an
from attention_np.__main__ import all_cases
from attention_np.gradcheck import LayerCase, case_functions

PACKAGE = Path(an.__file__).resolve().parent
SUBPACKAGES = ("", ".efficient", ".parallel", ".memory", ".transformer", ".train")
SUBPACKAGES += (".recurrences",)
MODULES = (".decoding", ".additive", ".positional", ".analysis", ".naive", ".masks")
MODULES += (".layers", ".multihead", ".attention")

# Every function that computes attention weights or an attention pattern that can be
# causal: it must take ``causal`` (keyword-only, required) and ``align``.
MUST_BE_CAUSAL = {
    "attention_forward",
    "attention_weights",
    "attention_naive",
    "mha_naive",
    "mha_forward",
    "self_attention_forward",
    "block_forward",
    "gqa_attention_forward",
    "cached_attention",
    "additive_attention_forward",
    "luong_attention_forward",
    "flash_attention_forward",
    "flash_attention_reference",
    "block_attention_forward",
    "linear_attention_forward",
    "linear_attention_weights",
    "sliding_window_attention_forward",
    "sliding_window_mask",
    "dilated_mask",
    "strided_mask",
    "ring_attention_forward",
    "ring_attention_mpi_forward",
    "ulysses_attention_forward",
    "ulysses_mpi_forward",
}
# positions fix causality without an alignment (CONTRIBUTING.md, section 2)
NO_ALIGN = {"cached_attention"}
# optional arrays that may be positional (CONTRIBUTING.md, section 1)
OPTIONAL_ARRAYS = {
    "mask",
    "b",
    "W_a",
    "initial_state",
    "target",
    "positions",
    "lengths",
}
FORBIDDEN_NAMES = {"causal_offset", "is_causal"}


def public_functions():
    """{qualified name: function} of the public API (no classes, no re-imports)."""
    found = {}
    for suffix in SUBPACKAGES:
        package = importlib.import_module("attention_np" + suffix)
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isfunction(obj):
                found[f"{obj.__module__}.{name}"] = obj
    for suffix in MODULES:
        module = importlib.import_module("attention_np" + suffix)
        for name, obj in vars(module).items():
            own = getattr(obj, "__module__", None) == module.__name__
            if inspect.isfunction(obj) and own and not name.startswith("_"):
                found[f"{module.__name__}.{name}"] = obj
    return found


def every_module_function():
    """{qualified name: function} of every public-by-name function defined in any
    module of the package (exported from an ``__init__`` or not)."""
    found = {}
    for info in pkgutil.walk_packages(an.__path__, "attention_np."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            own = getattr(obj, "__module__", None) == module.__name__
            if inspect.isfunction(obj) and own and not name.startswith("_"):
                found[f"{module.__name__}.{name}"] = obj
    return found


# --- the checks --------------------------------------------------------------------


def causal_violations(functions):
    """``causal`` keyword-only with no default; ``align`` keyword-only, "top_left"."""
    bad = []
    for qual, fn in functions.items():
        name = qual.rsplit(".", 1)[-1]
        params = inspect.signature(fn).parameters
        for forbidden in FORBIDDEN_NAMES & set(params):
            bad.append(f"{qual}: parameter {forbidden!r} (say causal=/align=)")
        if name in MUST_BE_CAUSAL and "causal" not in params:
            bad.append(f"{qual}: takes no causal=")
        if "causal" in params:
            p = params["causal"]
            if p.kind is not p.KEYWORD_ONLY:
                bad.append(f"{qual}: causal is not keyword-only")
            if p.default is not p.empty:
                bad.append(f"{qual}: causal has a default ({p.default!r})")
            if name not in NO_ALIGN and "align" not in params:
                bad.append(f"{qual}: takes causal= but no align=")
        if "align" in params:
            p = params["align"]
            if p.kind is not p.KEYWORD_ONLY or p.default != "top_left":
                bad.append(f"{qual}: align must be keyword-only, default 'top_left'")
    return bad


def backward_violations(functions):
    """Every public backward is ``f(dout, cache)``, and has a public forward twin."""
    bad = []
    names = {q.rsplit(".", 1)[-1] for q in functions}
    for qual, fn in functions.items():
        name = qual.rsplit(".", 1)[-1]
        if not name.endswith("_backward"):
            continue
        params = list(inspect.signature(fn).parameters.values())
        if [p.name for p in params] != ["dout", "cache"]:
            got = [p.name for p in params]
            bad.append(f"{qual}: signature {got}, expected ['dout', 'cache']")
        if name.replace("_backward", "_forward") not in names:
            bad.append(f"{qual}: no public {name.replace('_backward', '_forward')}")
    return bad


def dout_violations(functions):
    """A function named ``*_backward`` takes the upstream gradient first, named
    ``dout``; any further upstream gradient is named ``d<name>`` (``dfinal_state``).
    The exercise checkers ``check_*_backward`` take the learner's function instead."""
    bad = []
    for qual, fn in functions.items():
        name = qual.rsplit(".", 1)[-1]
        if not name.endswith("_backward") or name.startswith("check_"):
            continue
        names = list(inspect.signature(fn).parameters)
        if not names or names[0] != "dout":
            bad.append(f"{qual}: upstream gradient is {names[:1]}, expected 'dout'")
    return bad


def forward_violations(functions):
    """Options are keyword-only: a parameter with a default is keyword-only, unless it
    is one of the optional arrays."""
    bad = []
    for qual, fn in functions.items():
        if not qual.endswith("_forward"):
            continue
        for p in inspect.signature(fn).parameters.values():
            positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            if positional and p.default is not p.empty:
                if p.name not in OPTIONAL_ARRAYS:
                    bad.append(f"{qual}: option {p.name!r} is not keyword-only")
    return bad


def init_violations(functions):
    """init_*_params: rng keyword-only and required, dtype keyword-only float64."""
    bad = []
    for qual, fn in functions.items():
        name = qual.rsplit(".", 1)[-1]
        if not (name.startswith("init_") and name.endswith("_params")):
            continue
        params = inspect.signature(fn).parameters
        rng = params.get("rng")
        if (
            rng is None
            or rng.kind is not rng.KEYWORD_ONLY
            or rng.default is not rng.empty
        ):
            bad.append(f"{qual}: rng must be keyword-only and required")
        dtype = params.get("dtype")
        if dtype is None or dtype.kind is not dtype.KEYWORD_ONLY:
            bad.append(f"{qual}: dtype must be keyword-only")
        elif np.dtype(dtype.default) != np.float64:
            bad.append(f"{qual}: dtype must default to float64")
    return bad


def private_import_violations(root):
    """``from X import _y`` (or ``import X._y``) where X lies outside the importing
    module's own subpackage."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts)
        own = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
        own = own.replace(".__init__", "")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                for alias in node.names:
                    target = f"{base}.{alias.name}" if base else alias.name
                    private = alias.name.startswith("_") or any(
                        part.startswith("_") and part != "__init__"
                        for part in base.split(".")
                    )
                    if private and not target.startswith(own + "."):
                        bad.append(f"{module}: imports {target}")
    return bad


def _resolve(module, path, node):
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    if path.name == "__init__.py":
        parts = parts + ["__init__"]
    base = parts[: len(parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


# --- the checks on the real API ----------------------------------------------------

API = public_functions()
EVERY_FUNCTION = every_module_function()


def test_the_api_walk_finds_the_families():
    names = {q.rsplit(".", 1)[-1] for q in API}
    assert {"attention_forward", "flash_attention_forward", "ring_attention_forward"}
    assert {"delta_rule_backward", "model_forward", "mha_forward"} <= names
    assert len(API) > 100


def test_causal_is_keyword_only_and_required_and_align_is_the_same_everywhere():
    assert causal_violations(API) == []


def test_every_backward_takes_dout_and_cache():
    assert backward_violations(API) == []


def test_the_module_walk_sees_unexported_functions():
    assert set(API) <= set(EVERY_FUNCTION)
    assert "attention_np.efficient.kernel_products.recurrent_backward" in EVERY_FUNCTION
    assert "attention_np.recurrences.mixer_gates.init_gate_params" in EVERY_FUNCTION


def test_every_backward_in_every_module_names_the_upstream_gradient_dout():
    assert dout_violations(EVERY_FUNCTION) == []


def test_forward_options_are_keyword_only():
    assert forward_violations(API) == []


def test_init_functions_share_rng_and_dtype_rules():
    assert init_violations(API) == []


def test_init_functions_in_every_module_share_rng_and_dtype_rules():
    assert init_violations(EVERY_FUNCTION) == []


def test_no_private_name_is_imported_across_subpackages():
    assert private_import_violations(PACKAGE) == []


# --- planted violations are found --------------------------------------------------


def _planted_causal_default(q, k, v, mask=None, *, causal=False, align="top_left"):
    pass


def _planted_positional_causal(q, k, v, causal, *, align="top_left"):
    pass


def _planted_backward(do, cache):
    pass


def _planted_dy(dy, cache, dfinal_state=None):
    pass


def _planted_option(q, k, v, mask=None, scale=None, *, causal):
    pass


def _planted_init(d, rng, dtype=np.float64):
    pass


@pytest.mark.parametrize(
    "check, name, fn",
    [
        (causal_violations, "x.flash_attention_forward", _planted_causal_default),
        (causal_violations, "x.attention_forward", _planted_positional_causal),
        (causal_violations, "x.ring_attention_forward", lambda q, k, v, *, n: 0),
        (backward_violations, "x.thing_backward", _planted_backward),
        (dout_violations, "x.thing_backward", _planted_backward),
        (dout_violations, "x.kernel_products.recurrent_backward", _planted_dy),
        (forward_violations, "x.thing_forward", _planted_option),
        (init_violations, "x.init_thing_params", _planted_init),
    ],
)
def test_a_planted_violation_is_found(check, name, fn):
    assert check({name: fn})


def test_a_planted_private_import_is_found(tmp_path):
    pkg = tmp_path / "attention_np"
    (pkg / "efficient").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "attention.py").write_text("def _check(): pass\n")
    (pkg / "efficient" / "__init__.py").write_text("")
    (pkg / "efficient" / "flash.py").write_text("from ..attention import _check\n")
    (pkg / "efficient" / "tiles.py").write_text("from ._inner import x\n")
    found = private_import_violations(pkg)
    assert found == [
        "attention_np.efficient.flash: imports attention_np.attention._check"
    ]


# --- every layer is called by the contract -----------------------------------------


def _layer_cases():
    cases = {}
    for name, case in all_cases().items():
        result = case(np.random.default_rng(0))
        if isinstance(result, LayerCase):
            cases[name] = result
    return cases


LAYER_CASES = _layer_cases()


def test_every_public_forward_backward_pair_has_a_contract_case():
    covered = {c.forward.__name__ for c in LAYER_CASES.values()}
    covered |= {getattr(c.forward, "contract_of", "") for c in LAYER_CASES.values()}
    pairs = {
        q.rsplit(".", 1)[-1]
        for q in API
        if q.endswith("_forward")
        and q.replace("_forward", "_backward").rsplit(".", 1)[-1]
        in {p.rsplit(".", 1)[-1] for p in API}
    }
    missing = sorted(pairs - covered)
    assert not missing, f"no gradcheck LayerCase calls {missing}"


def _copies(case):
    arrays = {n: None if a is None else np.array(a) for n, a in case.arrays.items()}
    params = (
        None if case.params is None else {k: v.copy() for k, v in case.params.items()}
    )
    return arrays, params


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_returns_the_contract_and_modifies_nothing(name):
    case = LAYER_CASES[name]
    arrays, params = _copies(case)
    state = np.random.get_state()[1].copy()
    forward, backward, inputs = case_functions(case)
    out, cache = forward(inputs)
    dout = np.random.default_rng(1).standard_normal(np.shape(out))
    backward(dout, cache)  # raises ContractError unless the returns are the contract's
    backward(dout, cache)  # a backward does not consume or change its cache
    for n, a in case.arrays.items():
        if a is not None:
            np.testing.assert_array_equal(a, arrays[n], err_msg=f"{name}: {n} changed")
    for k, v in (case.params or {}).items():
        np.testing.assert_array_equal(v, params[k], err_msg=f"{name}: params {k}")
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_a_planted_contract_violation_is_found():
    from attention_np import attention_backward, attention_forward
    from attention_np.gradcheck import ContractError

    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal((2, 3, 4)) for n in "qkv"}
    as_dict = lambda dout, cache: dict(
        zip("qkv", attention_backward(dout, cache), strict=True)
    )
    swapped = lambda dout, cache: attention_backward(dout, cache)[::-1][:2]
    for wrong in (as_dict, swapped):
        case = LayerCase(attention_forward, wrong, arrays, options={"causal": False})
        forward, backward, inputs = case_functions(case)
        out, cache = forward(inputs)
        with pytest.raises(ContractError):
            backward(np.ones_like(out), cache)


# --- every exact algorithm gives the same answer to the same call -------------------


def exact_algorithms():
    """{name: f(q, k, v, mask, causal, align) -> out} over every exact algorithm."""
    from attention_np.decoding import gqa_attention_forward
    from attention_np.efficient import (
        block_attention_forward,
        flash_attention_forward,
        flash_attention_reference,
        sliding_window_attention_forward,
    )
    from attention_np.parallel import ring_attention_forward, ulysses_attention_forward

    def kw(mask, causal, align):
        return {"mask": mask, "causal": causal, "align": align}

    def sliding(q, k, v, mask, causal, align):
        if q.shape[-2] != k.shape[-2]:
            return None  # sliding windows are self-attention (N == M)
        window = 2 * k.shape[-2] + 1  # covers every key either way
        return sliding_window_attention_forward(
            q, k, v, window=window, **kw(mask, causal, align)
        )[0]

    algorithms = {
        "core": lambda q, k, v, *a: an.attention_forward(q, k, v, **kw(*a))[0],
        "flash": lambda q, k, v, *a: flash_attention_forward(
            q, k, v, block_q=16, block_k=24, **kw(*a)
        )[0],
        "flash reference": lambda q, k, v, *a: flash_attention_reference(
            q, k, v, **kw(*a)
        )[0],
        "block": lambda q, k, v, *a: block_attention_forward(q, k, v, **kw(*a))[0],
        "gqa": lambda q, k, v, *a: gqa_attention_forward(q, k, v, **kw(*a))[0],
        "sliding window": sliding,
    }
    for layout in ("contiguous", "zigzag", "striped"):
        algorithms[f"ring {layout}"] = lambda q, k, v, *a, layout=layout: (
            ring_attention_forward(q, k, v, n_ranks=2, layout=layout, **kw(*a))[0]
        )
    algorithms["ulysses"] = lambda q, k, v, *a: ulysses_attention_forward(
        q, k, v, n_ranks=3, **kw(*a)
    )[0]
    return algorithms


@pytest.mark.parametrize("N, M", [(64, 64), (48, 64)])
@pytest.mark.parametrize(
    "causal, align", [(False, "top_left"), (True, "top_left"), (True, "bottom_right")]
)
@pytest.mark.parametrize("masked", [False, True])
def test_every_exact_algorithm_gives_the_same_output(N, M, causal, align, masked):
    rng = np.random.default_rng(0)
    B, H, d = 2, 3, 16
    q = rng.standard_normal((B, H, N, d))
    k = rng.standard_normal((B, H, M, d))
    v = rng.standard_normal((B, H, M, d))
    mask = rng.random((B, 1, N, M)) > 0.3 if masked else None
    expected = an.attention_forward(q, k, v, mask, causal=causal, align=align)[0]
    for name, algorithm in exact_algorithms().items():
        out = algorithm(q, k, v, mask, causal, align)
        if out is None:
            continue
        np.testing.assert_allclose(out, expected, atol=1e-10, err_msg=name)

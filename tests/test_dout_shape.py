"""Every backward refuses an upstream gradient of the wrong shape.

NumPy would broadcast a dout of shape (..., N, 1), or one with an extra leading axis,
against the cached arrays and return plausible, wrong gradients. Each gradcheck case
of the package (``python -m attention_np gradcheck``, so future layers join by
themselves) is run forward, then backward with such a dout: the library itself must
raise a ValueError that names the gradient, even through the case's wrapper.
"""

import importlib

import numpy as np
import pytest

from attention_np.__main__ import all_cases
from attention_np.gradcheck import as_check

# split/merge heads checks merge_heads, which is split_heads' adjoint, not a backward
CASES = {n: c for n, c in all_cases().items() if n != "split/merge heads"}
GRAD_NAME = r"^d\w*\(.*\) must have"  # e.g. "dout(2, 4, 1) must have the shape ..."

# Public backwards whose check no gradcheck case reaches (the model's case starts at
# the loss, which refuses the bad dout first): test_bad_inputs.py checks them.
# (The MPI backwards are reached: their cases run on a one-rank communicator.)
NOT_IN_CASES = {
    "attention_np.transformer.model.model_backward",
    "attention_np.parallel.ring_sim.ring_backward_trace",
}
PACKAGES = ("", ".memory", ".transformer", ".efficient", ".parallel")
MODULES = (".decoding", ".additive", ".positional")  # public, not re-exported


def wrong_shapes(shape):
    """Broadcastable but wrong: an extra leading axis, and a last axis of size 1."""
    candidates = [(1, *shape), (*shape[:-1], 1) if shape else (1,)]
    return [s for s in dict.fromkeys(candidates) if s != tuple(shape)]


def raise_with_wrong_dout(case, shape):
    """Run the case forward, then backward with a dout of ``shape``: the error."""
    rng = np.random.default_rng(0)
    forward, backward, inputs = as_check(case(rng))
    _, cache = forward(inputs)
    with pytest.raises(ValueError, match=GRAD_NAME) as info:
        backward(rng.standard_normal(shape), cache)
    return info


def case_shape(case):
    forward, _, inputs = as_check(case(np.random.default_rng(0)))
    return np.shape(forward(inputs)[0])


def qualified_names(tb):
    """module.function of every frame of a traceback."""
    names = []
    while tb is not None:
        frame = tb.tb_frame
        names.append(f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")
        tb = tb.tb_next
    return names


def public_backwards():
    """module.name of every public backward function of the package."""
    found = set()
    for suffix in PACKAGES:
        package = importlib.import_module("attention_np" + suffix)
        for name in package.__all__:
            if "backward" in name:
                fn = getattr(package, name)
                found.add(f"{fn.__module__}.{name}")
    for suffix in MODULES:
        module = importlib.import_module("attention_np" + suffix)
        for name, fn in vars(module).items():
            public = "backward" in name and not name.startswith("_")
            if public and getattr(fn, "__module__", None) == module.__name__:
                found.add(f"{module.__name__}.{name}")
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_backward_rejects_a_broadcastable_dout_of_the_wrong_shape(name):
    shape = case_shape(CASES[name])
    for wrong in wrong_shapes(shape):
        assert np.broadcast_shapes(wrong, shape)  # NumPy alone would not complain
        info = raise_with_wrong_dout(CASES[name], wrong)
        raised_in = info.traceback[-1].frame.f_globals["__name__"]
        assert raised_in.startswith("attention_np."), raised_in  # not inside NumPy


def test_every_public_backward_is_reached_by_the_wrong_dout_test():
    seen = set()
    for case in CASES.values():
        info = raise_with_wrong_dout(case, wrong_shapes(case_shape(case))[0])
        seen.update(qualified_names(info.value.__traceback__))
    missing = public_backwards() - NOT_IN_CASES - seen
    assert not missing, f"no gradcheck case reaches {sorted(missing)}"


def test_the_list_of_public_backwards_is_complete():
    names = public_backwards()
    assert NOT_IN_CASES <= names
    assert {
        "attention_np.memory.delta_rule.delta_rule_backward",
        "attention_np.transformer.model.model_backward",
        "attention_np.decoding.gqa_attention_backward",
        "attention_np.additive.luong_attention_backward",
        "attention_np.positional.rope_backward",
        "attention_np.efficient.performer.favor_backward",
    } <= names


@pytest.mark.parametrize("name", list(CASES))
def test_backward_rejects_a_dout_that_is_not_a_real_numpy_array(name):
    # a list of the right shape, or an array of strings: a TypeError naming the
    # gradient, not an AttributeError or a ufunc error from deep inside a backward
    rng = np.random.default_rng(0)
    forward, backward, inputs = as_check(CASES[name](rng))
    out, cache = forward(inputs)
    if isinstance(cache, tuple) and isinstance(cache[0], tuple):
        pytest.skip("several outputs: the case's wrapper splits a flat dout itself")
    dout = rng.standard_normal(np.shape(out))
    bads = [dout.astype(str)] + ([dout.tolist()] if dout.ndim else [])  # 0-d: a float
    for bad in bads:
        with pytest.raises(TypeError, match=r"^d\w* must be a"):
            backward(bad, cache)

"""Finite-difference gradient checking.

A hand-written backward is trusted only after it agrees with central differences of
the forward. The check contracts the output with a random upstream gradient ``dout``
(never all ones: the true gradient of softmax's input for dout = 1 is exactly 0, so
a ones-check passes any wrong backward that also gives 0 there) and
differentiates the scalar ``sum(f(x) * dout)``:

    d/dx_i sum(f(x) * dout) ~ (sum(f(x + h e_i) * dout) - sum(f(x - h e_i) * dout)) / 2h

The truncation error is O(h^2) and the rounding error O(eps / h); in float64 with
h = 1e-6 both are far below the default tolerance (atol 1e-7, rtol 1e-6), in
float32 they are not (see notebook 07), so the checker accepts float64 only.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import validate as V

DEFAULT_H = 1e-6
DEFAULT_ATOL = 1e-7
DEFAULT_RTOL = 1e-6


def _require_float64(name, x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(
            f"{name} has dtype {x.dtype}; finite differences need float64 "
            f"(rounding error ~eps/h swamps the check otherwise): "
            f"use {name}.astype(np.float64)"
        )


def _check_step(h):
    if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)):
        raise TypeError(f"h must be a positive float, got {h!r}")
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive, finite step, got {h}")


def _check_out_shape(f, work, dout):
    """f(inputs) must have dout's shape: NumPy would broadcast a mismatch silently."""
    shape = np.shape(f(work))
    if shape != dout.shape:
        raise ValueError(
            f"f returned an array of shape {shape} but dout has shape {dout.shape}; "
            "they must match"
        )


def numerical_grad(f, x, dout, h=DEFAULT_H):
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to x.

    Args:
        f: function of one array returning an array shaped like dout.
        x: float64 array; perturbed on a private copy, so the caller's x is unchanged.
        dout: upstream gradient, same shape as f(x).
        h: step.

    Returns:
        array shaped like x.
    """
    _require_float64("x", x)
    return numerical_grads(lambda d: f(d["x"]), {"x": x}, dout, h=h)["x"]


def numerical_grads(f, inputs, dout, h=DEFAULT_H):
    """Central-difference gradients of ``sum(f(inputs) * dout)`` for a dict of arrays.

    Args:
        f: function of a dict {name: array} returning an array shaped like dout.
        inputs: dict of float64 arrays (copied; the caller's arrays are unchanged).
        dout: upstream gradient.
        h: step.

    Returns:
        dict {name: gradient} with the shapes of ``inputs``.
    """
    if not isinstance(inputs, dict):
        raise TypeError(
            f"inputs must be a dict {{name: float64 array}}, "
            f"got {type(inputs).__name__}"
        )
    _check_step(h)
    work = {}
    for name, x in inputs.items():
        _require_float64(name, x)
        work[name] = x.copy()
    dout = np.asarray(dout, dtype=np.float64)
    _check_out_shape(f, work, dout)
    grads = {}
    for name, x in work.items():
        grad = np.zeros_like(x)
        flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writing flat writes x
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            plus = np.sum(np.asarray(f(work)) * dout)
            flat[i] = old - h
            minus = np.sum(np.asarray(f(work)) * dout)
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * h)
        grads[name] = grad
    return grads


def rel_error(a, b, eps=1e-30):
    """Normwise relative error ||a - b|| / (||a|| + ||b||); 0 when both are zero.

    Normwise rather than elementwise: an elementwise ratio explodes where the true
    gradient is exactly 0 (e.g. the key bias in attention) and rounding noise is not.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: a{a.shape} and b{b.shape} must have one shape")
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if den < eps else float(np.linalg.norm(a - b) / den)


def compare(analytic, numeric, *, atol=DEFAULT_ATOL, rtol=DEFAULT_RTOL):
    """Rows (name, shape, max |diff|, rel error, ok) comparing two gradient dicts."""
    for name, grads in (("analytic", analytic), ("numeric", numeric)):
        if not isinstance(grads, dict):
            raise TypeError(
                f"{name} gradients must be a dict {{name: array}}, "
                f"got {type(grads).__name__}"
            )
    missing = sorted(set(numeric) ^ set(analytic))
    if missing:
        raise ValueError(
            f"analytic and numeric gradients have different keys: {missing}"
        )
    rows = []
    for name in numeric:
        a, n = np.asarray(analytic[name]), np.asarray(numeric[name])
        if a.shape != n.shape:
            rows.append((name, a.shape, np.inf, 1.0, False))
            continue
        diff = float(np.max(np.abs(a - n), initial=0.0))
        ok = bool(np.all(np.isfinite(a))) and diff <= atol + rtol * np.max(
            np.abs(n), initial=0.0
        )
        rows.append((name, n.shape, diff, rel_error(a, n), ok))
    return rows


def grad_report(
    analytic, numeric, *, title=None, atol=DEFAULT_ATOL, rtol=DEFAULT_RTOL, file=None
):
    """Print one aligned line per tensor (max |diff|, relative error, ok/FAIL).

    A tensor passes when max |analytic - numeric| <= atol + rtol * max |numeric|.

    Returns:
        True when every tensor passes.
    """
    rows = compare(analytic, numeric, atol=atol, rtol=rtol)
    if title:
        print(title, file=file)
    width = max((len(r[0]) for r in rows), default=4)
    for name, shape, diff, rel, ok in rows:
        shape_s = "x".join(map(str, shape)) or "scalar"
        print(
            f"  {name:<{width}}  {shape_s:>12}  max|diff| {diff:9.2e}  rel {rel:9.2e}  "
            f"{'ok' if ok else 'FAIL'}",
            file=file,
        )
    return all(r[-1] for r in rows)


def check_layer(
    forward,
    backward,
    inputs,
    *,
    rng,
    h=DEFAULT_H,
    title=None,
    atol=DEFAULT_ATOL,
    rtol=DEFAULT_RTOL,
    file=None,
):
    """Finite-difference check of a forward/backward pair, printed as a report.

    Args:
        forward: function of a dict of arrays returning (out, cache).
        backward: function (dout, cache) -> dict of gradients keyed like ``inputs``.
        inputs: dict of float64 arrays to differentiate.
        rng: np.random.Generator for the random upstream gradient.

    Returns:
        True when every gradient agrees.
    """
    V.rng_arg(rng)
    out, cache = forward(inputs)
    dout = rng.standard_normal(np.shape(out))  # random, never ones
    analytic = backward(dout, cache)
    numeric = numerical_grads(lambda d: forward(d)[0], inputs, dout, h=h)
    return grad_report(analytic, numeric, title=title, atol=atol, rtol=rtol, file=file)


class LayerCase(NamedTuple):
    """A layer called exactly by the package's contract (CONTRIBUTING.md, section 1).

    ``out, cache = forward(*arrays.values(), [params], **options)`` and
    ``grads = backward(dout, cache)``, where ``grads`` holds the gradients of the
    differentiable (float) arrays in order, then a dict keyed exactly like
    ``params`` when there are params (one array and no params: the bare array).
    Integer arrays (token ids) are passed but get no gradient.
    """

    forward: Callable
    backward: Callable
    arrays: dict  # positional arrays, in the forward's order
    params: dict | None = None
    options: dict = {}  # keyword arguments (mask, causal, ...), not differentiated


class ContractError(AssertionError):
    """A backward returned something other than the contract's gradients."""


def _differentiable(arrays):
    return [n for n, a in arrays.items() if a is not None and a.dtype.kind == "f"]


def _slots(arrays):
    """Names with a gradient slot: float arrays, and optional arrays left out (None)."""
    return [n for n, a in arrays.items() if a is None or a.dtype.kind == "f"]


def contract_grads(case, grads):
    """{name: gradient} from a backward's return value, or raise ContractError.

    An optional array that was left out (None in ``case.arrays``) gets None, or the
    gradient with respect to the default it stood for (a recurrence's zero state).
    """
    names = _slots(case.arrays)
    parts = list(grads) if isinstance(grads, tuple) else [grads]
    if case.params is not None:
        if not parts or not isinstance(parts[-1], dict):
            raise ContractError("a layer with params must return a grads dict last")
        dparams = parts.pop()
        if set(dparams) != set(case.params):
            raise ContractError(
                f"grads keys {sorted(dparams)} != params keys {sorted(case.params)}"
            )
    else:
        dparams = {}
    if len(names) == 1 and case.params is None and not isinstance(grads, tuple):
        parts = [grads]
    if len(parts) != len(names):
        raise ContractError(
            f"backward returned {len(parts)} input gradients for the "
            f"{len(names)} differentiable arrays {names}"
        )
    grad_dict = {}
    for name, g in zip(names, parts, strict=True):
        a = case.arrays[name]
        if a is None:  # left out: None, or (a recurrence's initial state) the
            continue  # gradient with respect to the default it stood for
        if g is None or np.shape(g) != np.shape(a):
            raise ContractError(
                f"d{name} has shape {np.shape(g)}, expected {np.shape(a)}"
            )
        grad_dict[name] = g
    return {**grad_dict, **dparams}


def _flat(out):
    """One float array from ``out`` (an array or a tuple of arrays)."""
    if isinstance(out, tuple):
        return np.concatenate([np.ravel(o) for o in out])
    return out


def _unflat(out, flat):
    """Inverse of _flat for an output shaped like ``out``.

    A ``flat`` with extra leading axes is split along its last axis, so that a
    wrongly shaped upstream gradient reaches the layer's own check.
    """
    if not isinstance(out, tuple):
        return flat
    flat, total = np.asarray(flat), sum(np.size(o) for o in out)
    if flat.ndim == 0 or flat.shape[-1] != total:
        raise ValueError(
            f"dout{flat.shape} must have the shape of the forward's output "
            f"({total},): the {type(out).__name__} flattened"
        )
    parts, start = [], 0
    for o in out:
        part = flat[..., start : start + np.size(o)]
        parts.append(part.reshape(flat.shape[:-1] + np.shape(o)))
        start += np.size(o)
    return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)


def case_functions(case):
    """(forward(dict) -> (out, cache), backward -> dict, inputs) for check_layer."""
    names = _differentiable(case.arrays)
    params = case.params or {}

    def forward(inputs):
        arrays = [inputs.get(n, a) for n, a in case.arrays.items()]
        extra = [{k: inputs[k] for k in params}] if case.params is not None else []
        out, cache = case.forward(*arrays, *extra, **case.options)
        return _flat(out), (out, cache)

    def backward(dout, state):
        out, cache = state
        return contract_grads(case, case.backward(_unflat(out, dout), cache))

    inputs = {**{n: case.arrays[n] for n in names}, **params}
    return forward, backward, inputs


def as_check(case_result):
    """(forward, backward, inputs) for check_layer from a LayerCase or such a triple."""
    if isinstance(case_result, LayerCase):
        return case_functions(case_result)
    return case_result

"""Compare a student's result with the expected one; describe the first difference.

``plain(value)`` turns what the student's function returned into plain data
(arrays, tuples, lists, dicts, sets, str, numbers, or an ``Opaque`` for what cannot
be read); the checker calls it inside the time limit and the answer-key watch, so
that no code of the student (``__array__``, ``__iter__``, ``__eq__``, ``__repr__``
of a returned object) runs while the result is judged.

Results are flattened to ``{name: value}`` ("dq", "grads['W_q']", ...) so a
function returning one array, a tuple or a dict of gradients is compared the same
way. ``compare_one`` returns None when a value is right, else a ``Difference``
whose ``kind`` (shape, nonfinite, value, ...) the hint rules can test. Nothing here
trusts the student's value: an object whose conversion to an array raises is a
difference of kind "unreadable", not a crash.
"""

from typing import Any, NamedTuple

import numpy as np


class Expect(NamedTuple):
    """An expected value given by a rule instead of a number: ``test(got) -> bool``."""

    test: Any
    description: str  # shown as "expected <description>"


class Difference(NamedTuple):
    """Where a student's output differs from the expected one."""

    kind: str  # count, key, type, unreadable, dtype, shape, nonfinite, value
    name: str  # which output, e.g. "dk"
    message: str  # the verdict text, e.g. "dk has shape (2, 3), expected (2, 5)"
    index: tuple | None = None  # element of the worst difference, when there is one


class Opaque(NamedTuple):
    """A returned object that is not plain data: its type name, a short repr, and
    the error that stopped its conversion to an array (if any)."""

    type_name: str
    text: str
    error: str = ""

    def __repr__(self):
        return self.text


_SCALARS = (bool, int, float, complex, str, type(None))


def plain(value, depth=0):
    """``value`` as plain data (see the module docstring). Student code may run
    here (so call it under the guard); only a BaseException gets out."""
    if type(value) in _SCALARS or (
        isinstance(value, np.generic) and type(value).__module__ == "numpy"
    ):
        return value
    if isinstance(value, str):  # a subclass may redefine ==
        return str.__str__(value)
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        return np.array(value)  # a plain copy: no subclass, no view
    if depth < 5 and isinstance(value, (tuple, list, dict, set, frozenset)):
        try:
            if isinstance(value, dict):
                return {
                    plain(k, depth + 1): plain(v, depth + 1)
                    for k, v in list(dict.items(value))
                }
            items = [plain(v, depth + 1) for v in list(value)]
            if isinstance(value, (set, frozenset)):
                return set(items)
            return tuple(items) if isinstance(value, tuple) else items
        except Exception as exc:
            return _opaque(value, exc)
    try:
        arr = np.asarray(value)
    except Exception as exc:
        return _opaque(value, exc)
    if arr.dtype.kind == "O":
        return _opaque(value)
    return np.array(arr)


def _opaque(value, exc=None):
    error = f"{type(exc).__name__}: {short(exc, 80, as_text=str)}" if exc else ""
    return Opaque(type(value).__name__, short(value), error)


def type_name(value):
    return value.type_name if isinstance(value, Opaque) else type(value).__name__


class CountError(ValueError):
    """The student's function returned the wrong number of values."""


def flatten(value, outputs):
    """{name: value} for a result with the given output names.

    One name: ``value`` is the output itself. Several: a tuple of that length. A dict
    output (e.g. ``grads``) becomes one entry per key: ``grads['W_q']``.
    """
    values = (value,) if len(outputs) == 1 else value
    if not isinstance(values, (tuple, list)) or len(values) != len(outputs):
        n = len(values) if isinstance(values, (tuple, list)) else 1
        raise CountError(
            f"returned {n} value(s), expected {len(outputs)}: " + ", ".join(outputs)
        )
    flat = {}
    for name, item in zip(outputs, values, strict=True):
        if isinstance(item, dict):
            flat.update({f"{name}[{key!r}]": v for key, v in item.items()})
        else:
            flat[name] = item
    return flat


def fmt(x):
    """Short text for one number: 0.3821, 1.2e-09, NaN, inf, True."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    x = float(x)
    if np.isnan(x):
        return "NaN"
    return f"{x:.4g}"


def where(name, index):
    """``dk[0, 2, 1]`` (or just ``dk`` for a scalar)."""
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def _array_difference(name, got, exp, atol, rtol):
    if got.shape != exp.shape:
        msg = f"{name} has shape {got.shape}, expected {exp.shape}"
        return Difference("shape", name, msg)
    if exp.dtype == bool:
        if got.dtype != bool:
            msg = f"{name} has dtype {got.dtype}, expected a boolean array"
            return Difference("dtype", name, msg)
        bad = got != exp
    else:
        bad = ~np.isclose(got, exp, atol=atol, rtol=rtol)
        nonfinite = bad & ~np.isfinite(got)
        if nonfinite.any():
            index = tuple(int(i) for i in np.argwhere(nonfinite)[0])
            msg = (
                f"{where(name, index)} is {fmt(got[index])}, expected {fmt(exp[index])}"
            )
            return Difference("nonfinite", name, msg, index)
    if not bad.any():
        return None
    with np.errstate(invalid="ignore"):  # -inf - (-inf) where both sides are -inf
        err = np.where(bad, np.abs(got.astype(float) - exp.astype(float)), -1.0)
    index = np.unravel_index(int(np.argmax(err)), exp.shape)
    index = tuple(int(i) for i in index)
    msg = f"{where(name, index)} = {fmt(got[index])}, expected {fmt(exp[index])}"
    if exp.dtype != bool:
        msg += f" (max |diff| {fmt(err.max())})"
    return Difference("value", name, msg, index)


def short(value, limit=60, *, as_text=repr):
    """repr (or str) of a student's value, cut short; never raises."""
    try:
        text = as_text(value)
    except Exception:  # a broken __repr__ or __str__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_one(name, got, exp, *, atol, rtol):
    """None when ``got`` matches ``exp``, else the Difference to report."""
    if isinstance(exp, Expect):
        if _safe_test(exp.test, got):
            return None
        return Difference(
            "value", name, f"{name} = {short(got)}, expected {exp.description}"
        )
    if isinstance(exp, bool):
        if not isinstance(got, (bool, np.bool_)):
            msg = f"{name} is a {type_name(got)} ({short(got)}), expected a bool"
            return Difference("type", name, msg)
        if bool(got) is exp:
            return None
        return Difference("value", name, f"{name} = {bool(got)}, expected {exp}")
    if isinstance(exp, (str, set, frozenset)):
        if _safe_test(lambda g: _same_collection(g, exp), got):
            return None
        return Difference("value", name, f"{name} = {short(got)}, expected {exp!r}")
    exp = np.asarray(exp)
    if isinstance(got, Opaque) and got.error:
        msg = f"{name} could not be read as an array ({got.error})"
        return Difference("unreadable", name, msg)
    if isinstance(got, Opaque):
        msg = f"{name} is a {got.type_name} ({got.text}), expected an array of "
        return Difference("type", name, msg + f"numbers of shape {exp.shape}")
    if got is None or isinstance(got, (str, bytes, dict, set)):
        kind = type(got).__name__
        msg = f"{name} is a {kind}, expected an array of shape {exp.shape}"
        return Difference("type", name, msg)
    try:
        arr = np.asarray(got)
    except Exception as exc:  # the student's object cannot become an array
        msg = (
            f"{name} could not be read as an array "
            f"({type(exc).__name__}: {short(exc, 80, as_text=str)})"
        )
        return Difference("unreadable", name, msg)
    if arr.dtype.kind not in "biuf":
        msg = f"{name} is a {type(got).__name__} of {arr.dtype} values, expected an "
        msg += f"array of numbers of shape {exp.shape}"
        return Difference("type", name, msg)
    return _array_difference(name, arr, exp, atol, rtol)


def _same_collection(got, exp):
    if isinstance(exp, (set, frozenset)):
        return isinstance(got, (set, frozenset, list, tuple)) and set(got) == exp
    return isinstance(got, str) and got == exp


def _safe_test(test, got):
    try:
        return bool(test(got))
    except Exception:  # a malformed answer simply does not pass
        return False


def close(got, alt, *, atol=1e-8, rtol=1e-6):
    """True when two results (arrays or plain values) agree, NaNs included."""
    if alt is None or got is None:
        return False
    try:
        got, alt = np.asarray(got), np.asarray(alt)
        if got.shape != alt.shape or got.dtype.kind not in "biuf":
            return False
        return bool(np.allclose(got, alt, atol=atol, rtol=rtol, equal_nan=True))
    except Exception:  # anything the student returned that is not an array
        return False


def snapshot(args):
    """Copies of the array (and dict-of-array) arguments, to detect in-place edits."""
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(a.copy())
        elif isinstance(a, dict):
            out.append(
                {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in a.items()}
            )
        else:
            out.append(a)
    return tuple(out)


def changed_argument(before, after, names):
    """Name of the first array argument the student's function modified, or None."""
    for name, a, b in zip(names, before, after, strict=False):
        pairs = a.items() if isinstance(a, dict) else [("", a)]
        for key, x in pairs:
            if not isinstance(x, np.ndarray):
                continue
            try:
                y = b[key] if key else b
                same = np.array_equal(x, y, equal_nan=True)
            except Exception:  # the student replaced an entry by something odd
                same = False
            if not same:
                return f"{name}[{key!r}]" if key else name
    return None

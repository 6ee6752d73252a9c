"""Input checks shared by the memory sub-package (on top of ``attention_np._validate``).

Every check raises TypeError or ValueError naming the argument and what it got.
"""

import numpy as np

from .. import _validate as V


def check_params(params, shapes, *, name="params"):
    """Check a flat params dict against {key: expected shape}; return float arrays."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict, got {type(params).__name__}")
    if set(params) != set(shapes):
        raise ValueError(
            f"{name} must have keys {sorted(shapes)}, got {sorted(params)}"
        )
    out = {}
    for key, shape in shapes.items():
        arr = V.float_array(f"{name}['{key}']", params[key])
        if arr.shape != tuple(shape):
            raise ValueError(
                f"{name}['{key}'] must have shape {tuple(shape)}, got {arr.shape}"
            )
        out[key] = arr
    return out


def real(name, value, *, lo=-np.inf, hi=np.inf, lo_open=False):
    """Return ``value`` as a float in [lo, hi] (or (lo, hi] with lo_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    low_ok = value > lo if lo_open else value >= lo
    if not (np.isfinite(value) and low_ok and value <= hi):
        bound = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{name} must lie in {bound}, got {value}")
    return value


def choice(name, value, options):
    """Return ``value`` if it is one of ``options``, else raise ValueError."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def same_shape(**arrays):
    """Raise ValueError unless every given array has the same shape."""
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n}{s}" for n, s in shapes.items())
        raise ValueError(f"arrays must share one shape, got {listed}")

"""Input checks shared by the public entry points.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError``
(wrong shape or value) with a message that names the argument and what it got, so a
mistake never surfaces as a broadcasting error deep inside NumPy. Backward functions
trust their cache and do not call these.
"""

import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def float_array(name, x, *, ndim=None, min_ndim=None):
    """Return ``x`` as a floating ndarray (no copy) or raise a clear error."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, (list, tuple, int, float)):
        try:
            arr = np.asarray(x)
        except ValueError:  # ragged nested lists
            raise ValueError(f"{name} is a ragged nested list, not an array") from None
        if arr.dtype.kind in "iub":  # Python ints/bools from a list: promote
            arr = arr.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if arr.dtype.type not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float16/float32/float64 array, got dtype {arr.dtype} "
            f"(convert it with {name}.astype(np.float64))"
        )
    if ndim is not None and arr.ndim != ndim:
        dims = "dimension" if ndim == 1 else "dimensions"
        raise ValueError(f"{name} must have {ndim} {dims}, got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        dims = "dimension" if min_ndim == 1 else "dimensions"
        raise ValueError(
            f"{name} must have at least {min_ndim} {dims}, got shape {arr.shape}"
        )
    return arr


def same_dtype(**arrays):
    """Raise TypeError unless every given array has the same dtype."""
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise TypeError(f"arrays must share one float dtype, got {listed}")


def bool_mask(name, mask, target_shape):
    """Check that ``mask`` is boolean and broadcasts to ``target_shape``."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(
            f"{name} must be a boolean NumPy array, got {type(mask).__name__}"
        )
    if mask.dtype != np.bool_:
        hint = (
            " (it contains NaN)"
            if mask.dtype.kind == "f" and np.isnan(mask).any()
            else ""
        )
        raise TypeError(
            f"{name} must be a boolean array (True = may attend), got dtype "
            f"{mask.dtype}{hint}; build it with causal_mask/padding_mask "
            "or a comparison"
        )
    try:
        shape = np.broadcast_shapes(mask.shape, target_shape)
    except ValueError:
        shape = None
    if shape != tuple(target_shape):
        raise ValueError(
            f"{name}{mask.shape} does not broadcast to the scores' shape "
            f"{tuple(target_shape)}"
            " (..., N, M)"
        )
    return mask


def positive_int(name, value, *, allow_zero=False):
    """Return ``value`` as an int, or raise if it is not a (positive) integer."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def bool_arg(name, value):
    """Return ``value`` as a bool, or raise TypeError unless it is True or False.

    Python would treat any truthy value as True: ``causal="no"`` would mean causal.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def rng_arg(rng):
    """Return ``rng`` if it is a np.random.Generator, else raise TypeError."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a np.random.Generator, got {type(rng).__name__}: "
            "pass np.random.default_rng(seed)"
        )
    return rng


def dropout_args(dropout_p, rng):
    """Check the dropout probability and that an explicit Generator comes with it."""
    if isinstance(dropout_p, (bool, np.bool_)) or not isinstance(
        dropout_p, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"dropout_p must be a float in [0, 1), got {dropout_p!r}")
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0 and not isinstance(rng, np.random.Generator):
        raise TypeError(
            "dropout_p > 0 needs an explicit rng=np.random.default_rng(seed), "
            f"got rng={rng!r}"
        )
    return float(dropout_p)


def scale_arg(scale, d):
    """Return the score scale: 1/sqrt(d) by default."""
    if scale is None:
        # a Python float keeps float16/32 inputs in their dtype
        return 1.0 / float(np.sqrt(d))
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
        scale, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"scale must be a number or None, got {scale!r}")
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def grad_shape(name, grad, shape):
    """Raise unless an upstream gradient has the forward output's shape.

    NumPy would otherwise broadcast a wrongly shaped ``dout`` and return plausible,
    wrong gradients.
    """
    if np.shape(grad) != tuple(shape):
        raise ValueError(
            f"{name}{np.shape(grad)} must have the shape of the forward's output "
            f"{tuple(shape)}"
        )

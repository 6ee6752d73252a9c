"""Input checks shared by every public entry point of the package (one place).

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError``
(wrong shape or value) with a message that names the argument and what it got, so a
mistake never surfaces as a broadcasting error deep inside NumPy. Backward functions
trust their cache and do not call these.
"""

import argparse
import math
import os

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
    wrong gradients. It must be a real-valued NumPy array (a plain number for a
    scalar output such as a loss), not a list or other array-like.
    """
    number = isinstance(grad, (int, float, np.integer, np.floating)) and not isinstance(
        grad, (bool, np.bool_)
    )
    if not isinstance(grad, np.ndarray) and not (number and tuple(shape) == ()):
        raise TypeError(
            f"{name} must be a NumPy array of shape {tuple(shape)}, got "
            f"{type(grad).__name__}"
        )
    if isinstance(grad, np.ndarray) and grad.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued array, got dtype {grad.dtype}")
    if np.shape(grad) != tuple(shape):
        raise ValueError(
            f"{name}{np.shape(grad)} must have the shape of the forward's output "
            f"{tuple(shape)}"
        )


def real(name, value, *, lo=-np.inf, hi=np.inf, lo_open=False, hi_open=False):
    """Return ``value`` as a finite float in [lo, hi] (open ends on request)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    low_ok = value > lo if lo_open else value >= lo
    high_ok = value < hi if hi_open else value <= hi
    if not (np.isfinite(value) and low_ok and high_ok):
        bound = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be finite and lie in {bound}, got {value}")
    return value


def choice(name, value, options):
    """Return ``value`` if it is one of ``options``, else raise ValueError."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def same_shape(**arrays):
    """Raise ValueError unless every given array has the same shape."""
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n}{s}" for n, s in shapes.items())
        raise ValueError(f"arrays must share one shape, got {listed}")


def check_keys(params, expected, name="params"):
    """Raise unless ``params`` is a dict with exactly the ``expected`` keys."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict, got {type(params).__name__}")
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"{name}: missing keys {missing}, unexpected keys {extra}")


def grads_like(grads, params):
    """{key: float array} of ``grads``, one for every key of ``params`` with its
    param's dtype (a float32 gradient for a float64 param is a TypeError: an in-place
    step would silently cast it) and exactly its shape (no broadcasting)."""
    check_keys(grads, params, "grads")
    checked = {}
    for k, p in params.items():
        g = float_array(f"grads['{k}']", grads[k])
        if g.dtype != p.dtype:
            raise TypeError(
                f"grads['{k}'] has dtype {g.dtype} but params['{k}'] is {p.dtype}: "
                "use one float dtype for params and grads"
            )
        if g.shape != p.shape:
            raise ValueError(
                f"grads['{k}']{g.shape} must have the shape of params['{k}']{p.shape}"
            )
        checked[k] = g
    return checked


def check_params(params, shapes, *, name="params", dtype=None):
    """Check a flat params dict against {key: expected shape}; return float arrays.

    With ``dtype``, every array must also have that dtype (inputs and params share
    one float dtype).
    """
    check_keys(params, shapes, name)
    out = {}
    for key, shape in shapes.items():
        arr = float_array(f"{name}['{key}']", params[key])
        if arr.shape != tuple(shape):
            raise ValueError(
                f"{name}['{key}'] must have shape {tuple(shape)}, got {arr.shape}"
            )
        if dtype is not None and arr.dtype != dtype:
            raise TypeError(
                f"{name}['{key}'] has dtype {arr.dtype} but the inputs are "
                f"{np.dtype(dtype)}: use one float dtype for inputs and params"
            )
        out[key] = arr
    return out


def dtype_arg(dtype):
    """Return ``dtype`` as a float16/float32/float64 np.dtype, or raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy float dtype, got {dtype!r}") from None
    if dt.type not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float16/float32/float64, got {dt}")
    return dt


ALIGNS = ("top_left", "bottom_right")


def causal_arg(causal):
    """``causal`` must be True or False: every attention function asks for it."""
    return bool_arg("causal", causal)


def align_arg(align):
    """``align`` must be "top_left" or "bottom_right" (see masks.causal_mask)."""
    if not isinstance(align, str) or align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    return align


def causal_offset(causal, align, N, M):
    """Key j is visible to query i when j <= i + offset; None when not causal.

    offset = 0 for "top_left" (PyTorch ``is_causal``) and M - N for "bottom_right"
    (the last query sees every key: a KV-cache step). The one place where the two
    alignments are turned into arithmetic, for every module.
    """
    align = align_arg(align)
    if not causal_arg(causal):
        return None
    return 0 if align == "top_left" else M - N


def check_qkv(q, k, v, mask, scale, *, need_v=True):
    """Validated (q, k, v, scale) for attention over (..., N, d), (..., M, d), ...

    q, k, v must be float arrays of one dtype with at least 2 dimensions, q and k
    the same width d >= 1, k and v the same length M, leading dimensions that
    broadcast, and ``mask`` boolean and broadcastable to (..., N, M).
    """
    q = float_array("q", q, min_ndim=2)
    k = float_array("k", k, min_ndim=2)
    if v is not None or need_v:
        v = float_array("v", v, min_ndim=2)
    same_dtype(q=q, k=k, v=v)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q{q.shape} and k{k.shape} must share the last axis d")
    if q.shape[-1] == 0:
        raise ValueError(f"q{q.shape} and k{k.shape} need a head width d >= 1")
    if v is not None and k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k{k.shape} and v{v.shape} must share the length M (axis -2)")
    lead = [q.shape[:-2], k.shape[:-2]] + ([v.shape[:-2]] if v is not None else [])
    try:
        batch = np.broadcast_shapes(*lead)
    except ValueError:
        shapes = f"q{q.shape}, k{k.shape}" + (f", v{v.shape}" if v is not None else "")
        raise ValueError(
            f"leading (batch/head) dimensions of {shapes} do not broadcast"
        ) from None
    if mask is not None:
        bool_mask("mask", mask, batch + (q.shape[-2], k.shape[-2]))
    return q, k, v, scale_arg(scale, q.shape[-1])


MAX_DEFAULT_WORKERS = 8


def default_workers():
    """Threads for independent (batch, head) slices: the cores this process may use.

    Capped at MAX_DEFAULT_WORKERS: beyond that, memory bandwidth rather than cores
    limits the element-wise passes.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def workers_arg(workers):
    """None -> default_workers(); otherwise a positive int."""
    if workers is None:
        return default_workers()
    return positive_int("workers", workers)


def token_ids(name, ids, vocab, *, ndim=None):
    """Return ``ids`` as an int ndarray with entries in [0, vocab), or raise.

    Negative ids are refused: NumPy would silently index from the end of the table.
    """
    arr = np.asarray(ids) if isinstance(ids, (list, tuple)) else ids
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be an integer array, got {type(ids).__name__}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(
            f"{name} must lie in [0, {vocab}), got min {arr.min()} max {arr.max()}"
        )
    return arr


def finite(name, x):
    """Raise ValueError if the array ``x`` holds NaN or inf."""
    if not np.isfinite(x).all():  # the method: no np.all dispatch (1.4 vs 2.4 us)
        bad = "NaN" if np.isnan(x).any() else "inf"
        raise ValueError(f"{name} contains {bad} (every value must be finite)")


def instance(name, value, cls):
    """Return ``value`` if it is a ``cls``, else raise TypeError naming both."""
    if not isinstance(value, cls):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(
            f"{name} must be a {cls.__name__}, got {type(value).__name__} {shown}"
        )
    return value


def values_in_range(name, a, *, lo=-np.inf, hi=np.inf):
    """Raise ValueError unless every element of ``a`` is finite and in [lo, hi].

    For arrays of rates, strengths and probabilities (TTT's eta, an NTM head's gate),
    where an out-of-range value would silently give NaN or a diverging memory.
    """
    arr = np.asarray(a)
    ok = np.isfinite(arr) & (arr >= lo) & (arr <= hi)
    if not np.all(ok):
        bad = arr[~ok].ravel()[0]
        raise ValueError(
            f"{name} must be finite and lie in [{lo}, {hi}], got {bad} "
            f"(array of shape {arr.shape})"
        )
    return a


def int_array(name, x, *, ndim=None, lo=None, hi=None):
    """Return ``x`` as an integer ndarray with values in [lo, hi), or raise.

    Token ids and lengths: bools and floats are refused, and so are negative ids,
    which NumPy would silently index from the end.
    """
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        kind = type(x).__name__
        raise TypeError(f"{name} must be an integer NumPy array, got {kind}")
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        dims = "dimension" if ndim == 1 else "dimensions"
        raise ValueError(f"{name} must have {ndim} {dims}, got shape {x.shape}")
    low = -np.inf if lo is None else lo
    high = np.inf if hi is None else hi
    if x.size and (x.min() < low or x.max() >= high):
        bad = x.min() if x.min() < low else x.max()
        raise ValueError(f"{name} must lie in [{low}, {high}), got {bad}")
    return x


def integer(name, value):
    """Return ``value`` as an int of any sign, or raise TypeError (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


# --- command-line numbers: argparse types, so a bad value ends in "error: argument
# --steps: must be >= 1, got 0" (exit status 2) and never in a traceback ------------


def cli_int(low, high=None):
    """argparse type: an integer >= low (and <= high when given)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    # argparse names the type in some errors
    parse.__name__ = f"integer >= {low}" + ("" if high is None else f", <= {high}")
    return parse


def cli_float(low, *, strict=False):
    """argparse type: a finite number >= low (> low when strict)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number, got {text!r}"
            ) from None
        ok = value > low if strict else value >= low
        if not (math.isfinite(value) and ok):
            sign = ">" if strict else ">="
            raise argparse.ArgumentTypeError(
                f"must be finite and {sign} {low:g}, got {text}"
            )
        return value

    parse.__name__ = f"number {'>' if strict else '>='} {low:g}"
    return parse

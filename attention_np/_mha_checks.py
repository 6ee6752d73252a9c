"""Checks behind ``multihead.mha_forward`` and ``init_mha_params`` (private module).

Everything a call can get wrong is checked here before anything runs, so a failed
call leaves its arguments (and a KV cache) as they were. Shape legend as in
``multihead``: B batch, H query heads, G key/value heads, N query positions, M key
positions, D = d_model, D_kv width of x_kv, d = D / H.
"""

from . import validate as V
from .decoding import KVCache

WEIGHT_KEYS = ("W_q", "W_k", "W_v", "W_o")
BIAS_KEYS = ("b_q", "b_k", "b_v", "b_o")


def check_heads(d_model, n_heads, n_kv_heads, *, d_model_name="d_model"):
    """n_heads must divide d_model, n_kv_heads must divide n_heads.

    ``d_model_name`` says where d_model came from (``the width of x_q(2, 4, 5)``).
    """
    if d_model % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide {d_model_name}={d_model}")
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads}")


def mha_param_shapes(d_model, d_kv, n_heads, n_kv_heads, *, bias):
    """{key: shape} of multi-head attention params (biases only when ``bias``)."""
    D, G, H = d_model, n_kv_heads, n_heads
    width = G * (D // H)
    shapes = {"W_q": (D, D), "W_k": (d_kv, width), "W_v": (d_kv, width), "W_o": (D, D)}
    if bias:
        shapes.update({f"b_{n[2:]}": (s[1],) for n, s in shapes.items()})
    return shapes


# the weight whose first axis an input's width must match (x: self-attention)
INPUT_WEIGHTS = {"x": "W_q", "x_q": "W_q", "x_kv": "W_k"}


def check_input_widths(params, inputs):
    """Each input's width (last axis) must be the first axis of its weight.

    ``inputs``: {"x_q": shape, "x_kv": shape} or {"x": shape} (self-attention). A
    mismatch is the input's fault when the params are consistent, so the message
    names it. Params that are not a dict are left to ``check_mha_params``.
    """
    if not isinstance(params, dict):
        return
    for name, shape in inputs.items():
        key = INPUT_WEIGHTS[name]
        W = params.get(key)
        if getattr(W, "ndim", None) == 2 and W.shape[0] != shape[-1]:
            raise ValueError(
                f"{name}{tuple(shape)} has width {shape[-1]} but params['{key}']"
                f"{W.shape} takes inputs of width {W.shape[0]}: the last axis of "
                f"{name} must match the params"
            )


def check_mha_params(
    params, d_model, d_kv, n_heads, n_kv_heads=None, *, dtype=None, inputs=None
):
    """Raise a clear error unless ``params`` fits; return whether it has biases.

    A params dict carries all four biases or none. With ``dtype``, every array must
    also have that dtype. With ``inputs`` ({"x_q": shape, "x_kv": shape}, the shapes
    d_model and d_kv were read from), a width that does not fit the weights is
    reported as the input's fault (``check_input_widths``).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    G = n_heads if n_kv_heads is None else n_kv_heads
    name = "d_model"
    if inputs:
        check_input_widths(params, inputs)
        if "x_q" in inputs:
            name = f"the width of x_q{tuple(inputs['x_q'])}"
    check_heads(d_model, n_heads, G, d_model_name=name)
    has_bias = any(k in params for k in BIAS_KEYS)
    shapes = mha_param_shapes(d_model, d_kv, n_heads, G, bias=has_bias)
    V.check_params(params, shapes, dtype=dtype)
    return has_bias


def check_inputs(x_q, x_kv, n_heads, n_kv_heads, positions, kv_cache):
    """Validated (x_q, x_kv, H, G): 3-D float arrays of one dtype and batch size."""
    x_q = V.float_array("x_q", x_q, ndim=3)
    x_kv = V.float_array("x_kv", x_kv, ndim=3)
    H = V.positive_int("n_heads", n_heads)
    G = H if n_kv_heads is None else V.positive_int("n_kv_heads", n_kv_heads)
    if x_q.shape[0] != x_kv.shape[0]:
        raise ValueError(
            f"x_q{x_q.shape} and x_kv{x_kv.shape} must share the batch size B"
        )
    V.same_dtype(x_q=x_q, x_kv=x_kv)
    same_length = x_kv.shape[1] == x_q.shape[1]
    if (positions is not None or kv_cache is not None) and not same_length:
        raise ValueError(
            "positions and kv_cache are for self-attention: x_q"
            f"{x_q.shape} and x_kv{x_kv.shape} must have the same length"
        )
    return x_q, x_kv, H, G


def check_kv_cache(kv_cache, x_q, H, G, causal, align):
    """Check that this call's keys fit ``kv_cache``; return M (cached + new length).

    Everything is checked before the cache changes: a failed call leaves it as it
    was. The new queries are the last N positions, so causal needs bottom-right.
    """
    if not isinstance(kv_cache, KVCache):
        raise TypeError(f"kv_cache must be a KVCache, got {type(kv_cache).__name__}")
    B, N, D = x_q.shape
    d = D // H
    got = kv_cache.k.shape[:2] + kv_cache.k.shape[3:] + kv_cache.v.shape[3:]
    if got != (B, G, d, d):
        raise ValueError(f"kv_cache holds (B, G, d, d_v) = {got}, need {(B, G, d, d)}")
    if kv_cache.k.dtype != x_q.dtype:
        raise TypeError(
            f"kv_cache stores {kv_cache.k.dtype} but the inputs are {x_q.dtype}"
        )
    if kv_cache.length + N > kv_cache.capacity:
        raise ValueError(
            f"kv_cache full: {kv_cache.length} + {N} tokens > capacity "
            f"{kv_cache.capacity}"
        )
    if V.causal_arg(causal) and V.align_arg(align) == "top_left" and kv_cache.length:
        raise ValueError(
            "with a filled kv_cache the new queries are the last positions: "
            'causal attention needs align="bottom_right"'
        )
    return kv_cache.length + N


def check_call(
    x_q, x_kv, H, G, mask, causal, align, dropout_p, rng, positions, kv_cache
):
    """Check the options before anything runs (and before a KV cache changes)."""
    (B, N, D), M = x_q.shape, x_kv.shape[1]
    if positions is not None and (D // H) % 2:
        raise ValueError(
            f"positions (RoPE) rotate pairs of dims: the head width d = D / H = "
            f"{D} / {H} must be even"
        )
    if kv_cache is not None:
        M = check_kv_cache(kv_cache, x_q, H, G, causal, align)
    V.causal_offset(causal, align, N, M)
    V.dropout_args(dropout_p, rng)
    if mask is not None:
        V.bool_mask("mask", mask, (B, H, N, M))

"""Multi-head attention: project, split into heads, attend, merge, project.

    q = x_q W_q + b_q,  k = x_kv W_k + b_k,  v = x_kv W_v + b_v        (B, N|M, D)
    o_h = attention(q_h, k_h, v_h)  for each head h                    (B, H, N, d)
    out = merge(o) W_o + b_o                                           (B, N, D)

Shape legend: B batch, H heads, N query positions, M key positions, D = d_model,
d = D / H head width, D_kv width of the key/value source (cross-attention).
Self-attention passes the same array as x_q and x_kv; its input gradient is then
dx = dx_q + dx_kv (the input feeds three paths: Q, K and V).
"""

from typing import NamedTuple

import numpy as np

from . import validate as V
from .attention import attention_backward, attention_forward
from .linear import linear_backward, linear_forward

WEIGHT_KEYS = ("W_q", "W_k", "W_v", "W_o")
BIAS_KEYS = ("b_q", "b_k", "b_v", "b_o")


def split_heads(x, n_heads):
    """(B, N, D) -> (B, H, N, d): cut the feature axis into H heads of width d."""
    x = V.float_array("x", x, ndim=3)
    n_heads = V.positive_int("n_heads", n_heads)
    B, N, D = x.shape
    if D % n_heads:
        raise ValueError(
            f"n_heads={n_heads} must divide the feature width D={D} of x{x.shape}"
        )
    # reshape alone would give (B, N, H, d); the transpose puts heads before positions
    return x.reshape(B, N, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, N, d)


def merge_heads(x):
    """(B, H, N, d) -> (B, N, H * d): the inverse of split_heads."""
    x = V.float_array("x", x, ndim=4)
    B, H, N, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * d)  # (B, N, D)


def init_mha_params(d_model, n_heads, *, rng, d_kv=None, bias=True, dtype=np.float64):
    """Random multi-head attention parameters.

    W entries ~ N(0, 1 / D_in) so activations keep their scale; biases start at 0.

    Args:
        d_model: D, width of x_q and of the output; must be divisible by n_heads.
        n_heads: H.
        rng: np.random.Generator.
        d_kv: width of x_kv for cross-attention (default d_model).
        bias: include b_q, b_k, b_v, b_o.

    Returns:
        dict with W_q (D, D), W_k (D_kv, D), W_v (D_kv, D), W_o (D, D) [+ biases (D,)].
    """
    D = V.positive_int("d_model", d_model)
    H = V.positive_int("n_heads", n_heads)
    D_kv = D if d_kv is None else V.positive_int("d_kv", d_kv)
    if D % H:
        raise ValueError(f"n_heads={H} must divide d_model={D}")
    V.rng_arg(rng)
    if np.dtype(dtype).type not in V.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float16/float32/float64, got {np.dtype(dtype)}")
    fan_in = {"W_q": D, "W_k": D_kv, "W_v": D_kv, "W_o": D}
    params = {
        name: (rng.standard_normal((n_in, D)) / np.sqrt(n_in)).astype(dtype)
        for name, n_in in fan_in.items()
    }
    if V.bool_arg("bias", bias):
        params.update({name: np.zeros(D, dtype=dtype) for name in BIAS_KEYS})
    return params


def check_mha_params(params, d_model, d_kv, n_heads, *, dtype=None):
    """Raise a clear error unless ``params`` fits inputs of width d_model / d_kv.

    With ``dtype``, every array in ``params`` must also have that dtype.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    has_bias = any(k in params for k in BIAS_KEYS)
    need = WEIGHT_KEYS + (BIAS_KEYS if has_bias else ())
    missing = [k for k in need if k not in params]
    extra = sorted(set(params) - set(need))
    if missing or extra:
        raise ValueError(f"params: missing keys {missing}, unexpected keys {extra}")
    D = d_model
    expected = {"W_q": (D, D), "W_k": (d_kv, D), "W_v": (d_kv, D), "W_o": (D, D)}
    expected.update({k: (D,) for k in BIAS_KEYS if has_bias})
    for name, shape in expected.items():
        arr = V.float_array(f"params['{name}']", params[name])
        if arr.shape != shape:
            raise ValueError(
                f"params['{name}'] has shape {arr.shape}, expected {shape} "
                f"for d_model={D}, d_kv={d_kv}"
            )
        if dtype is not None and arr.dtype != dtype:
            raise TypeError(
                f"params['{name}'] has dtype {arr.dtype} but the inputs are {dtype}: "
                "use one float dtype for inputs and params"
            )
    if D % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide d_model={D}")
    return has_bias


class MHACache(NamedTuple):
    """What ``mha_backward`` needs; ``.weights`` gives the per-head P (B, H, N, M)."""

    q_cache: tuple
    k_cache: tuple
    v_cache: tuple
    attn_cache: tuple
    o_cache: tuple
    n_heads: int
    has_bias: bool

    @property
    def weights(self):
        """(B, H, N, M) attention weights of every head."""
        return self.attn_cache.weights


def mha_forward(x_q, x_kv, params, n_heads, mask=None, *, dropout_p=0.0, rng=None):
    """Multi-head attention of x_q (queries) over x_kv (keys and values).

    Args:
        x_q: (B, N, D) query-side inputs.
        x_kv: (B, M, D_kv) key/value-side inputs (pass x_q again for self-attention).
        params: dict from ``init_mha_params``.
        n_heads: H.
        mask: boolean, broadcastable to (B, H, N, M); True = may attend.
        dropout_p, rng: attention dropout, as in ``attention_forward``.

    Returns:
        out (B, N, D) and a cache; ``cache.weights`` is (B, H, N, M).
    """
    x_q = V.float_array("x_q", x_q, ndim=3)
    x_kv = V.float_array("x_kv", x_kv, ndim=3)
    n_heads = V.positive_int("n_heads", n_heads)
    if x_q.shape[0] != x_kv.shape[0]:
        raise ValueError(
            f"x_q{x_q.shape} and x_kv{x_kv.shape} must share the batch size B"
        )
    V.same_dtype(x_q=x_q, x_kv=x_kv)
    has_bias = check_mha_params(
        params, x_q.shape[-1], x_kv.shape[-1], n_heads, dtype=x_q.dtype
    )
    b = {k: params.get(k) for k in BIAS_KEYS}
    q, q_cache = linear_forward(x_q, params["W_q"], b["b_q"])  # (B, N, D)
    k, k_cache = linear_forward(x_kv, params["W_k"], b["b_k"])  # (B, M, D)
    v, v_cache = linear_forward(x_kv, params["W_v"], b["b_v"])  # (B, M, D)
    qh, kh, vh = (split_heads(t, n_heads) for t in (q, k, v))  # (B, H, N|M, d)
    o, attn_cache = attention_forward(qh, kh, vh, mask, dropout_p=dropout_p, rng=rng)
    out, o_cache = linear_forward(merge_heads(o), params["W_o"], b["b_o"])  # (B, N, D)
    cache = MHACache(q_cache, k_cache, v_cache, attn_cache, o_cache, n_heads, has_bias)
    return out, cache


def mha_backward(dout, cache):
    """Gradients of mha_forward.

    Args:
        dout: (B, N, D) upstream gradient.
        cache: from ``mha_forward``.

    Returns:
        dx_q (B, N, D), dx_kv (B, M, D_kv), grads keyed exactly like params.
    """
    q_cache, k_cache, v_cache, attn_cache, o_cache, n_heads, has_bias = cache
    do, dW_o, db_o = linear_backward(dout, o_cache)  # forward: out = merge(o) W_o + b_o
    dqh, dkh, dvh = attention_backward(split_heads(do, n_heads), attn_cache)
    dx_q, dW_q, db_q = linear_backward(merge_heads(dqh), q_cache)
    dx_k, dW_k, db_k = linear_backward(merge_heads(dkh), k_cache)
    dx_v, dW_v, db_v = linear_backward(merge_heads(dvh), v_cache)
    dx_kv = dx_k + dx_v  # x_kv feeds both the key and the value projection
    grads = {"W_q": dW_q, "W_k": dW_k, "W_v": dW_v, "W_o": dW_o}
    if has_bias:
        grads.update({"b_q": db_q, "b_k": db_k, "b_v": db_v, "b_o": db_o})
    return dx_q, dx_kv, grads

"""A sequence-mixer layer around each recurrence (and around softmax attention).

    q, k, v = heads(conv_q(x W_q)), heads(conv_k(x W_k)), heads(conv_v(x W_v))
    attention:  o = softmax(q k^T / sqrt(d), causal) v
    otherwise:  o = rmsnorm(recurrence(l2norm(q), l2norm(k), v, gates(x)))
    out = merge(o) W_o

Every mixer has the same projections, short causal convolutions (one per q, k, v,
as in fla's DeltaNet / Gated DeltaNet and Mamba-2 layers; Zoology puts a short
convolution before every mixer, attention included) and widths, so only the
recurrence differs (equal width). The gates follow the papers' layers (see
``mixer_gates``). Shapes: x (B, N, D), heads (B, H, N, d), D = H d.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import attention_backward, attention_forward
from ..multihead import merge_heads, split_heads
from . import delta_family as df
from . import linear_family as lf
from .mixer_gates import GATE_KEYS, gates_backward, gates_forward, init_gate_params
from .mixer_ops import (
    l2norm_backward,
    l2norm_forward,
    rmsnorm_backward,
    rmsnorm_forward,
    short_conv_backward,
    short_conv_forward,
)

RECURRENCES = {  # kind: (forward, backward, names of the gate arrays it takes)
    "linear_attn": (lf.linear_attn_forward, lf.linear_attn_backward, ()),
    "retention": (lf.retention_forward, lf.retention_backward, ()),
    "gla": (lf.gla_forward, lf.gla_backward, ("log_alpha",)),
    "mamba2": (lf.mamba2_forward, lf.mamba2_backward, ("log_alpha",)),
    "deltanet": (df.deltanet_forward, df.deltanet_backward, ("beta",)),
    "gated_deltanet": (
        df.gated_deltanet_forward,
        df.gated_deltanet_backward,
        ("log_alpha", "beta"),
    ),
}
KINDS = ("attention",) + tuple(RECURRENCES)
BASE_KEYS = ("conv_q", "conv_k", "conv_v", "W_q", "W_k", "W_v", "W_o")


def init_mixer_params(d_model, n_heads, *, kind, rng, conv_size=3, dtype=np.float64):
    """Params: conv_q, conv_k, conv_v (K, D), W_q, W_k, W_v, W_o (D, D), gates."""
    V.choice("kind", kind, KINDS)
    D, H = V.positive_int("d_model", d_model), V.positive_int("n_heads", n_heads)
    if D % H:
        raise ValueError(f"d_model={D} must be a multiple of n_heads={H}")
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    K = V.positive_int("conv_size", conv_size)
    params = {n: rng.standard_normal((K, D)) / np.sqrt(K) for n in BASE_KEYS[:3]}
    for name in BASE_KEYS[3:]:
        params[name] = rng.standard_normal((D, D)) / np.sqrt(D)
    params.update(init_gate_params(D, H, kind=kind, rng=rng, dtype=dtype))
    return {name: p.astype(dtype) for name, p in params.items()}


class MixerCache(NamedTuple):
    kind: str
    convs: tuple  # short_conv caches of q, k, v
    x: np.ndarray  # (B, N, D) the input
    core: tuple  # attention cache, or RecurrenceParts
    o: np.ndarray  # (B, N, D) merged heads, before W_o
    params: dict
    n_heads: int


class RecurrenceParts(NamedTuple):
    q_norm: tuple  # l2norm caches
    k_norm: tuple
    o_norm: tuple  # rmsnorm cache
    gates: dict  # {name: gate array}
    gate_cache: dict
    recurrence: tuple  # the recurrence's cache
    v: np.ndarray  # (B, H, N, d) values before Mamba-2's dt scaling


def _check(x, params, kind, n_heads):
    x = V.float_array("x", x, ndim=3)
    V.choice("kind", kind, KINDS)
    H = V.positive_int("n_heads", n_heads)
    D = x.shape[-1]
    if D % H:
        raise ValueError(f"x{x.shape}: D={D} must be a multiple of n_heads={H}")
    shapes = {k: (D, D) for k in BASE_KEYS[3:]}
    for name in BASE_KEYS[:3]:  # any number of taps K, width D
        shape = np.shape(params.get(name, np.zeros((3, D))))
        shapes[name] = shape if len(shape) == 2 and shape[1] == D else (3, D)
    shapes.update({k: np.shape(params.get(k)) for k in GATE_KEYS[kind]})
    return x, V.check_params(params, shapes, dtype=x.dtype)


def _recurrence_forward(q, k, v, h, params, kind, form, chunk_size):
    """o (B, H, N, d) and RecurrenceParts."""
    (qn, cq), (kn, ck) = l2norm_forward(q), l2norm_forward(k)
    gates, gate_cache = gates_forward(h, params, kind=kind, n_heads=q.shape[1])
    vs = v * gates["v_scale"] if "v_scale" in gates else v  # Mamba-2: dt x
    forward, _, names = RECURRENCES[kind]
    arrays = [gates[n] for n in names]
    o, rc = forward(qn, kn, vs, *arrays, form=form, chunk_size=chunk_size)
    o, co = rmsnorm_forward(o)
    return o, RecurrenceParts(cq, ck, co, gates, gate_cache, rc, v)


def mixer_forward(x, params, *, kind, n_heads, form="chunkwise", chunk_size=64):
    """out (B, N, D) = the mixer of ``kind`` applied to x (module docstring).

    Args:
        x: (B, N, D) inputs.  params: from ``init_mixer_params``.
        kind: "attention" or one of RECURRENCES.  n_heads: H.
        form, chunk_size: the recurrence's form (ignored by attention).

    Returns:
        out (B, N, D), MixerCache.
    """
    x, params = _check(x, params, kind, n_heads)
    heads, convs = [], []
    for n in "qkv":  # conv_n(x W_n): a token can see the few before it
        a, c = short_conv_forward(x @ params["W_" + n], params["conv_" + n])
        heads.append(split_heads(a, n_heads))  # (B, H, N, d)
        convs.append(c)
    q, k, v = heads
    if kind == "attention":
        o, core = attention_forward(q, k, v, causal=True)  # (B, H, N, d)
    else:
        o, core = _recurrence_forward(q, k, v, x, params, kind, form, chunk_size)
    o = merge_heads(o)  # (B, N, D)
    cache = MixerCache(kind, tuple(convs), x, core, o, params, n_heads)
    return o @ params["W_o"], cache


def _recurrence_backward(do, c):
    """dq, dk, dv (B, H, N, d), dx from the gates, the gates' dparams."""
    p = c.core
    grads = RECURRENCES[c.kind][1](rmsnorm_backward(do, p.o_norm), p.recurrence)
    dq, dk = l2norm_backward(grads[0], p.q_norm), l2norm_backward(grads[1], p.k_norm)
    dv = grads[2]
    dgates = dict(zip(RECURRENCES[c.kind][2], grads[3:-1], strict=True))
    if "v_scale" in p.gates:  # forward: vs = v * dt
        dgates["v_scale"] = np.sum(dv * p.v, axis=-1, keepdims=True)
        dv = dv * p.gates["v_scale"]
    dh, dparams = gates_backward(dgates, p.gate_cache)
    return dq, dk, dv, dh, dparams


def mixer_backward(dout, cache):
    """dx (B, N, D) and grads (keys of params) of mixer_forward."""
    c = cache
    V.grad_shape("dout", dout, c.x.shape)
    p = c.params
    grads = {"W_o": c.o.reshape(-1, c.o.shape[-1]).T @ dout.reshape(-1, c.o.shape[-1])}
    do = split_heads(dout @ p["W_o"].T, c.n_heads)  # (B, H, N, d)
    if c.kind == "attention":
        dq, dk, dv = attention_backward(do, c.core)
        dx, dgates = np.zeros_like(c.x), {}
    else:
        dq, dk, dv, dx, dgates = _recurrence_backward(do, c)
    x2 = c.x.reshape(-1, c.x.shape[-1])
    for n, d, conv in zip("qkv", (dq, dk, dv), c.convs, strict=True):
        da, grads["conv_" + n] = short_conv_backward(merge_heads(d), conv)
        grads["W_" + n] = x2.T @ da.reshape(x2.shape)  # forward: a = x W_n
        dx += da @ p["W_" + n].T
    return dx, {**grads, **dgates}

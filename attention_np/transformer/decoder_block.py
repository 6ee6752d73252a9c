"""The pre-norm decoder block of an encoder-decoder: three residual branches.

    x1  = x  + self_attn(LN_1(x))          causal self-attention over the target
    x2  = x1 + cross_attn(LN_2(x1), enc)   every target position reads the source
    out = x2 + mlp(LN_3(x2))               position-wise MLP

(The encoder block is the decoder-only model's ``block_forward`` with
``causal=False`` and the source padding as ``mask``.) Backward: each residual adds
the upstream gradient unchanged, ``dx = dy + f'(x)^T dy``; the encoder output gets
the gradient of the cross-attention's keys and values.

Parameter keys: ``ln1.*, self.W_q .. self.W_o, ln2.*, cross.W_q .. cross.W_o``
(+ ``cross.W_a, cross.U_a, cross.v_a`` for additive scores), ``ln3.*, mlp.W_1,
mlp.W_2`` and, unless made with ``bias=False``, the attention and MLP biases.
Shape legend: B batch, N target positions, M source positions, D width, H heads.
"""

import numpy as np

from .. import validate as V
from ..decoding import KVCache
from ..multihead import mha_backward, mha_forward, mha_param_shapes
from ._params import prefixed, sub
from .cross_attention import (
    SCORES,
    cross_attention_backward,
    cross_attention_forward,
    cross_attention_param_shapes,
    init_cross_attention_params,
)
from .cross_memory import CrossMemory, cross_attention_decode
from .layers import (
    init_mlp_params,
    layernorm_backward,
    layernorm_forward,
    mlp_backward,
    mlp_forward,
    mlp_param_shapes,
)
from .self_attention import init_mha_params

LN_KEYS = ("ln1", "ln2", "ln3")


def init_decoder_block_params(
    d_model,
    n_heads,
    d_mlp,
    *,
    score="dot",
    d_attn=None,
    rng,
    dtype=np.float64,
    bias=True,
):
    """Flat dict of one decoder block's parameters (layer norms start as identity).

    Args:
        d_model: D; n_heads: H (must divide D); d_mlp: F, the MLP's hidden width.
        score: cross-attention scores, "dot" or "additive"; d_attn: A (additive).
        rng: np.random.Generator; dtype: float16/32/64; bias: attention/MLP biases.
    """
    D = V.positive_int("d_model", d_model)
    F = V.positive_int("d_mlp", d_mlp)
    kw = dict(rng=rng, dtype=V.dtype_arg(dtype), bias=V.bool_arg("bias", bias))
    attn = init_mha_params(D, n_heads, **kw)
    cross = init_cross_attention_params(D, n_heads, score=score, d_attn=d_attn, **kw)
    mlp = init_mlp_params(D, F, **kw)
    params = {**prefixed(attn, "self"), **prefixed(cross, "cross")}
    params.update(prefixed(mlp, "mlp"))
    for name in LN_KEYS:
        params[f"{name}.gamma"] = np.ones(D, dtype=kw["dtype"])
        params[f"{name}.beta"] = np.zeros(D, dtype=kw["dtype"])
    return params


def decoder_block_param_shapes(d_model, n_heads, d_mlp, *, score, bias, d_attn=None):
    """{key: shape} of one decoder block's params."""
    D = d_model
    shapes = {f"{n}.{p}": (D,) for n in LN_KEYS for p in ("gamma", "beta")}
    shapes.update(prefixed(mha_param_shapes(D, D, n_heads, n_heads, bias=bias), "self"))
    cross = cross_attention_param_shapes(
        D, D, n_heads, score=score, bias=bias, d_attn=d_attn
    )
    shapes.update(prefixed(cross, "cross"))
    shapes.update(prefixed(mlp_param_shapes(D, d_mlp, bias=bias), "mlp"))
    return shapes


def check_decoder_block_params(params, d_model, n_heads, *, score, dtype=None):
    """Raise a clear error unless ``params`` is one decoder block of width d_model."""
    V.instance("params", params, dict)
    V.choice("score", score, SCORES)
    H = V.positive_int("n_heads", n_heads)
    if d_model % H:
        raise ValueError(f"n_heads={H} must divide d_model={d_model}")
    has_bias = "self.b_q" in params or "mlp.b_1" in params

    def width(key, axis):
        w = params.get(key)
        ok = isinstance(w, np.ndarray) and w.ndim > axis and w.shape[axis] > 0
        return w.shape[axis] if ok else 1

    F, A = width("mlp.W_1", 1), width("cross.v_a", 0)
    shapes = decoder_block_param_shapes(
        d_model, H, F, score=score, bias=has_bias, d_attn=A
    )
    V.check_params(params, shapes, dtype=dtype)


def _check(x, enc, params, n_heads, score):
    x = V.float_array("x", x, ndim=3)
    enc = V.float_array("enc", enc, ndim=3)
    if enc.shape[0] != x.shape[0] or enc.shape[2] != x.shape[2]:
        raise ValueError(f"x{x.shape} and enc{enc.shape} must share B and D")
    check_decoder_block_params(params, x.shape[-1], n_heads, score=score, dtype=x.dtype)
    return x, enc


def _ln(x, params, name):
    return layernorm_forward(x, params[f"{name}.gamma"], params[f"{name}.beta"])


def decoder_block_forward(
    x, enc, params, mask=None, *, n_heads, causal, align="top_left", score="dot"
):
    """One pre-norm decoder block.

    Args:
        x: (B, N, D) target states; enc: (B, M, D) encoder output.
        params: from ``init_decoder_block_params`` (with this ``score``).
        mask: boolean, broadcastable to (B, H, N, M): the source padding
            (cross-attention); True = may attend.
        n_heads: H; causal, align: of the self-attention (a decoder is causal).
        score: "dot" or "additive" cross-attention scores.

    Returns:
        out (B, N, D) and a cache; ``cache[1].weights`` (self) is (B, H, N, N) and
        ``cache[3].weights`` (cross) is (B, H, N, M).
    """
    x, enc = _check(x, enc, params, n_heads, score)
    h, c_ln1 = _ln(x, params, "ln1")  # (B, N, D)
    a, c_self = mha_forward(
        h, h, sub(params, "self"), n_heads=n_heads, causal=causal, align=align
    )
    x1 = x + a  # (B, N, D) first residual
    h2, c_ln2 = _ln(x1, params, "ln2")
    c, c_cross = cross_attention_forward(
        h2, enc, sub(params, "cross"), mask, n_heads=n_heads, score=score
    )
    x2 = x1 + c  # (B, N, D) second residual
    h3, c_ln3 = _ln(x2, params, "ln3")
    m, c_mlp = mlp_forward(h3, sub(params, "mlp"))
    return x2 + m, (c_ln1, c_self, c_ln2, c_cross, c_ln3, c_mlp)


def decoder_block_backward(dout, cache):
    """Gradients of decoder_block_forward: dx (B, N, D), denc (B, M, D), grads."""
    c_ln1, c_self, c_ln2, c_cross, c_ln3, c_mlp = cache
    grads = {}
    dh3, g_mlp = mlp_backward(dout, c_mlp)  # forward: out = x2 + mlp(LN_3 x2)
    dx2_ln, grads["ln3.gamma"], grads["ln3.beta"] = layernorm_backward(dh3, c_ln3)
    dx2 = dout + dx2_ln  # the residual passes dout unchanged
    dh2, denc, g_cross = cross_attention_backward(dx2, c_cross)
    dx1_ln, grads["ln2.gamma"], grads["ln2.beta"] = layernorm_backward(dh2, c_ln2)
    dx1 = dx2 + dx1_ln  # forward: x2 = x1 + cross(LN_2 x1, enc)
    dh_q, dh_kv, g_self = mha_backward(dx1, c_self)  # h feeds q and k, v
    dx_ln, grads["ln1.gamma"], grads["ln1.beta"] = layernorm_backward(
        dh_q + dh_kv, c_ln1
    )
    grads.update({**prefixed(g_self, "self"), **prefixed(g_cross, "cross")})
    grads.update(prefixed(g_mlp, "mlp"))
    return dx1 + dx_ln, denc, grads  # forward: x1 = x + attn(LN_1 x)


def decoder_block_step(x, memory, params, mask=None, *, n_heads, score="dot", kv_cache):
    """The block for new target tokens during generation (inference, no backward).

    Args:
        x: (B, n, D) states of the n new tokens, which follow the kv_cache.length
            tokens already cached.
        memory: this layer's ``cross_memory`` of the encoder output.
        params, mask, n_heads, score: as in ``decoder_block_forward``.
        kv_cache: a ``decoding.KVCache`` of this layer's self-attention; the new
            keys and values are appended (bottom-right causal: new token i sees the
            cached tokens and the new tokens up to i).

    Returns:
        out (B, n, D) and the weights (self (B, H, n, t), cross (B, H, n, M)).
    """
    x = _check_step(x, memory, params, mask, n_heads, score, kv_cache)
    h, _ = _ln(x, params, "ln1")
    self_params = sub(params, "self")
    a, c_self = mha_forward(
        h,
        h,
        self_params,
        n_heads=n_heads,
        causal=True,
        align="bottom_right",
        kv_cache=kv_cache,
    )
    x1 = x + a
    h2, _ = _ln(x1, params, "ln2")
    c, w_cross = cross_attention_decode(
        h2, memory, sub(params, "cross"), mask, n_heads=n_heads, score=score
    )
    x2 = x1 + c
    m, _ = mlp_forward(_ln(x2, params, "ln3")[0], sub(params, "mlp"))
    return x2 + m, (c_self.weights, w_cross)


def _check_step(x, memory, params, mask, n_heads, score, kv_cache):
    """Everything decoder_block_step is given, checked before the cache is written."""
    x = V.float_array("x", x, ndim=3)
    check_decoder_block_params(params, x.shape[-1], n_heads, score=score, dtype=x.dtype)
    V.instance("memory", memory, CrossMemory)
    V.instance("kv_cache", kv_cache, KVCache)
    (B, n, D), H = x.shape, n_heads
    k = V.float_array("memory.k", memory.k, ndim=4)
    if k.shape[:2] != (B, H) or k.shape[3] * H != D or memory.v.shape != k.shape:
        raise ValueError(
            f"memory.k{k.shape} and memory.v{np.shape(memory.v)} must be (B, H, M, d)"
            f" = ({B}, {H}, M, {D // H}) for x{x.shape}"
        )
    if mask is not None:
        V.bool_mask("mask", mask, (B, H, n, k.shape[2]))
    new = np.zeros((B, H, n, D // H), dtype=x.dtype)  # what the layer will append
    kv_cache.check(new, new)  # shapes, room and dtype; writes nothing
    return x

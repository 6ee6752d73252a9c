"""Gradient-check cases for the transformer and the modules around it.

Covers transformer/ (embedding, layer norm, GELU, MLP, self-attention with GQA, MQA
and RoPE, block, cross-entropy, the whole model); RoPE, grouped-query attention and
Bahdanau/Luong are in the core's attention_np/gradcheck_cases.py.
Same contract as attention_np/gradcheck_cases.py: ``case(rng) -> (forward,
backward, inputs)``; small, all-different sizes.
"""

import numpy as np

from ..gradcheck import LayerCase
from . import layers as L
from .block import block_backward, block_forward, init_block_params
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import TransformerConfig, init_params, model_backward, model_forward
from .self_attention import (
    init_mha_params,
    self_attention_backward,
    self_attention_forward,
)

B, N, M, D, F = 2, 5, 4, 8, 12


def _noisy(params, rng):
    """Perturb every parameter: non-zero biases, non-trivial layer norms."""
    return {k: p + 0.1 * rng.standard_normal(p.shape) for k, p in params.items()}


def _with_params(forward, backward, x_name, x, params):
    """Case for a layer ``forward(x, params) -> (out, cache)`` with dict grads."""
    fwd = lambda p: forward(p[x_name], {k: p[k] for k in params})

    def bwd(dout, cache):
        dx, grads = backward(dout, cache)
        return {x_name: dx, **grads}

    return fwd, bwd, {x_name: x, **params}


def _embedding(rng):
    ids = rng.integers(0, 6, size=(B, N))
    ids[0, :2] = 3  # a repeated token: its gradient rows must accumulate
    forward = lambda p: L.embedding_forward(ids, p["W"])
    backward = lambda dout, cache: {"W": L.embedding_backward(dout, cache)}
    return forward, backward, {"W": rng.standard_normal((6, D))}


def _layernorm(rng):
    inputs = {
        "x": 2 * rng.standard_normal((B, N, D)) + 1,
        "gamma": 1 + 0.5 * rng.standard_normal(D),
        "beta": rng.standard_normal(D),
    }
    forward = lambda p: L.layernorm_forward(p["x"], p["gamma"], p["beta"])
    backward = lambda dout, cache: dict(
        zip(("x", "gamma", "beta"), L.layernorm_backward(dout, cache), strict=True)
    )
    return forward, backward, inputs


def _gelu(rng):
    backward = lambda dout, cache: {"x": L.gelu_backward(dout, cache)}
    return lambda p: L.gelu_forward(p["x"]), backward, {"x": 2 * rng.standard_normal(7)}


def _mlp(rng):
    params = _noisy(L.init_mlp_params(D, F, rng=rng), rng)
    x = rng.standard_normal((B, N, D))
    return _with_params(L.mlp_forward, L.mlp_backward, "x", x, params)


def _self_attention(rng, n_kv_heads=4, rope=False):
    params = _noisy(init_mha_params(D, 4, n_kv_heads=n_kv_heads, rng=rng), rng)
    positions = np.arange(3, 3 + N) if rope else None
    x = rng.standard_normal((B, N, D))
    options = {"n_heads": 4, "n_kv_heads": n_kv_heads, "causal": True}
    options["positions"] = positions
    return LayerCase(
        self_attention_forward, self_attention_backward, {"x": x}, params, options
    )


def _block(rng):
    params = _noisy(init_block_params(D, 2, F, rng=rng, dtype=np.float64), rng)
    x = rng.standard_normal((B, N, D))
    options = {"n_heads": 2, "causal": True}
    return LayerCase(block_forward, block_backward, {"x": x}, params, options)


def _cross_entropy(rng):
    targets = rng.integers(0, 6, size=(B, N))
    mask = rng.random((B, N)) > 0.3
    forward = lambda p: cross_entropy_forward(p["logits"], targets, mask)
    backward = lambda dout, cache: {"logits": cross_entropy_backward(dout, cache)}
    return forward, backward, {"logits": 2 * rng.standard_normal((B, N, 6))}


def _model(rng, pos="learned", n_kv_heads=None):
    """Whole model + loss on a tiny config: every parameter is checked."""
    config = TransformerConfig(
        vocab_size=5,
        max_len=6,
        d_model=4,
        n_heads=2,
        n_layers=2,
        d_mlp=6,
        n_kv_heads=n_kv_heads,
        pos=pos,
    )
    params = _noisy(init_params(config, rng=rng), rng)
    ids, targets = rng.integers(0, 5, size=(2, 2, 5))
    mask = np.array([[True] * 5, [False, True, True, False, True]])

    def forward(p):
        logits, cache = model_forward(ids, p, config)
        loss, loss_cache = cross_entropy_forward(logits, targets, mask)
        return loss, (cache, loss_cache)

    def backward(dout, caches):
        cache, loss_cache = caches
        return model_backward(cross_entropy_backward(dout, loss_cache), cache)

    return forward, backward, params


CASES = {
    "embedding (repeated tokens)": _embedding,
    "layer norm": _layernorm,
    "GELU (tanh approximation)": _gelu,
    "MLP (GELU)": _mlp,
    "self-attention (MHA, causal)": _self_attention,
    "self-attention (GQA, 2 kv heads)": lambda rng: _self_attention(rng, 2),
    "self-attention (MQA + RoPE)": lambda rng: _self_attention(rng, 1, rope=True),
    "pre-norm decoder block": _block,
    "cross-entropy (masked)": _cross_entropy,
    "transformer model + loss (learned positions)": _model,
    "transformer model + loss (RoPE, GQA)": lambda rng: _model(rng, "rope", 1),
}

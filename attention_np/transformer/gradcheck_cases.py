"""Gradient-check cases for the transformer: every layer as a ``gradcheck.LayerCase``.

Embedding, layer norm and GELU live in ``attention_np.layers`` but are checked here,
next to the MLP, self-attention (with and without biases, GQA, MQA + RoPE), the block,
the cross-entropy loss and the whole model. Each case passes the public forward and
backward themselves, so the check is also a check of the contract (integer arrays,
token ids and targets, get no gradient). Sizes are small and all different:
B, H, N, d, F = 2, 3, 5, 4, 7 (D = H d = 12; the model: V = 6, T = 8).
"""

import numpy as np

from ..gradcheck import LayerCase
from ..masks import padding_mask
from . import layers as L
from .block import block_backward, block_forward, init_block_params
from .config import TransformerConfig
from .encdec_cases import CASES as ENCDEC_CASES
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import init_params, model_backward, model_forward
from .self_attention import (
    init_mha_params,
    self_attention_backward,
    self_attention_forward,
)

B, H, N, d, F = 2, 3, 5, 4, 7
D = H * d


def _noisy(params, rng):
    """Perturb every parameter: non-zero biases, non-trivial layer norms."""
    return {k: p + 0.1 * rng.standard_normal(p.shape) for k, p in params.items()}


def _embedding(rng):
    ids = rng.integers(0, 6, size=(B, N))
    ids[0, :2] = 3  # a repeated token: its gradient rows must accumulate
    arrays = {"ids": ids, "W": rng.standard_normal((6, D))}
    return LayerCase(L.embedding_forward, L.embedding_backward, arrays)


def _layernorm(rng):
    arrays = {
        "x": 2 * rng.standard_normal((B, N, D)) + 1,
        "gamma": 1 + 0.5 * rng.standard_normal(D),
        "beta": rng.standard_normal(D),
    }
    return LayerCase(L.layernorm_forward, L.layernorm_backward, arrays)


def _gelu(rng):
    arrays = {"x": 2 * rng.standard_normal((B, N, F))}
    return LayerCase(L.gelu_forward, L.gelu_backward, arrays)


def _mlp(rng, bias=True):
    params = _noisy(L.init_mlp_params(D, F, rng=rng, bias=bias), rng)
    arrays = {"x": rng.standard_normal((B, N, D))}
    return LayerCase(L.mlp_forward, L.mlp_backward, arrays, params)


def _self_attention(rng, n_heads=H, n_kv_heads=None, rope=False, **kw):
    bias = kw.pop("bias", True)
    params = init_mha_params(D, n_heads, n_kv_heads=n_kv_heads, rng=rng, bias=bias)
    options = {"n_heads": n_heads, "n_kv_heads": n_kv_heads, "causal": True, **kw}
    if rope:
        options["positions"] = np.arange(3, 3 + N)  # any start: only offsets matter
    arrays = {"x": rng.standard_normal((B, N, D))}
    return LayerCase(
        self_attention_forward,
        self_attention_backward,
        arrays,
        _noisy(params, rng),
        options,
    )


def _block(rng, bias=True, n_kv_heads=None, rope=False):
    params = init_block_params(D, H, F, n_kv_heads=n_kv_heads, rng=rng, bias=bias)
    options = {"n_heads": H, "n_kv_heads": n_kv_heads, "causal": True}
    if rope:
        options["positions"] = np.arange(N)
    arrays = {"x": rng.standard_normal((B, N, D))}
    return LayerCase(
        block_forward, block_backward, arrays, _noisy(params, rng), options
    )


def _cross_entropy(rng):
    arrays = {
        "logits": 2 * rng.standard_normal((B, N, 6)),
        "targets": rng.integers(0, 6, size=(B, N)),  # ints: no gradient
    }
    mask = rng.random((B, N)) > 0.3
    return LayerCase(
        cross_entropy_forward, cross_entropy_backward, arrays, options={"mask": mask}
    )


def _model(rng, start=0, **kw):
    """The whole model on a small config (every parameter is checked); the variants
    use one layer, to keep the check quick."""
    sizes = dict(vocab_size=6, max_len=8, d_model=D, n_heads=H, n_layers=1, d_mlp=F)
    config = TransformerConfig(**{**sizes, **kw})
    params = _noisy(init_params(config, rng=rng), rng)
    arrays = {"ids": rng.integers(0, 6, size=(B, N))}
    options = {"config": config, "start": start}
    return LayerCase(model_forward, model_backward, arrays, params, options)


CASES = {
    "embedding (repeated tokens)": _embedding,
    "layer norm": _layernorm,
    "GELU (tanh approximation)": _gelu,
    "MLP (GELU)": _mlp,
    "MLP (no biases)": lambda rng: _mlp(rng, bias=False),
    "self-attention (MHA, causal)": _self_attention,
    "self-attention (no biases)": lambda rng: _self_attention(rng, bias=False),
    "self-attention (padding mask)": lambda rng: _self_attention(
        rng, mask=padding_mask([N, 3], N)
    ),
    "self-attention (GQA, 4 heads, 2 kv heads)": lambda rng: _self_attention(
        rng, n_heads=4, n_kv_heads=2
    ),
    "self-attention (MQA + RoPE)": lambda rng: _self_attention(
        rng, n_kv_heads=1, rope=True
    ),
    "pre-norm decoder block": _block,
    "pre-norm decoder block (no biases, MQA, RoPE)": lambda rng: _block(
        rng, bias=False, n_kv_heads=1, rope=True
    ),
    "cross-entropy (masked)": _cross_entropy,
    "transformer model (learned positions, 2 layers)": lambda rng: _model(
        rng, n_layers=2
    ),
    "transformer model (learned positions, start=2)": lambda rng: _model(rng, 2),
    "transformer model (sinusoidal, no biases)": lambda rng: _model(
        rng, pos="sinusoidal", bias=False
    ),
    "transformer model (RoPE, MQA)": lambda rng: _model(rng, pos="rope", n_kv_heads=1),
}

# the encoder-decoder's layers (encoder block, cross-attention, decoder block, models)
CASES.update(ENCDEC_CASES)

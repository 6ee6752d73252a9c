"""Gradient-check cases of the encoder-decoder layers, as ``gradcheck.LayerCase``s.

The encoder block (``block_forward`` with ``causal=False`` and a key-padding mask),
cross-attention with dot-product and additive scores, the decoder block with
either, the whole encoder-decoder model and the bidirectional encoder model. They
join ``transformer.gradcheck_cases.CASES``, so ``python -m attention_np gradcheck
-k encoder`` (or ``-k decoder``, ``-k cross-attention``) runs them. Sizes are small
and all different: B, H, N, M, d, F, A = 2, 3, 5, 4, 4, 7, 6 (D = 12, D_kv = 5);
the models: D = 6, H = 2, F = 5, V_src = 7, V_tgt = 6.
"""

import numpy as np

from ..gradcheck import LayerCase
from ..masks import padding_mask
from .block import block_backward, block_forward, init_block_params
from .config import TransformerConfig
from .cross_attention import (
    cross_attention_backward,
    cross_attention_forward,
    init_cross_attention_params,
)
from .decoder_block import (
    decoder_block_backward,
    decoder_block_forward,
    init_decoder_block_params,
)
from .encdec import encdec_backward, encdec_forward, init_encdec_params
from .encdec_config import EncDecConfig
from .encoder import encoder_model_backward, encoder_model_forward
from .model import init_params

B, H, N, M, d, F, A = 2, 3, 5, 4, 4, 7, 6
D = H * d


def _noisy(params, rng):
    """Perturb every parameter: non-zero biases, non-trivial layer norms."""
    return {k: p + 0.1 * rng.standard_normal(p.shape) for k, p in params.items()}


def _encoder_block(rng):
    params = _noisy(init_block_params(D, H, F, rng=rng), rng)
    arrays = {"x": rng.standard_normal((B, N, D))}
    options = {"mask": padding_mask([N, 3], N), "n_heads": H, "causal": False}
    return LayerCase(block_forward, block_backward, arrays, params, options)


def _cross(rng, score):
    p = init_cross_attention_params(D, H, d_kv=5, score=score, d_attn=A, rng=rng)
    arrays = {
        "x_q": rng.standard_normal((B, N, D)),
        "x_kv": rng.standard_normal((B, M, 5)),
    }
    options = {"mask": padding_mask([M, 2], M), "n_heads": H, "score": score}
    return LayerCase(
        cross_attention_forward,
        cross_attention_backward,
        arrays,
        _noisy(p, rng),
        options,
    )


def _decoder_block(rng, score, bias=True):
    p = init_decoder_block_params(D, H, F, score=score, d_attn=A, rng=rng, bias=bias)
    arrays = {
        "x": rng.standard_normal((B, N, D)),
        "enc": rng.standard_normal((B, M, D)),
    }
    options = {"mask": padding_mask([M, 2], M), "n_heads": H, "causal": True}
    options["score"] = score
    return LayerCase(
        decoder_block_forward, decoder_block_backward, arrays, _noisy(p, rng), options
    )


def _encdec(rng, **kw):
    sizes = dict(src_vocab=7, tgt_vocab=6, max_src_len=M + 1, max_tgt_len=N + 1)
    sizes.update(d_model=6, n_heads=2, d_mlp=5, n_enc_layers=1, n_dec_layers=1)
    config = EncDecConfig(**{**sizes, **kw})
    params = _noisy(init_encdec_params(config, rng=rng), rng)
    arrays = {
        "src": rng.integers(0, 7, size=(B, M)),
        "tgt": rng.integers(0, 6, size=(B, N)),
    }
    options = {"config": config, "src_lengths": np.array([M, 2])}
    return LayerCase(encdec_forward, encdec_backward, arrays, params, options)


def _encoder_model(rng):
    sizes = dict(vocab_size=6, max_len=N, d_model=6, n_heads=2, n_layers=1, d_mlp=5)
    config = TransformerConfig(**sizes)
    params = _noisy(init_params(config, rng=rng), rng)
    arrays = {"ids": rng.integers(0, 6, size=(B, N))}
    options = {"config": config, "causal": False}
    return LayerCase(
        encoder_model_forward, encoder_model_backward, arrays, params, options
    )


CASES = {
    "encoder block (bidirectional, key padding)": _encoder_block,
    "cross-attention (dot-product scores, source padding)": lambda rng: _cross(
        rng, "dot"
    ),
    "cross-attention (additive scores, source padding)": lambda rng: _cross(
        rng, "additive"
    ),
    "decoder block (causal self-attention + dot cross-attention)": lambda rng: (
        _decoder_block(rng, "dot")
    ),
    "decoder block (additive cross-attention, no biases)": lambda rng: _decoder_block(
        rng, "additive", bias=False
    ),
    "encoder-decoder model (dot, learned positions, 2 + 2 layers)": lambda rng: _encdec(
        rng, n_enc_layers=2, n_dec_layers=2
    ),
    "encoder-decoder model (additive, sinusoidal, no biases)": lambda rng: _encdec(
        rng, score="additive", pos="sinusoidal", bias=False
    ),
    "bidirectional encoder model (masked-token prediction)": _encoder_model,
}

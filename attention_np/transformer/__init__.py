"""A decoder-only transformer built from forward/backward pairs, trained by hand.

Modules: ``layers`` (embedding, layer norm, GELU, MLP), ``self_attention`` (multi-head,
grouped-query or multi-query causal self-attention, optional RoPE and KV cache),
``block`` (pre-norm residual block), ``config`` (the model's sizes and parameter
shapes), ``model`` (the whole network), ``loss`` (softmax cross-entropy), ``optim``
(SGD, Adam, gradient clipping). Biases are optional everywhere (``bias=False``).

The encoder-decoder: ``cross_attention`` (dot-product or additive scores;
``cross_memory`` projects the encoder's keys and values once for decoding),
``decoder_block`` (causal self-attention, cross-attention, MLP), ``encdec_config``,
``encdec`` (the whole model; its encoder blocks are ``block_forward`` with
``causal=False``) and ``encdec_decode`` (greedy and beam search with caches).
"""

from .block import block_backward, block_forward, init_block_params
from .config import TransformerConfig, param_shapes
from .cross_attention import (
    cross_attention_backward,
    cross_attention_forward,
    init_cross_attention_params,
)
from .cross_memory import CrossMemory, cross_attention_decode, cross_memory
from .decoder_block import (
    decoder_block_backward,
    decoder_block_forward,
    decoder_block_step,
    init_decoder_block_params,
)
from .encdec import (
    check_encdec_params,
    encdec_backward,
    encdec_forward,
    init_encdec_params,
)
from .encdec_config import EncDecConfig, encdec_param_shapes
from .encdec_decode import (
    Decoded,
    DecodeState,
    beam_search,
    decode_step,
    greedy_decode,
    start_decoding,
)
from .encoder import encoder_model_backward, encoder_model_forward
from .layers import (
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    init_mlp_params,
    layernorm_backward,
    layernorm_forward,
    mlp_backward,
    mlp_forward,
)
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import (
    check_model_params,
    init_params,
    model_backward,
    model_forward,
    new_kv_caches,
)
from .optim import adam_init, adam_step, clip_grad_norm, global_norm, sgd_step
from .self_attention import (
    self_attention_backward,
    self_attention_forward,
)
from .streaming import EvictingCache, read_stream

__all__ = [
    "CrossMemory",
    "DecodeState",
    "Decoded",
    "EncDecConfig",
    "EvictingCache",
    "TransformerConfig",
    "beam_search",
    "check_encdec_params",
    "cross_attention_backward",
    "cross_attention_decode",
    "cross_attention_forward",
    "cross_memory",
    "decode_step",
    "decoder_block_backward",
    "decoder_block_forward",
    "decoder_block_step",
    "encdec_backward",
    "encdec_forward",
    "encdec_param_shapes",
    "encoder_model_backward",
    "encoder_model_forward",
    "greedy_decode",
    "init_cross_attention_params",
    "init_decoder_block_params",
    "init_encdec_params",
    "start_decoding",
    "read_stream",
    "adam_init",
    "adam_step",
    "block_backward",
    "block_forward",
    "check_model_params",
    "clip_grad_norm",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "embedding_backward",
    "embedding_forward",
    "gelu_backward",
    "gelu_forward",
    "global_norm",
    "init_block_params",
    "init_mlp_params",
    "init_params",
    "layernorm_backward",
    "layernorm_forward",
    "mlp_backward",
    "mlp_forward",
    "model_backward",
    "model_forward",
    "new_kv_caches",
    "param_shapes",
    "self_attention_backward",
    "self_attention_forward",
    "sgd_step",
]

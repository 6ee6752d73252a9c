"""The encoder-decoder's configuration, and the parameter shapes it implies.

Parameter keys:
    src_embed.W (V_src, D), src_pos.W (T_src, D)        source tokens and positions
    enc{l}.<block key>  (block.py), enc_ln.gamma/beta    encoder blocks, final norm
    tgt_embed.W (V_tgt, D), tgt_pos.W (T_tgt, D)        target tokens and positions
    dec{l}.<decoder block key>  (decoder_block.py)       decoder blocks
    ln_f.gamma/beta, head.W (D, V_tgt) [, head.b]        final norm, output projection
(the two pos tables only with learned positions).

Shape legend: D model width, V_src / V_tgt vocabulary sizes, T_src / T_tgt maximum
lengths, H heads.
"""

import dataclasses
import functools

from .. import validate as V
from ._params import prefixed
from .block import block_param_shapes
from .config import JsonConfig
from .cross_attention import SCORES
from .decoder_block import decoder_block_param_shapes

POSITIONS = ("learned", "sinusoidal")
SIZES = ("src_vocab", "tgt_vocab", "max_src_len", "max_tgt_len", "d_model", "n_heads")
SIZES += ("n_enc_layers", "n_dec_layers")


@dataclasses.dataclass(frozen=True)
class EncDecConfig(JsonConfig):
    """Sizes of an encoder-decoder transformer (pre-norm, Vaswani et al. 2017).

    score: cross-attention scores, "dot" (scaled dot product) or "additive"
    (Bahdanau); d_attn: hidden width A of the additive score (default d = D / H).
    pos: "learned" tables or fixed "sinusoidal" ones, added to both embeddings.
    d_mlp defaults to 4 * d_model. bias: attention, MLP and head biases.
    Every size must be a positive int; a bad field raises TypeError/ValueError
    naming it.
    """

    src_vocab: int
    tgt_vocab: int
    max_src_len: int
    max_tgt_len: int
    d_model: int = 64
    n_heads: int = 4
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    d_mlp: int | None = None
    score: str = "dot"
    d_attn: int | None = None
    pos: str = "learned"
    bias: bool = True

    def __post_init__(self):
        for name in SIZES:
            self._set(name, V.positive_int(name, getattr(self, name)))
        D, H = self.d_model, self.n_heads
        if D % H:
            raise ValueError(f"n_heads={H} must divide d_model={D}")
        d_mlp = 4 * D if self.d_mlp is None else V.positive_int("d_mlp", self.d_mlp)
        self._set("d_mlp", d_mlp)
        V.choice("score", self.score, SCORES)
        A = self.d_attn
        self._set("d_attn", D // H if A is None else V.positive_int("d_attn", A))
        V.choice("pos", self.pos, POSITIONS)
        self._set("bias", V.bool_arg("bias", self.bias))
        if self.pos == "sinusoidal" and D % 2:
            raise ValueError(f"pos='sinusoidal' needs an even d_model, got {D}")

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # frozen: normalise once, here

    @property
    def d_head(self):
        return self.d_model // self.n_heads


def encdec_param_shapes(config):
    """{key: shape} of ``init_encdec_params(config)``."""
    V.instance("config", config, EncDecConfig)
    return dict(_shapes(config))  # a copy: the cached dict stays intact


@functools.lru_cache(maxsize=16)
def _shapes(c):
    D, H, F = c.d_model, c.n_heads, c.d_mlp
    shapes = {"src_embed.W": (c.src_vocab, D), "tgt_embed.W": (c.tgt_vocab, D)}
    if c.pos == "learned":
        shapes.update(
            {"src_pos.W": (c.max_src_len, D), "tgt_pos.W": (c.max_tgt_len, D)}
        )
    enc = block_param_shapes(D, H, H, F, bias=c.bias)
    for layer in range(c.n_enc_layers):
        shapes.update(prefixed(enc, f"enc{layer}"))
    shapes.update({"enc_ln.gamma": (D,), "enc_ln.beta": (D,)})
    dec = decoder_block_param_shapes(
        D, H, F, score=c.score, bias=c.bias, d_attn=c.d_attn
    )
    for layer in range(c.n_dec_layers):
        shapes.update(prefixed(dec, f"dec{layer}"))
    shapes.update({"ln_f.gamma": (D,), "ln_f.beta": (D,), "head.W": (D, c.tgt_vocab)})
    if c.bias:
        shapes["head.b"] = (c.tgt_vocab,)
    return shapes

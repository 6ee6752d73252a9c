"""The transformer's configuration, and the parameter shapes it implies.

Parameter keys: ``embed.W`` (V, D), ``pos.W`` (T, D) when positions are learned,
``block{l}.<block key>`` (see block.py), ``ln_f.gamma``, ``ln_f.beta``,
``head.W`` (D, V) and, unless ``bias=False``, ``head.b`` (V,).

Shape legend: D model width, V vocabulary size, T max_len, H heads, G key/value heads.
"""

import dataclasses
import functools
import json

from .. import validate as V
from ._params import prefixed
from .block import block_param_shapes

POSITIONS = ("learned", "sinusoidal", "rope")
SIZES = ("vocab_size", "max_len", "d_model", "n_heads", "n_layers")


class JsonConfig:
    """to_json / from_json for the frozen config dataclasses (model, training,
    optimiser): every field as sorted JSON, and back."""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The config written by ``to_json``; fields left out take their defaults."""
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise TypeError(f"{cls.__name__} JSON must be an object, got {text!r}")
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(JsonConfig):
    """Sizes of a decoder-only transformer.

    pos: "learned" (a trained table added to the embeddings), "sinusoidal" (a fixed
    table added) or "rope" (queries and keys rotated inside attention).
    d_mlp defaults to 4 * d_model; n_kv_heads to n_heads (G < H: grouped queries).
    bias: biases in the attention, MLP and output projections (layer norms keep beta).
    Every size must be a positive int (bools are refused); a bad field raises
    TypeError/ValueError naming it.
    """

    vocab_size: int
    max_len: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_mlp: int | None = None
    n_kv_heads: int | None = None
    pos: str = "learned"
    bias: bool = True

    def __post_init__(self):
        for name in SIZES:
            self._set(name, V.positive_int(name, getattr(self, name)))
        D, H = self.d_model, self.n_heads
        d_mlp, G = self.d_mlp, self.n_kv_heads
        self._set("d_mlp", 4 * D if d_mlp is None else V.positive_int("d_mlp", d_mlp))
        G = H if G is None else V.positive_int("n_kv_heads", G)
        self._set("n_kv_heads", G)
        if D % H:
            raise ValueError(f"n_heads={H} must divide d_model={D}")
        if H % G:
            raise ValueError(f"n_kv_heads={G} must divide n_heads={H}")
        V.choice("pos", self.pos, POSITIONS)
        self._set("bias", V.bool_arg("bias", self.bias))
        if self.pos == "rope" and (D // H) % 2:
            raise ValueError(f"pos='rope' needs an even head width, got {D // H}")
        if self.pos == "sinusoidal" and D % 2:
            raise ValueError(f"pos='sinusoidal' needs an even d_model, got {D}")

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # frozen: normalise once, here


def param_shapes(config):
    """{key: shape} of ``init_params(config)``: what a checkpoint must contain."""
    V.instance("config", config, TransformerConfig)
    return dict(_param_shapes(config))  # a copy: the cached dict stays intact


@functools.lru_cache(maxsize=16)
def _param_shapes(c):
    D, V_ = c.d_model, c.vocab_size
    shapes = {"embed.W": (V_, D)}
    if c.pos == "learned":
        shapes["pos.W"] = (c.max_len, D)
    block = block_param_shapes(D, c.n_heads, c.n_kv_heads, c.d_mlp, bias=c.bias)
    for layer in range(c.n_layers):
        shapes.update(prefixed(block, f"block{layer}"))
    shapes.update({"ln_f.gamma": (D,), "ln_f.beta": (D,), "head.W": (D, V_)})
    if c.bias:
        shapes["head.b"] = (V_,)
    return shapes

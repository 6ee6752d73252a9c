"""Training settings: task, sizes of the data, optimiser, schedule, dtype.

Every field is checked when a TrainConfig is made (directly, from the command line or
from a checkpoint's JSON): sizes are positive ints (bools refused), rates finite and
in range, choices from a fixed set. A bad field raises TypeError/ValueError naming it.
"""

import dataclasses

from .. import validate as V
from ..transformer.config import JsonConfig
from .tasks import TASKS, make_batch

DTYPES = ("float32", "float64")
# Upper limits of the command lines' sizes (``python -m attention_np.train``): a
# NumPy model on a CPU is far from them, and past them a run would only fail later
# with a MemoryError (--length 1000000000 asks for a 2e9-row position table).
CLI_LIMITS = {
    "steps": 1_000_000,
    "batch_size": 4096,
    "length": 1024,
    "n_symbols": 100_000,
    "d_model": 4096,
    "n_heads": 256,
    "n_layers": 64,
    "threads": 256,
    "beam_width": 64,
}
MEMORY_LIMIT_GIB = 4.0  # what a run's arrays may take (train.__main__.run_gib)
POSITIVE = ("length", "n_symbols", "steps", "batch_size")


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Task and optimiser settings (the model's sizes live in TransformerConfig).

    The learning rate warms up linearly for ``warmup`` steps, then decays along a
    cosine to ``lr * final_lr_frac``. Adam uses ``beta1``, ``beta2`` (in [0, 1)) and
    decoupled ``weight_decay``; gradients are clipped to the global norm ``clip``.
    """

    task: str = "reversal"
    length: int = 8
    n_symbols: int = 10
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    final_lr_frac: float = 0.1
    clip: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    beta1: float = 0.9
    beta2: float = 0.999

    def __post_init__(self):
        V.choice("task", self.task, TASKS)
        V.choice("dtype", self.dtype, DTYPES)
        for name in POSITIVE:
            self._set(name, V.positive_int(name, getattr(self, name)))
        for name in ("warmup", "seed"):
            self._set(name, V.positive_int(name, getattr(self, name), allow_zero=True))
        self._set("lr", V.real("lr", self.lr, lo=0.0, lo_open=True))
        self._set("clip", V.real("clip", self.clip, lo=0.0, lo_open=True))
        self._set("weight_decay", V.real("weight_decay", self.weight_decay, lo=0.0))
        frac = V.real("final_lr_frac", self.final_lr_frac, lo=0.0, hi=1.0)
        self._set("final_lr_frac", frac)
        for name in ("beta1", "beta2"):
            value = V.real(name, getattr(self, name), lo=0.0, hi=1.0, hi_open=True)
            self._set(name, value)
        if self.task == "copy" and self.n_symbols < self.length:
            raise ValueError(
                f"task 'copy' needs n_symbols >= length (distinct symbols), got "
                f"n_symbols={self.n_symbols} < length={self.length}"
            )

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # frozen: normalise once, here

    def batch(self, rng, batch_size=None):
        """A batch of this task (B = batch_size or the training batch size)."""
        B = self.batch_size if batch_size is None else batch_size
        return make_batch(
            self.task, rng, B, length=self.length, n_symbols=self.n_symbols
        )

"""Train the tiny transformer on toy tasks: data, loop, checkpoints, command line.

``python -m attention_np.train reversal --out checkpoints/reversal.npz`` trains a
2-layer model on sequence reversal and saves it (see ``__main__.py``). Every gradient
comes from the package's hand-written backward functions.
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .loop import (
    default_model_config,
    evaluate,
    learning_rate,
    token_accuracy,
    train,
    train_step,
)
from .tasks import TASKS, Batch, make_batch, make_sequences, token_labels, vocab_size

__all__ = [
    "TASKS",
    "Batch",
    "CheckpointError",
    "TrainConfig",
    "default_model_config",
    "evaluate",
    "learning_rate",
    "load_checkpoint",
    "make_batch",
    "make_sequences",
    "save_checkpoint",
    "token_accuracy",
    "token_labels",
    "train",
    "train_step",
    "vocab_size",
]

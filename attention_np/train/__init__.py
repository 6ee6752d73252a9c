"""Train the tiny transformer on toy tasks: data, loop, checkpoints, command line.

``python -m attention_np.train reversal --out checkpoints/reversal.npz`` trains a
2-layer model on sequence reversal and saves it (see ``__main__.py``). Every gradient
comes from the package's hand-written backward functions.

Encoder-decoder and friends (notebook 12): ``translate`` (a toy SOV -> SVO
translation task), ``seq2seq`` (its training and evaluation), ``mlm`` (masked-token
prediction on palindromes, bidirectional vs causal), ``stream`` (a stream task for
attention sinks), ``schedule`` (optimiser settings shared by them), ``run_checkpoint``
and ``commands`` (``python -m attention_np.train translate|mlm|stream``).
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
from .mlm import (
    MLMBatch,
    MLMConfig,
    accuracy_per_position,
    mlm_batch,
    mlm_model_config,
    palindromes,
    train_mlm,
)
from .run_checkpoint import load_run, save_run
from .schedule import OptimConfig, optimizer_update, warmup_cosine
from .seq2seq import (
    TranslateConfig,
    evaluate_translation,
    train_translation,
    train_translation_probed,
    translate_batch,
    translation_model_config,
    translation_step,
)
from .stream import (
    StreamConfig,
    evaluate_stream,
    fibonacci_streams,
    stream_model_config,
    train_stream,
)
from .tasks import TASKS, Batch, make_batch, make_sequences, token_labels, vocab_size
from .translate import (
    TranslationBatch,
    alignment_scores,
    is_held_out,
    src_labels,
    tgt_labels,
    translation_batch,
)

__all__ = [
    "Batch",
    "CheckpointError",
    "MLMBatch",
    "MLMConfig",
    "OptimConfig",
    "StreamConfig",
    "TASKS",
    "TrainConfig",
    "TranslateConfig",
    "TranslationBatch",
    "accuracy_per_position",
    "alignment_scores",
    "default_model_config",
    "evaluate",
    "evaluate_stream",
    "evaluate_translation",
    "fibonacci_streams",
    "is_held_out",
    "learning_rate",
    "load_checkpoint",
    "load_run",
    "make_batch",
    "make_sequences",
    "mlm_batch",
    "mlm_model_config",
    "optimizer_update",
    "palindromes",
    "save_checkpoint",
    "save_run",
    "src_labels",
    "stream_model_config",
    "tgt_labels",
    "token_accuracy",
    "token_labels",
    "train",
    "train_mlm",
    "train_step",
    "train_stream",
    "train_translation",
    "train_translation_probed",
    "translate_batch",
    "translation_batch",
    "translation_model_config",
    "translation_step",
    "vocab_size",
    "warmup_cosine",
]

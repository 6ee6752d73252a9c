"""Checkpoints: parameters, configs and history in one ``.npz`` file, no pickle.

Layout of the archive (every entry a plain array, so ``np.load(allow_pickle=False)``
reads it and nothing in the file can run code):

    format                 "attention_np-checkpoint-v1"
    model_config           TransformerConfig as JSON text
    train_config           TrainConfig as JSON text
    meta                   free-form JSON text (e.g. steps, seconds, accuracy)
    param/<key>            one entry per parameter, e.g. param/block0.attn.W_q
    history/<name>         the training curves (step, loss, accuracy)

``load_checkpoint`` checks everything against ``param_shapes(model_config)`` and
raises ``CheckpointError`` (a ValueError) saying what is wrong.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from ..transformer import TransformerConfig, param_shapes
from .loop import TrainConfig

FORMAT = "attention_np-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, incomplete or made for another model."""


def save_checkpoint(
    path, params, model_config, train_config, *, history=None, meta=None
):
    """Write params, both configs, optional history and meta to ``path`` (.npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "format": np.array(FORMAT),
        "model_config": np.array(model_config.to_json()),
        "train_config": np.array(train_config.to_json()),
        "meta": np.array(json.dumps(meta or {}, sort_keys=True)),
    }
    arrays.update({f"param/{k}": v for k, v in params.items()})
    arrays.update({f"history/{k}": np.asarray(v) for k, v in (history or {}).items()})
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez(f, **arrays)


def _read(path):
    """Every array of the archive as a dict, or a CheckpointError."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path}: a single .npy array, not a checkpoint")
        with data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(
            f"{path}: not a readable .npz checkpoint ({err})"
        ) from None


def _config(entries, name, cls, path):
    if name not in entries:
        raise CheckpointError(f"{path}: missing entry '{name}'")
    try:
        return cls.from_json(str(entries[name]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid {name}: {err}") from None


def _check_params(params, config, path):
    expected = param_shapes(config)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: parameters do not match the model config: "
            f"missing {missing}, unexpected {extra}"
        )
    for key, shape in expected.items():
        if params[key].shape != shape:
            raise CheckpointError(
                f"{path}: param '{key}' has shape {params[key].shape}, the config "
                f"needs {shape}"
            )


def load_checkpoint(path, *, expected_config=None):
    """Read a checkpoint written by ``save_checkpoint``.

    Args:
        path: the .npz file.
        expected_config: a TransformerConfig the checkpoint must have been made for.

    Returns:
        dict with params, model_config, train_config, history, meta.

    Raises:
        CheckpointError: unreadable file, missing entries, wrong shapes, other config.
    """
    entries = _read(path)
    if entries.get("format") is None or str(entries["format"]) != FORMAT:
        raise CheckpointError(f"{path}: not an attention_np checkpoint ({FORMAT})")
    model_config = _config(entries, "model_config", TransformerConfig, path)
    train_config = _config(entries, "train_config", TrainConfig, path)
    if expected_config is not None and model_config != expected_config:
        raise CheckpointError(
            f"{path}: made for {model_config}, expected {expected_config}"
        )
    params = {k[6:]: v for k, v in entries.items() if k.startswith("param/")}
    _check_params(params, model_config, path)
    history = {k[8:]: v for k, v in entries.items() if k.startswith("history/")}
    meta = json.loads(str(entries.get("meta", "{}")))
    return {
        "params": params,
        "model_config": model_config,
        "train_config": train_config,
        "history": history,
        "meta": meta,
    }

"""Checkpoints: parameters, configs and history in one ``.npz`` file, no pickle.

Layout of the archive (every entry a plain array, so ``np.load(allow_pickle=False)``
reads it and nothing in the file can run code):

    format                 "attention_np-checkpoint-v1"
    model_config           TransformerConfig as JSON text
    train_config           TrainConfig as JSON text
    meta                   free-form JSON text (e.g. steps, seconds, accuracy)
    param/<key>            one entry per parameter, e.g. param/block0.attn.W_q
    history/<name>         the training curves (step, loss, accuracy)

``save_checkpoint`` refuses what ``load_checkpoint`` would refuse (wrong keys or
shapes, non-float or mixed dtypes, NaN/inf) and writes atomically: a temporary file
renamed over ``path``. ``load_checkpoint`` checks every entry and raises
``CheckpointError`` (a ValueError) saying what is wrong; an entry that holds pickled
Python objects is refused, never unpickled.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import validate as V
from ..transformer import TransformerConfig, check_model_params
from .config import TrainConfig
from .loop import _check_fits

FORMAT = "attention_np-checkpoint-v1"
TEXT = ("format", "model_config", "train_config", "meta")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, incomplete or made for another model."""


def check_out_path(path):
    """``path`` as a Path that a checkpoint can be written to, or a ValueError.

    Its nearest existing ancestor must be a writable directory and ``path`` itself
    must not be a directory: checked before a long training run, not after it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a checkpoint file")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: {parent} is not writable")
    return path


def _check_params(params, model_config):
    """Keys, shapes, one float dtype (check_model_params) and finite values."""
    check_model_params(params, model_config)
    for key, p in params.items():
        V.finite(f"params['{key}']", p)


def _history(history):
    """{name: 1-D numeric array}; object or text arrays would need pickle."""
    V.instance("history", history, dict)
    out = {}
    for name, values in history.items():
        arr = np.asarray(values)
        if not isinstance(name, str) or arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise TypeError(
                f"history[{name!r}] must be a 1-D numeric array keyed by a str, "
                f"got {arr.dtype} {arr.shape}"
            )
        out[name] = arr
    return out


def _entries(params, model_config, train_config, history, meta):
    V.instance("model_config", model_config, TransformerConfig)
    V.instance("train_config", train_config, TrainConfig)
    _check_fits(model_config, train_config)
    _check_params(params, model_config)
    meta = V.instance("meta", {} if meta is None else meta, dict)
    try:
        meta_text = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise type(err)(f"meta must be JSON-serialisable: {err}") from None
    arrays = {
        "format": np.array(FORMAT),
        "model_config": np.array(model_config.to_json()),
        "train_config": np.array(train_config.to_json()),
        "meta": np.array(meta_text),
    }
    arrays.update({f"param/{k}": v for k, v in params.items()})
    history = _history({} if history is None else history)
    arrays.update({f"history/{k}": v for k, v in history.items()})
    return arrays


def save_checkpoint(
    path, params, model_config, train_config, *, history=None, meta=None
):
    """Write params, both configs, optional history and meta to ``path`` (.npz).

    Everything is checked first; the file appears whole or not at all.
    """
    path = check_out_path(path)
    write_npz(path, _entries(params, model_config, train_config, history, meta))


def write_npz(path, arrays):
    """Write ``arrays`` to ``path`` atomically: a temporary file renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # a file object: np.savez would append ".npz"
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read(path):
    """Every array of the archive as a dict, or a CheckpointError."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err})") from None
    # np.load falls back to unpickling any file that is neither .npz (a zip archive)
    # nor .npy, and then blames pickling: name the real problem first
    if not magic.startswith((b"PK\x03\x04", b"\x93NUMPY")):
        raise CheckpointError(
            f"{path}: not a checkpoint (.npz files are zip archives; this file "
            f"starts with {magic!r})"
        )
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path}: not a readable .npz checkpoint ({err})"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: a single .npy array, not a checkpoint")
    entries = {}
    with data:
        for name in data.files:
            try:
                entries[name] = data[name]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise CheckpointError(
                    f"{path}: entry '{name}' is unreadable or holds pickled Python "
                    f"objects, which are never loaded ({err})"
                ) from None
    return entries


def _text(entries, name, path):
    """The 0-d text entry ``name`` as a str."""
    if name not in entries:
        raise CheckpointError(f"{path}: missing entry '{name}'")
    arr = entries[name]
    if arr.dtype.kind != "U" or arr.ndim != 0:
        raise CheckpointError(
            f"{path}: entry '{name}' must be text, got {arr.dtype} {arr.shape}"
        )
    return str(arr[()])


def _config(entries, name, cls, path):
    try:
        return cls.from_json(_text(entries, name, path))
    except (TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path}: invalid {name}: {err}") from None


def _check_layout(entries, path):
    """The format tag, and no entry outside the layout."""
    if "format" not in entries or _text(entries, "format", path) != FORMAT:
        raise CheckpointError(f"{path}: not an attention_np checkpoint ({FORMAT})")
    extra = sorted(
        k for k in entries if k not in TEXT and not k.startswith(("param/", "history/"))
    )
    if extra:
        raise CheckpointError(f"{path}: unexpected entries {extra}")


def _contents(entries, path, check):
    """params, history and meta, checked; ``check(params)`` validates the params
    against the checkpoint's configs (also used by run_checkpoint)."""
    params = {k[6:]: v for k, v in entries.items() if k.startswith("param/")}
    history = {k[8:]: v for k, v in entries.items() if k.startswith("history/")}
    try:
        check(params)
        _history(history)
        meta = json.loads(_text(entries, "meta", path)) if "meta" in entries else {}
        V.instance("meta", meta, dict)
    except (TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path}: {err}") from None
    return params, history, meta


def load_checkpoint(path, *, expected_config=None):
    """Read a checkpoint written by ``save_checkpoint``.

    Args:
        path: the .npz file.
        expected_config: a TransformerConfig the checkpoint must have been made for.

    Returns:
        dict with params, model_config, train_config, history, meta.

    Raises:
        CheckpointError: unreadable file, pickled objects, missing or unexpected
            entries, invalid configs, wrong keys, shapes or dtypes, NaN/inf values,
            or a model other than ``expected_config``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if expected_config is not None:
        V.instance("expected_config", expected_config, TransformerConfig)
    entries = _read(path)
    _check_layout(entries, path)
    model_config = _config(entries, "model_config", TransformerConfig, path)
    train_config = _config(entries, "train_config", TrainConfig, path)
    if expected_config is not None and model_config != expected_config:
        raise CheckpointError(
            f"{path}: made for {model_config}, expected {expected_config}"
        )

    def check(params):
        _check_fits(model_config, train_config)
        _check_params(params, model_config)

    params, history, meta = _contents(entries, path, check)
    return {
        "params": params,
        "model_config": model_config,
        "train_config": train_config,
        "history": history,
        "meta": meta,
    }

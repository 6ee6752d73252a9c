"""Checkpoints of the encoder-decoder, MLM and stream runs: one ``.npz``, no pickle.

The layout of ``checkpoint.py`` (every entry a plain array), with the kind of each
config named so that the right class reads it back:

    format                 "attention_np-run-v1"
    model_kind             "EncDecConfig" or "TransformerConfig"
    model_config           that config as JSON text
    train_kind             "TranslateConfig", "MLMConfig" or "StreamConfig"
    train_config           that config as JSON text
    meta                   free-form JSON text
    param/<key>, history/<name>

``save_run`` refuses what ``load_run`` would refuse (wrong keys or shapes, mixed or
non-float dtypes, NaN/inf) and writes atomically; ``load_run`` checks every entry
and raises ``CheckpointError`` saying what is wrong.
"""

import json
import os

import numpy as np

from .. import validate as V
from ..transformer import (
    EncDecConfig,
    TransformerConfig,
    check_encdec_params,
    check_model_params,
)
from .checkpoint import (
    CheckpointError,
    _contents,
    _history,
    _read,
    _text,
    check_out_path,
    write_npz,
)
from .mlm import MLMConfig
from .seq2seq import TranslateConfig
from .stream import StreamConfig

FORMAT = "attention_np-run-v1"
MODELS = {"EncDecConfig": EncDecConfig, "TransformerConfig": TransformerConfig}
TRAINS = {c.__name__: c for c in (TranslateConfig, MLMConfig, StreamConfig)}
TEXT = ("format", "model_kind", "model_config", "train_kind", "train_config", "meta")


def _check_params(params, model_config):
    check = (
        check_encdec_params
        if isinstance(model_config, EncDecConfig)
        else check_model_params
    )
    check(params, model_config)
    for key, p in params.items():
        V.finite(f"params['{key}']", p)


def _check_kinds(model_config, train_config):
    for name, value, kinds in (
        ("model_config", model_config, MODELS),
        ("train_config", train_config, TRAINS),
    ):
        if type(value).__name__ not in kinds or not isinstance(
            value, tuple(kinds.values())
        ):
            raise TypeError(
                f"{name} must be one of {sorted(kinds)}, got {type(value).__name__}"
            )


def save_run(path, params, model_config, train_config, *, history=None, meta=None):
    """Write params, both configs, optional history and meta to ``path`` (.npz)."""
    path = check_out_path(path)
    _check_kinds(model_config, train_config)
    _check_params(params, model_config)
    meta = V.instance("meta", {} if meta is None else meta, dict)
    try:
        meta_text = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise type(err)(f"meta must be JSON-serialisable: {err}") from None
    arrays = {
        "format": np.array(FORMAT),
        "model_kind": np.array(type(model_config).__name__),
        "model_config": np.array(model_config.to_json()),
        "train_kind": np.array(type(train_config).__name__),
        "train_config": np.array(train_config.to_json()),
        "meta": np.array(meta_text),
    }
    arrays.update({f"param/{k}": v for k, v in params.items()})
    history = _history({} if history is None else history)
    arrays.update({f"history/{k}": v for k, v in history.items()})
    write_npz(path, arrays)


def _config(entries, kind, name, classes, path):
    cls_name = _text(entries, kind, path)
    if cls_name not in classes:
        raise CheckpointError(
            f"{path}: {kind} {cls_name!r} is not one of {sorted(classes)}"
        )
    try:
        return classes[cls_name].from_json(_text(entries, name, path))
    except (TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path}: invalid {name}: {err}") from None


def load_run(path, *, expected_config=None):
    """Read a checkpoint written by ``save_run``.

    Returns:
        dict with params, model_config, train_config, history, meta.

    Raises:
        CheckpointError: unreadable file, pickled objects, missing or unexpected
            entries, invalid configs, wrong keys, shapes or dtypes, NaN/inf values,
            or a model other than ``expected_config``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    entries = _read(path)
    if "format" not in entries or _text(entries, "format", path) != FORMAT:
        raise CheckpointError(f"{path}: not an attention_np run checkpoint ({FORMAT})")
    extra = sorted(
        k for k in entries if k not in TEXT and not k.startswith(("param/", "history/"))
    )
    if extra:
        raise CheckpointError(f"{path}: unexpected entries {extra}")
    model_config = _config(entries, "model_kind", "model_config", MODELS, path)
    train_config = _config(entries, "train_kind", "train_config", TRAINS, path)
    if expected_config is not None and model_config != expected_config:
        raise CheckpointError(
            f"{path}: made for {model_config}, expected {expected_config}"
        )
    params, history, meta = _contents(
        entries, path, lambda params: _check_params(params, model_config)
    )
    return {
        "params": params,
        "model_config": model_config,
        "train_config": train_config,
        "history": history,
        "meta": meta,
    }

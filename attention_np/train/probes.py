"""Probes and ablations: what a trained model's heads read, measured.

A heatmap shows where a head looks; these tools test what it takes from there and
whether the model needs it (lesson 10):

    residual_streams   what each block's attention reads at every position:
                       LN_1 of the block's input, (n_layers, B, N, D)
    head_outputs       every head's output o_h = P_h V_h, before W_o,
                       (n_layers, B, H, N, d)
    ablate_heads       a copy of params with some heads' rows of W_o set to 0: those
                       heads still attend but add nothing to the residual stream
    fit_linear_probe   least squares from features to one-hot labels (with a bias and
                       a small ridge); probe_predict reads labels back by argmax
    probe_accuracy     fit on one set of examples, the fraction read back right on
                       another (held out)

A linear probe that reads a label from a head's output at high accuracy on held-out
examples shows that the output carries that label in a linearly readable form; one
at chance shows that it does not (linearly).

Shape legend: B batch, N positions, D model width, H heads, G key/value heads,
d = D / H head width, F features, C classes.
"""

import numpy as np

from .. import validate as V
from ..decoding import repeat_kv
from ..multihead import split_heads
from ..transformer import TransformerConfig, check_model_params, model_forward


def _forward(ids, params, config):
    V.instance("config", config, TransformerConfig)
    check_model_params(params, config)
    _, cache = model_forward(ids, params, config)
    return cache


def _streams(cache, params):
    """LN_1 output of every block, from a model cache: (n_layers, B, N, D)."""
    streams = []
    for layer, block_cache in enumerate(cache.block_caches):
        xhat, gamma, _ = block_cache[0]  # layer norm cache: (xhat, gamma, inv_std)
        streams.append(gamma * xhat + params[f"block{layer}.ln1.beta"])  # (B, N, D)
    return np.stack(streams)


def residual_streams(ids, params, config):
    """(n_layers, B, N, D): LN_1(x) of every block, the input its attention reads.

    Args:
        ids: (B, N) token ids.
        params, config: a model (``init_params(config)`` or a checkpoint).
    """
    return _streams(_forward(ids, params, config), params)


def head_outputs(ids, params, config):
    """(n_layers, B, H, N, d): o_h = P_h V_h of every head, before the output W_o.

    Args:
        ids: (B, N) token ids.
        params, config: a model.
    """
    cache = _forward(ids, params, config)
    H, G = config.n_heads, config.n_kv_heads
    outs = []
    for layer, x in enumerate(_streams(cache, params)):  # x: (B, N, D)
        W_v = params[f"block{layer}.attn.W_v"]
        b_v = params.get(f"block{layer}.attn.b_v")
        v = x @ W_v if b_v is None else x @ W_v + b_v  # (B, N, G * d)
        v = repeat_kv(split_heads(v, G), H)  # (B, H, N, d)
        outs.append(cache.block_caches[layer][1].weights @ v)  # (B, H, N, d)
    return np.stack(outs)


def ablate_heads(params, config, layer, heads):
    """A copy of ``params`` in which the given heads of one layer add nothing.

    Zero-ablation: the rows of ``block{layer}.attn.W_o`` that read head h are set to
    0, so the head's output never reaches the residual stream (the other heads and
    the bias b_o are untouched). ``params`` itself is not changed.

    Args:
        params, config: a model.
        layer: int in [0, n_layers).
        heads: iterable of ints in [0, n_heads).
    """
    V.instance("config", config, TransformerConfig)
    check_model_params(params, config)
    layer = V.integer("layer", layer)
    if not 0 <= layer < config.n_layers:
        raise ValueError(f"layer={layer} must be in [0, {config.n_layers})")
    heads = [V.integer("heads", h) for h in heads]
    bad = [h for h in heads if not 0 <= h < config.n_heads]
    if bad:
        raise ValueError(f"heads {bad} must be in [0, n_heads={config.n_heads})")
    d = config.d_model // config.n_heads
    out = {k: v.copy() for k, v in params.items()}
    W_o = out[f"block{layer}.attn.W_o"]  # (H * d, D): rows h*d .. (h+1)*d read head h
    for h in heads:
        W_o[h * d : (h + 1) * d] = 0
    return out


def _features_labels(features, labels, n_classes):
    X = V.float_array("features", features, ndim=2)
    y = V.int_array("labels", labels, ndim=1, lo=0, hi=n_classes)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"features{X.shape} and labels{y.shape} need one label per row"
        )
    return X.astype(np.float64), y


def fit_linear_probe(features, labels, *, n_classes, ridge=1e-3):
    """Weights (F + 1, C) minimising |[X, 1] W - onehot(y)|^2 + ridge |W|^2.

    Args:
        features: (n, F) float features, one row per example.
        labels: (n,) integer labels in [0, n_classes).
        n_classes: C.
        ridge: >= 0, keeps the solve well posed when features are collinear.
    """
    C = V.positive_int("n_classes", n_classes)
    X, y = _features_labels(features, labels, C)
    if X.shape[0] == 0:
        raise ValueError("features must hold at least one example")
    ridge = V.real("ridge", ridge, lo=0.0)
    Xb = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)  # (n, F + 1) bias
    Y = np.eye(C)[y]  # (n, C) one-hot targets
    A = Xb.T @ Xb + ridge * np.eye(Xb.shape[1])  # (F + 1, F + 1)
    return np.linalg.solve(A, Xb.T @ Y)  # (F + 1, C)


def probe_predict(weights, features):
    """(n,) labels argmax([X, 1] W) read by a probe from ``fit_linear_probe``."""
    W = V.float_array("weights", weights, ndim=2)
    X = V.float_array("features", features, ndim=2)
    if X.shape[1] + 1 != W.shape[0]:
        raise ValueError(
            f"features{X.shape} need F = {W.shape[0] - 1} columns for weights{W.shape}"
        )
    return (X @ W[:-1] + W[-1]).argmax(axis=-1)


def probe_accuracy(
    train_features, train_labels, test_features, test_labels, *, n_classes, ridge=1e-3
):
    """Held-out accuracy of a linear probe: fit on one set, score on another.

    Args:
        train_features: (..., F) vectors; train_labels: (...) ints in [0, n_classes),
            one per vector (leading axes such as (B, positions) are flattened).
        test_features, test_labels: the same for other examples.
        n_classes: C; ridge: as in ``fit_linear_probe``.

    Returns:
        The fraction of test vectors whose label the probe reads back.
    """
    sets = []
    for name, X, y in (
        ("train", train_features, train_labels),
        ("test", test_features, test_labels),
    ):
        X = V.float_array(f"{name}_features", X, min_ndim=1)
        y = np.asarray(y)
        if y.shape != X.shape[:-1]:
            raise ValueError(
                f"{name}_labels{y.shape} must have the leading shape of "
                f"{name}_features{X.shape}"
            )
        sets.append((X.reshape(-1, X.shape[-1]), y.reshape(-1)))
    (X_tr, y_tr), (X_te, y_te) = sets
    weights = fit_linear_probe(X_tr, y_tr, n_classes=n_classes, ridge=ridge)
    return float(np.mean(probe_predict(weights, X_te) == y_te))

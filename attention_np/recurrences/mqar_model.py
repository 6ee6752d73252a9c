"""A small language model for MQAR, with any mixer, forward and backward.

    x = emb[ids]
    per layer:  x = x + mixer(LN(x));   x = x + W2 gelu(W1 LN(x) + b1) + b2
    logits = LN(x) W_out

(pre-norm residual blocks). Parameters are one flat dict: "emb", "W_out", "lnf_g",
"lnf_b" and, for layer l, "l{l}.ln1_g", ..., "l{l}.mix.<mixer key>". The loss
(``masked_cross_entropy``) counts only the query positions. Shapes: ids (B, N),
x (B, N, D), logits (B, N, V).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..layers import (
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
)
from ..linear import linear_backward, linear_forward
from .mixers import init_mixer_params, mixer_backward, mixer_forward


def init_mqar_params(
    vocab_size,
    d_model,
    *,
    mixer,
    n_heads,
    rng,
    n_layers=2,
    d_mlp=None,
    dtype=np.float64,
):
    """Params of the MQAR model (module docstring); d_mlp defaults to 2 d_model."""
    vocab = V.positive_int("vocab_size", vocab_size)
    D, L = V.positive_int("d_model", d_model), V.positive_int("n_layers", n_layers)
    F = 2 * D if d_mlp is None else V.positive_int("d_mlp", d_mlp)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    p = {
        "emb": rng.standard_normal((vocab, D)),
        "W_out": rng.standard_normal((D, vocab)),
    }
    p["W_out"] /= np.sqrt(D)
    p["lnf_g"], p["lnf_b"] = np.ones(D), np.zeros(D)
    for l in range(L):
        p[f"l{l}.ln1_g"], p[f"l{l}.ln1_b"] = np.ones(D), np.zeros(D)
        p[f"l{l}.ln2_g"], p[f"l{l}.ln2_b"] = np.ones(D), np.zeros(D)
        p[f"l{l}.W1"], p[f"l{l}.b1"] = (
            rng.standard_normal((D, F)) / np.sqrt(D),
            np.zeros(F),
        )
        p[f"l{l}.W2"], p[f"l{l}.b2"] = (
            rng.standard_normal((F, D)) / np.sqrt(F),
            np.zeros(D),
        )
        mix = init_mixer_params(D, n_heads, kind=mixer, rng=rng)
        p.update({f"l{l}.mix.{k}": w for k, w in mix.items()})
    return {k: w.astype(dtype) for k, w in p.items()}


class MQARCache(NamedTuple):
    emb: tuple
    layers: list  # per layer: (ln1, mixer, ln2, W1, gelu, W2) caches
    lnf: tuple
    head: tuple
    keys: tuple  # the params' keys, for the grads dict
    mask: np.ndarray | None  # (B, N) where the head was applied, or None: everywhere


def _sub(params, prefix):
    return {k[len(prefix) :]: w for k, w in params.items() if k.startswith(prefix)}


def _layer_forward(x, p, pre, options):
    h, c1 = layernorm_forward(x, p[pre + "ln1_g"], p[pre + "ln1_b"])
    m, cm = mixer_forward(h, _sub(p, pre + "mix."), **options)
    x = x + m  # (B, N, D)
    h, c2 = layernorm_forward(x, p[pre + "ln2_g"], p[pre + "ln2_b"])
    a, cw1 = linear_forward(h, p[pre + "W1"], p[pre + "b1"])  # (B, N, F)
    a, cg = gelu_forward(a)
    y, cw2 = linear_forward(a, p[pre + "W2"], p[pre + "b2"])
    return x + y, (c1, cm, c2, cw1, cg, cw2)


def mqar_model_forward(
    ids,
    params,
    mask=None,
    *,
    mixer,
    n_heads,
    n_layers=2,
    form="chunkwise",
    chunk_size=64,
):
    """logits (B, N, V) of the MQAR model, or (Q, V) at the mask's Q positions.

    Args:
        ids: (B, N) token ids.  params: from ``init_mqar_params``.
        mask: optional (B, N) bool: apply the head only where True (the positions
            that carry a loss: with a large vocabulary the head is the costliest
            layer); the logits are then the rows ``[mask]``.
        mixer: "attention" or a recurrence kind (``mixers.KINDS``).
        n_heads, n_layers: as at init.  form, chunk_size: the recurrences' form.
    """
    V.instance("params", params, dict)
    missing = sorted({"emb", "W_out", "lnf_g", "lnf_b"} - set(params))
    if missing:
        raise ValueError(f"params: missing keys {missing} (see init_mqar_params)")
    if np.ndim(ids) != 2:
        raise ValueError(f"ids must be (B, N) token ids, got shape {np.shape(ids)}")
    options = {
        "kind": mixer,
        "n_heads": n_heads,
        "form": form,
        "chunk_size": chunk_size,
    }
    x, ce = embedding_forward(ids, params["emb"])
    layers = []
    for l in range(V.positive_int("n_layers", n_layers)):
        x, c = _layer_forward(x, params, f"l{l}.", options)
        layers.append(c)
    h, cf = layernorm_forward(x, params["lnf_g"], params["lnf_b"])
    if mask is not None:
        mask = _check_mask(mask, ids)
        h = h[mask]  # (Q, D)
    logits, ch = linear_forward(h, params["W_out"])
    return logits, MQARCache(ce, layers, cf, ch, tuple(params), mask)


def _check_mask(mask, ids):
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array, got {type(mask).__name__}")
    if mask.shape != np.shape(ids):
        raise ValueError(f"mask{mask.shape} must have the shape of ids{np.shape(ids)}")
    return mask


def _layer_backward(dx, caches, pre, grads):
    c1, cm, c2, cw1, cg, cw2 = caches
    da, grads[pre + "W2"], grads[pre + "b2"] = linear_backward(dx, cw2)
    dh, grads[pre + "W1"], grads[pre + "b1"] = linear_backward(
        gelu_backward(da, cg), cw1
    )
    dh, grads[pre + "ln2_g"], grads[pre + "ln2_b"] = layernorm_backward(dh, c2)
    dx = dx + dh  # forward: x = x + mlp(LN(x))
    dm, dmix = mixer_backward(dx, cm)
    grads.update({pre + "mix." + k: g for k, g in dmix.items()})
    dh, grads[pre + "ln1_g"], grads[pre + "ln1_b"] = layernorm_backward(dm, c1)
    return dx + dh  # forward: x = x + mixer(LN(x))


def mqar_model_backward(dout, cache):
    """grads (the params' keys) of mqar_model_forward; ids get no gradient."""
    grads = {}
    dh, grads["W_out"], _ = linear_backward(dout, cache.head)
    if cache.mask is not None:  # forward: h = h[mask]
        rows, dh = dh, np.zeros(cache.mask.shape + dh.shape[-1:], dtype=dh.dtype)
        dh[cache.mask] = rows
    dx, grads["lnf_g"], grads["lnf_b"] = layernorm_backward(dh, cache.lnf)
    for l in reversed(range(len(cache.layers))):
        dx = _layer_backward(dx, cache.layers[l], f"l{l}.", grads)
    grads["emb"] = embedding_backward(dx, cache.emb)
    return {k: grads[k] for k in cache.keys}


def masked_cross_entropy(logits, targets, mask):
    """(mean loss over the masked positions, dlogits, accuracy there).

    ``logits`` is (B, N, V), or already the (Q, V) rows at the mask (the model's
    ``mask`` argument); only those rows carry a loss.
    """
    logits, targets, mask = _check_loss_args(logits, targets, mask)
    t = targets[mask]  # (Q,) the values to recall
    rows = logits if logits.ndim == 2 else logits[mask]  # (Q, V)
    z = rows - rows.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log-softmax
    count, picked = max(len(t), 1), np.arange(len(t))
    loss = -float(logp[picked, t].sum()) / count
    drows = np.exp(logp)  # d(-log p_target)/dz = softmax - onehot
    drows[picked, t] -= 1.0
    drows /= count
    if logits.ndim == 2:
        return loss, drows, float((logp.argmax(axis=-1) == t).sum()) / count
    dlogits = np.zeros_like(logits)
    dlogits[mask] = drows
    return loss, dlogits, float((logp.argmax(axis=-1) == t).sum()) / count


def _check_loss_args(logits, targets, mask):
    """Validated logits (B, N, V) or (Q, V), targets (B, N) in [0, V), mask (B, N)."""
    logits = V.float_array("logits", logits)
    if logits.ndim not in (2, 3) or logits.shape[-1] == 0:
        raise ValueError(
            f"logits must be (B, N, V) or (Q, V) with V >= 1, got shape {logits.shape}"
        )
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        kind = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"mask must be a boolean (B, N) array, got {kind}")
    targets = V.int_array("targets", targets, ndim=mask.ndim)
    if mask.ndim != 2 or targets.shape != mask.shape:
        raise ValueError(
            f"targets{targets.shape} and mask{mask.shape} must share one (B, N) shape"
        )
    rows = int(mask.sum()) if logits.ndim == 2 else None
    if logits.ndim == 3 and logits.shape[:2] != mask.shape:
        raise ValueError(f"logits{logits.shape} must be (B, N, V) for mask{mask.shape}")
    if logits.ndim == 2 and logits.shape[0] != rows:
        raise ValueError(
            f"logits{logits.shape} must be (Q, V) with Q = {rows}, the True entries "
            "of mask"
        )
    V.int_array("targets[mask]", targets[mask], lo=0, hi=logits.shape[-1])
    return logits, targets, mask

"""The gates of each mixer, computed from the convolved input h (B, N, D).

    gla:             log_alpha = logsigmoid(h W_a + b_a) / 16        (B, H, N, d)
    mamba2:          dt = softplus(h W_dt + b_dt),  log_alpha = -exp(A_log) dt,
                     and the values are scaled by dt (Mamba-2's dt x)  (B, H, N)
    deltanet:        beta = sigmoid(h W_b + b_b)                      (B, H, N)
    gated_deltanet:  beta as DeltaNet, log_alpha as Mamba-2 (no dt x)

as in fla's GLA (gate_logit_normalizer 16), Mamba-2 / Gated DeltaNet (A_log, dt_bias)
and DeltaNet (sigmoid beta) layers; linear attention and retention have no learned
gate (retention's decays are RetNet's fixed 1 - 2^(-5 - h)).
"""

import numpy as np

from .. import validate as V
from ..multihead import merge_heads, split_heads

GLA_NORMALISER = 16.0
DT_RANGE = (1e-3, 1e-1)  # Mamba's initial dt, log-uniform
A_RANGE = (1.0, 16.0)  # initial A = exp(A_log), uniform
GATE_KEYS = {
    "attention": (),
    "linear_attn": (),
    "retention": (),
    "gla": ("W_a", "b_a"),
    "mamba2": ("W_dt", "b_dt", "A_log"),
    "deltanet": ("W_b", "b_b"),
    "gated_deltanet": ("W_b", "b_b", "W_dt", "b_dt", "A_log"),
}


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # never overflows


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z), stable


def init_gate_params(D, H, *, kind, rng, dtype=np.float64):
    """Gate parameters of a mixer of ``kind``: GATE_KEYS[kind], of ``dtype``."""
    V.choice("kind", kind, GATE_KEYS)
    D, H = V.positive_int("D", D), V.positive_int("H", H)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    keys, p = GATE_KEYS[kind], {}
    if "W_a" in keys:
        p["W_a"], p["b_a"] = rng.standard_normal((D, D)) / np.sqrt(D), np.zeros(D)
    if "W_b" in keys:
        p["W_b"], p["b_b"] = rng.standard_normal((D, H)) / np.sqrt(D), np.zeros(H)
    if "W_dt" in keys:
        dt = np.exp(rng.uniform(*np.log(DT_RANGE), H))
        p["W_dt"] = rng.standard_normal((D, H)) / np.sqrt(D)
        p["b_dt"] = dt + np.log(-np.expm1(-dt))  # inverse softplus
        p["A_log"] = np.log(rng.uniform(*A_RANGE, H))
    return {name: x.astype(dtype) for name, x in p.items()}


def gates_forward(h, params, *, kind, n_heads):
    """({name: gate array}, cache) for the recurrence of ``kind`` (docstring)."""
    gates, cache = {}, {"h": h, "params": params, "kind": kind}
    if kind == "gla":
        z = h @ params["W_a"] + params["b_a"]  # (B, N, D)
        gates["log_alpha"] = split_heads(-_softplus(-z) / GLA_NORMALISER, n_heads)
        cache["z_a"] = z
    if kind in ("mamba2", "gated_deltanet"):
        z = h @ params["W_dt"] + params["b_dt"]  # (B, N, H)
        dt = _softplus(z)
        gates["log_alpha"] = np.swapaxes(-np.exp(params["A_log"]) * dt, 1, 2)
        cache["z_dt"], cache["dt"] = z, dt
        if kind == "mamba2":
            gates["v_scale"] = np.swapaxes(dt, 1, 2)[..., None]  # (B, H, N, 1)
    if kind in ("deltanet", "gated_deltanet"):
        z = h @ params["W_b"] + params["b_b"]  # (B, N, H)
        gates["beta"] = np.swapaxes(_sigmoid(z), 1, 2)  # (B, H, N)
        cache["z_b"] = z
    return gates, cache


def _linear_grads(dz, h, W, b):
    """dh, dW, db of z = h W + b."""
    dz2 = dz.reshape(-1, dz.shape[-1])
    return dz @ W.T, h.reshape(-1, h.shape[-1]).T @ dz2, dz2.sum(axis=0)


def gates_backward(dout, cache):
    """dh (B, N, D) and the gate parameters' gradients; dout is {name: dgate}, the
    gradients of gates_forward's {name: gate array}."""
    h, p, kind = cache["h"], cache["params"], cache["kind"]
    dh, grads = np.zeros_like(h), {}
    if kind == "gla":  # d logsigmoid(z) / dz = sigmoid(-z)
        dz = merge_heads(dout["log_alpha"]) * _sigmoid(-cache["z_a"]) / GLA_NORMALISER
        dh_a, grads["W_a"], grads["b_a"] = _linear_grads(dz, h, p["W_a"], p["b_a"])
        dh += dh_a
    if kind in ("mamba2", "gated_deltanet"):
        A, dt = np.exp(p["A_log"]), cache["dt"]
        dla = np.swapaxes(dout["log_alpha"], 1, 2)  # (B, N, H) forward: la = -A dt
        ddt = -A * dla
        if kind == "mamba2":
            ddt = ddt + np.swapaxes(dout["v_scale"][..., 0], 1, 2)
        grads["A_log"] = np.sum(-A * dt * dla, axis=(0, 1))  # dA/dA_log = A
        dz = ddt * _sigmoid(cache["z_dt"])  # softplus' = sigmoid
        dh_dt, grads["W_dt"], grads["b_dt"] = _linear_grads(dz, h, p["W_dt"], p["b_dt"])
        dh += dh_dt
    if kind in ("deltanet", "gated_deltanet"):
        s = _sigmoid(cache["z_b"])
        dz = np.swapaxes(dout["beta"], 1, 2) * s * (1.0 - s)
        dh_b, grads["W_b"], grads["b_b"] = _linear_grads(dz, h, p["W_b"], p["b_b"])
        dh += dh_b
    return dh, grads

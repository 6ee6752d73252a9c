"""In-Place Test-Time Training (Feng et al. 2026): a gated MLP whose down projection
is a fast weight, updated chunk by chunk towards a next-token-aligned target.

    Z     = silu(X W_gate) o (X W_up)                    (T, F) the MLP's hidden layer
    V_hat = conv(Tgt) W_target                           (T, D) the target values
    dW_i  = lr Z_i^T V_hat_i                             (F, D) chunk i's update
    O_i   = Z_i (W_down + sum_{j<i} dW_j)                apply, then update

Tgt is the MLP's input X unless a separate ``target`` (e.g. the token embeddings) is
given. conv (``chunk_conv``) is depthwise with kernel K (5 in the paper's code) and
never crosses a chunk boundary: position c mixes Tgt rows c-2..c+2 of its own chunk,
so the target at c can hold the next tokens. That is allowed because dW_i only
reaches later chunks. dW_i is one gradient step on L_i(W) = -sum_c <V_hat_c, Z_c W>,
whose gradient does not depend on W: the updates commute and add up (prefix sums).

Forms (same numbers): "parallel" (all dW at once, exclusive cumsum over chunks),
"sequential" (loop: output with the current W, then add the chunk's dW), and
"linear_attention" (O = Z W_down + lr (M o Z Z^T) V_hat, M the block-strictly-causal
chunk mask). The context-parallel form is in ``inplace_ttt_parallel``. A zero conv (its
initialisation) gives V_hat = 0: exactly the plain gated MLP.

Layouts: W_down is (F, D) and used as Z @ W_down (the paper's code stores its
transpose); conv is (K, D), row k weighting offset k - K // 2. Call:
``out, cache = inplace_ttt_forward(x, params, target=None, lengths=None, *,
chunk_size, lr, form)``, ``dx, dtarget, grads = inplace_ttt_backward(dout, cache)``
(dtarget is None when no target was given; lengths are ids, with no gradient).
Shape legend: B batch, T positions, C chunk size, n chunks, D model width, F hidden.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .chunk_conv import (
    chunk_conv_backward,
    chunk_conv_forward,
    to_chunks,
    valid_rows,
)

PARAM_KEYS = ("W_gate", "W_up", "W_down", "W_target", "conv")


def init_inplace_ttt_params(d_model, d_hidden, *, rng, kernel_size=5, dtype=np.float64):
    """Gate, up, down ~ N(0, 1/fan_in); W_target = I; conv = 0 (the drop-in init)."""
    D, F = V.positive_int("d_model", d_model), V.positive_int("d_hidden", d_hidden)
    K = V.positive_int("kernel_size", kernel_size)
    if K % 2 == 0:
        raise ValueError(f"kernel_size must be odd (centred), got {K}")
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    normal = lambda n_in, n_out: rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
    params = {"W_gate": normal(D, F), "W_up": normal(D, F), "W_down": normal(F, D)}
    params.update(W_target=np.eye(D), conv=np.zeros((K, D)))
    return {k: v.astype(dtype) for k, v in params.items()}


def _widths(params):
    """(F, K) read from params, or (0, 1) if missing (check_params reports it)."""
    if not isinstance(params, dict):
        return 0, 1
    F = np.shape(params.get("W_up", np.zeros((0, 0))))[-1:] or (0,)
    K = np.shape(params.get("conv", np.zeros((1, 0))))[:1] or (1,)
    return F[0], K[0]


def check_inputs(x, params, target, lengths, chunk_size, lr):
    """Validate the In-Place TTT inputs; return them as arrays."""
    x = V.float_array("x", x, ndim=3)
    B, T, D = x.shape
    if T == 0 or D == 0:
        raise ValueError(f"x{x.shape} needs T >= 1 positions and a width D >= 1")
    F, K = _widths(params)
    shapes = {"W_gate": (D, F), "W_up": (D, F), "W_down": (F, D), "W_target": (D, D)}
    params = V.check_params(params, {**shapes, "conv": (K, D)}, dtype=x.dtype)
    if F == 0 or K % 2 == 0:
        raise ValueError(
            f"params need a hidden width F >= 1 (W_up{params['W_up'].shape}) and an "
            f"odd kernel size (conv{params['conv'].shape})"
        )
    if target is not None:
        target = V.float_array("target", target, ndim=3)
        V.same_shape(x=x, target=target)
        V.same_dtype(x=x, target=target)
    if lengths is not None:
        lengths = V.int_array("lengths", lengths, ndim=1, lo=0, hi=T + 1)
        if lengths.shape != (B,):
            raise ValueError(f"lengths{lengths.shape} must have shape (B,) = ({B},)")
    V.positive_int("chunk_size", chunk_size)
    return x, params, target, lengths, V.real("lr", lr, lo=0.0)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # never overflows, unlike 1 / (1 + e^-a)


def gated_mlp(x, params):
    """The plain gated MLP, silu(x W_gate) o (x W_up) W_down: (..., D) -> (..., D)."""
    g = x @ params["W_gate"]  # (..., F)
    return (g * _sigmoid(g) * (x @ params["W_up"])) @ params["W_down"]


def hidden_and_target(x, p, target, keep, C):
    """Z (B, n, C, F) and V_hat (B, n, C, D), padding rows zeroed, plus a cache."""
    tgt = x if target is None else target
    x0 = np.where(keep > 0, x, 0.0)  # np.where, not *: garbage (even NaN) in padding
    t0 = np.where(keep > 0, tgt, 0.0)  # rows never reaches a valid output
    g, u = x0 @ p["W_gate"], x0 @ p["W_up"]  # (B, T, F)
    Z = to_chunks(g * _sigmoid(g) * u, C)  # (B, n, C, F) zero on padding rows
    tc, conv_cache = chunk_conv_forward(to_chunks(t0, C), p["conv"])  # (B, n, C, D)
    V_hat = tc @ p["W_target"]  # (B, n, C, D)
    return Z, V_hat, (x0, g, u, keep, tc, conv_cache, target is not None)


def chunk_updates(Z, V_hat, lr):
    """dW_i = lr Z_i^T V_hat_i for every chunk: (B, n, F, D)."""
    return lr * np.swapaxes(Z, -1, -2) @ V_hat


def cumulative_weights(W_down, delta):
    """W^(i) = W_down + sum_{j<i} dW_j (exclusive prefix sum): (B, n, F, D).

    The sum is built from zeros rather than as cumsum - delta, so chunk i's weights
    hold exactly the bits of dW_0..dW_{i-1} and nothing of dW_i.
    """
    prefix = np.cumsum(delta[:, :-1], axis=1)  # (B, n - 1, F, D)
    return W_down + np.concatenate([np.zeros_like(delta[:, :1]), prefix], axis=1)


class InPlaceTTTCache(NamedTuple):
    params: dict
    Z: np.ndarray  # (B, n, C, F)
    V_hat: np.ndarray  # (B, n, C, D)
    W_chunk: np.ndarray  # (B, n, F, D) the down projection each chunk used
    delta: np.ndarray  # (B, n, F, D) each chunk's update dW_i
    hidden: tuple  # what hidden_and_target saved
    lr: float
    T: int


def _apply(Z, delta, W_down, form):
    """Outputs (B, n, C, D) and per-chunk weights, in parallel or sequential form."""
    if form == "parallel":
        W_chunk = cumulative_weights(W_down, delta)
        return Z @ W_chunk, W_chunk
    W, outs, used = W_down, [], []
    for i in range(Z.shape[1]):  # apply, then update
        W = np.broadcast_to(W, delta[:, i].shape)
        outs.append(Z[:, i] @ W)
        used.append(W)
        W = W + delta[:, i]
    return np.stack(outs, axis=1), np.stack(used, axis=1)


def inplace_ttt_forward(
    x, params, target=None, lengths=None, *, chunk_size, lr, form="parallel"
):
    """The In-Place TTT gated MLP over a sequence (module docstring).

    Args:
        x: (B, T, D) the MLP's input.
        params: W_gate, W_up (D, F), W_down (F, D), W_target (D, D), conv (K, D).
        target: (B, T, D) target source (differentiated), default x.
        lengths: (B,) integer valid lengths in [0, T]; rows at t >= length are
            padding.
        chunk_size: C >= 1, tokens per fast-weight update.
        lr: the fast-weight learning rate (ttt_lr), finite and >= 0.
        form: "parallel", "sequential" or "linear_attention".

    Returns:
        out (B, T, D) (zero on padding rows), cache (``cache.delta`` is every dW_i).
    """
    x, p, target, lengths, lr = check_inputs(x, params, target, lengths, chunk_size, lr)
    V.choice("form", form, ("parallel", "sequential", "linear_attention"))
    B, T, D = x.shape
    keep = valid_rows(B, T, lengths, x.dtype)
    Z, V_hat, hidden = hidden_and_target(x, p, target, keep, chunk_size)
    delta = chunk_updates(Z, V_hat, lr)  # (B, n, F, D)
    if form == "linear_attention":
        out = linear_attention_form(Z, V_hat, p["W_down"], lr)
        W_chunk = cumulative_weights(p["W_down"], delta)
    else:
        out, W_chunk = _apply(Z, delta, p["W_down"], form)
    out = out.reshape(B, -1, D)[:, :T]
    return out, InPlaceTTTCache(p, Z, V_hat, W_chunk, delta, hidden, lr, T)


def linear_attention_form(Z, V_hat, W_down, lr):
    """O = Z W_down + lr (M o Z Z^T) V_hat with M[s, t] = chunk(t) < chunk(s)."""
    B, n, Cn, F = Z.shape
    Zf, Vf = Z.reshape(B, n * Cn, F), V_hat.reshape(B, n * Cn, -1)  # (B, nC, .)
    chunk = np.arange(n * Cn) // Cn
    M = chunk[None, :] < chunk[:, None]  # (nC, nC) strictly earlier chunks only
    scores = np.where(M, Zf @ np.swapaxes(Zf, 1, 2), 0.0)  # (B, nC, nC)
    return (Zf @ W_down + lr * scores @ Vf).reshape(B, n, Cn, -1)


def _hidden_backward(dZ, dtc, hidden, p, T):
    """From dZ (B, n, C, F) and d(conv output) to dx, dtarget and the slow weights."""
    x0, g, u, keep, tc, conv_cache, has_target = hidden
    B, _, _, F = dZ.shape
    D = x0.shape[-1]
    dZ = dZ.reshape(B, -1, F)[:, :T]  # (B, T, F) drop the chunk padding
    sig = _sigmoid(g)
    dg = dZ * u * sig * (1.0 + g * (1.0 - sig))  # forward: Z = silu(g) u
    du = dZ * g * sig
    dx = dg @ p["W_gate"].T + du @ p["W_up"].T  # (B, T, D)
    dt, dconv = chunk_conv_backward(dtc, conv_cache)  # (B, n, C, D)
    dt = np.where(keep > 0, dt.reshape(B, -1, D)[:, :T], 0.0)
    grads = {
        "W_gate": x0.reshape(-1, D).T @ dg.reshape(-1, F),
        "W_up": x0.reshape(-1, D).T @ du.reshape(-1, F),
        "W_target": tc.reshape(-1, D).T,  # finished by the caller (times dV_hat)
        "conv": dconv,
    }
    dx = np.where(keep > 0, dx, 0.0)
    return (dx, dt, grads) if has_target else (dx + dt, None, grads)


def inplace_ttt_backward(dout, cache):
    """Gradients of inplace_ttt_forward (any form; they compute the same function).

    Args:
        dout: (B, T, D) upstream gradient.
        cache: from ``inplace_ttt_forward``.

    Returns:
        dx (B, T, D), dtarget (B, T, D) or None when the target was x, grads keyed
        like params.
    """
    p, Z, V_hat, W_chunk, delta, hidden, lr, T = cache
    D = V_hat.shape[-1]
    V.grad_shape("dout", dout, (Z.shape[0], T, D))
    dO = to_chunks(dout, Z.shape[2])  # (B, n, C, D)
    dZ = dO @ np.swapaxes(W_chunk, -1, -2)  # forward: O_i = Z_i W^(i)
    dW_chunk = np.swapaxes(Z, -1, -2) @ dO  # (B, n, F, D)
    # forward: W^(i) = W_down + sum_{j<i} dW_j  ->  d(dW_j) = sum_{i>j} d W^(i)
    suffix = np.cumsum(dW_chunk[:, ::-1], axis=1)[:, ::-1]  # inclusive suffix sums
    ddelta = np.concatenate([suffix[:, 1:], np.zeros_like(suffix[:, :1])], axis=1)
    dZ += lr * V_hat @ np.swapaxes(ddelta, -1, -2)  # forward: dW_j = lr Z_j^T V_j
    dV = lr * Z @ ddelta  # (B, n, C, D)
    dtc = dV @ p["W_target"].T  # forward: V_hat = conv(t) W_target
    dx, dtarget, grads = _hidden_backward(dZ, dtc, hidden, p, T)
    grads["W_target"] = grads["W_target"] @ dV.reshape(-1, D)
    grads["W_down"] = dW_chunk.sum(axis=(0, 1))
    return dx, dtarget, {k: grads[k] for k in PARAM_KEYS}

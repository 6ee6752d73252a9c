"""TTT-Linear decoding: one token at a time, in primal form.

Generation sees one token per call, so the mini-batch is built up across calls: the
state keeps the weights (W_0, b_0) where the current mini-batch started and the
running sums of the rate-weighted gradients taken there,

    acc_W = sum_{j<=i} eta_j x_K,j^T g_j,     acc_b = sum_{j<=i} eta_j g_j,
    W_i = W_0 - s_i acc_W,   b_i = b_0 - s_i acc_b      (s_i = 1, or 1/i)

and when the mini-batch is full, (W_m, b_m) becomes the next start. Feeding a
sequence through ``ttt_linear_decode_step`` token by token reproduces
``ttt_linear_forward`` on the whole sequence (prefill == decode).

Shape legend: B batch, F inner width.
"""

import numpy as np

from .. import validate as V
from ..layers import layernorm_forward
from .ttt_inner import ln_l2_grad_forward


def ttt_linear_decode_init(params, batch):
    """A fresh decoding state for ``batch`` sequences: every mini-batch sum empty."""
    B = V.positive_int("batch", batch)
    W, b = params["W"], params["b"]
    return {
        "W": np.broadcast_to(W, (B,) + W.shape).copy(),  # (B, F, F) start of batch
        "b": np.broadcast_to(b, (B,) + b.shape).copy(),  # (B, F)
        "acc_W": np.zeros((B,) + W.shape, dtype=W.dtype),  # (B, F, F)
        "acc_b": np.zeros((B,) + b.shape, dtype=b.dtype),  # (B, F)
        "pos": 0,  # tokens already in the current mini-batch
    }


def ttt_linear_decode_step(
    state, x_k, x_v, x_q, eta, params, *, mini_batch=16, position_scale=False, eps=1e-6
):
    """Read one token per sequence: take its inner gradient, then produce its output.

    Args:
        state: from ``ttt_linear_decode_init`` or the previous step (not modified).
        x_k, x_v, x_q: (B, F) this token's views.
        eta: (B,) or a float, this token's inner learning rate.
        params: W, b, gamma, beta as in ``ttt_linear_forward``.

    Returns:
        z (B, F), the new state.
    """
    x_k, x_v, x_q = (
        V.float_array(n, a, ndim=2)
        for n, a in zip(("x_k", "x_v", "x_q"), (x_k, x_v, x_q), strict=True)
    )
    if x_k.shape != state["b"].shape or not x_v.shape == x_q.shape == x_k.shape:
        raise ValueError(
            f"x_k{x_k.shape}, x_v{x_v.shape}, x_q{x_q.shape} must all be "
            f"(B, F) = {state['b'].shape}"
        )
    eta = np.broadcast_to(np.asarray(eta, dtype=x_k.dtype), x_k.shape[:1])[:, None]
    position_scale = V.bool_arg("position_scale", position_scale)
    W0, b0 = state["W"], state["b"]
    Z0 = (x_k[:, None, :] @ W0)[:, 0] + b0  # (B, F) at the start-of-batch weights
    G, _ = ln_l2_grad_forward(Z0, x_v - x_k, params["gamma"], params["beta"], eps=eps)
    acc_W = state["acc_W"] + (eta * x_k)[:, :, None] * G[:, None, :]  # (B, F, F)
    acc_b = state["acc_b"] + eta * G  # (B, F)
    pos = state["pos"] + 1
    s = 1.0 / pos if position_scale else 1.0
    W, b = W0 - s * acc_W, b0 - s * acc_b  # this token's weights
    Zbar = (x_q[:, None, :] @ W)[:, 0] + b  # (B, F)
    z = x_q + layernorm_forward(Zbar, params["gamma"], params["beta"], eps=eps)[0]
    if pos == mini_batch:  # mini-batch complete: its last weights start the next one
        new = {"W": W, "b": b, "acc_W": np.zeros_like(acc_W), "pos": 0}
        return z, {**new, "acc_b": np.zeros_like(acc_b)}
    return z, {"W": W0, "b": b0, "acc_W": acc_W, "acc_b": acc_b, "pos": pos}

"""TTT-Linear decoding: one token at a time, in primal form.

Generation sees one token per call, so the mini-batch is built up across calls: the
state keeps the weights (W_0, b_0) where the current mini-batch started and the
running sums of the rate-weighted gradients taken there,

    acc_W = sum_{j<=i} eta_j x_K,j^T g_j,     acc_b = sum_{j<=i} eta_j g_j,
    W_i = W_0 - s_i acc_W,   b_i = b_0 - s_i acc_b      (s_i = 1, or 1/i)

and when the mini-batch is full, (W_m, b_m) becomes the next start. Feeding a
sequence through ``ttt_linear_decode_step(x_q, x_k, x_v, eta, params, state, ...)``
token by token reproduces ``ttt_linear_forward`` on the whole sequence (prefill ==
decode). The state is a dict; a step returns a new one and never changes its input.

Shape legend: B batch, F inner width.
"""

import numpy as np

from .. import validate as V
from ..layers import layernorm_forward
from .ttt_inner import ln_l2_grad_forward
from .ttt_linear import check_eta, check_params

STATE_KEYS = ("W", "b", "acc_W", "acc_b", "pos")


def ttt_linear_decode_init(params, *, batch):
    """A fresh decoding state for ``batch`` sequences: every mini-batch sum empty."""
    B = V.positive_int("batch", batch)
    V.check_keys(params, ("W", "b", "gamma", "beta"))
    W = V.float_array("params['W']", params["W"], ndim=2)
    if W.shape[0] == 0:
        raise ValueError(f"params['W']{W.shape} needs a width F >= 1")
    p = check_params(params, W.shape[0], W.dtype)
    W, b = p["W"], p["b"]
    return {
        "W": np.broadcast_to(W, (B,) + W.shape).copy(),  # (B, F, F) start of batch
        "b": np.broadcast_to(b, (B,) + b.shape).copy(),  # (B, F)
        "acc_W": np.zeros((B,) + W.shape, dtype=W.dtype),  # (B, F, F)
        "acc_b": np.zeros((B,) + b.shape, dtype=b.dtype),  # (B, F)
        "pos": 0,  # tokens already in the current mini-batch
    }


def _check_state(state, mini_batch):
    V.check_keys(state, STATE_KEYS, "state")
    b = V.float_array("state['b']", state["b"], ndim=2)
    B, F = b.shape
    shapes = {"W": (B, F, F), "b": (B, F), "acc_W": (B, F, F), "acc_b": (B, F)}
    V.check_params({k: state[k] for k in shapes}, shapes, name="state", dtype=b.dtype)
    pos = V.positive_int("state['pos']", state["pos"], allow_zero=True)
    if pos >= mini_batch:
        raise ValueError(f"state['pos'] = {pos} must be < mini_batch = {mini_batch}")
    return B, F, b.dtype


def _check_step(x_q, x_k, x_v, eta, params, state, mini_batch, eps):
    V.positive_int("mini_batch", mini_batch)
    B, F, dtype = _check_state(state, mini_batch)
    views = {"x_q": x_q, "x_k": x_k, "x_v": x_v}
    views = {n: V.float_array(n, a, ndim=2) for n, a in views.items()}
    for name, a in views.items():
        if a.shape != (B, F):
            raise ValueError(f"{name}{a.shape} must be (B, F) = {(B, F)} of the state")
    V.same_dtype(state=state["b"], **views)
    eta = check_eta(eta, (B,), dtype)[:, None]  # (B, 1)
    V.real("eps", eps, lo=0.0, lo_open=True)
    return (*views.values(), eta, check_params(params, F, dtype))


def ttt_linear_decode_step(
    x_q, x_k, x_v, eta, params, state, *, mini_batch=16, position_scale=False, eps=1e-6
):
    """Read one token per sequence: take its inner gradient, then produce its output.

    Args:
        x_q, x_k, x_v: (B, F) this token's query, key and value views.
        eta: (B,) or a number >= 0, this token's inner learning rate.
        params: W, b, gamma, beta as in ``ttt_linear_forward``.
        state: from ``ttt_linear_decode_init`` or the previous step (not modified).
        mini_batch, position_scale, eps: as in ``ttt_linear_forward``.

    Returns:
        z (B, F), the new state.
    """
    position_scale = V.bool_arg("position_scale", position_scale)
    x_q, x_k, x_v, eta, p = _check_step(
        x_q, x_k, x_v, eta, params, state, mini_batch, eps
    )
    W0, b0 = state["W"], state["b"]
    Z0 = (x_k[:, None, :] @ W0)[:, 0] + b0  # (B, F) at the start-of-batch weights
    G, _ = ln_l2_grad_forward(Z0, x_v - x_k, p["gamma"], p["beta"], eps=eps)
    acc_W = state["acc_W"] + (eta * x_k)[:, :, None] * G[:, None, :]  # (B, F, F)
    acc_b = state["acc_b"] + eta * G  # (B, F)
    pos = state["pos"] + 1
    s = 1.0 / pos if position_scale else 1.0
    W, b = W0 - s * acc_W, b0 - s * acc_b  # this token's weights
    Zbar = (x_q[:, None, :] @ W)[:, 0] + b  # (B, F)
    z = x_q + layernorm_forward(Zbar, p["gamma"], p["beta"], eps=eps)[0]
    if pos == mini_batch:  # mini-batch complete: its last weights start the next one
        new = {"W": W, "b": b, "acc_W": np.zeros_like(acc_W), "pos": 0}
        return z, {**new, "acc_b": np.zeros_like(acc_b)}
    return z, {"W": W0, "b": b0, "acc_W": acc_W, "acc_b": acc_b, "pos": pos}

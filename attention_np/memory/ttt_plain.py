"""TTT with the plainest inner model: a linear map, a squared error, one step a token.

TTT-Linear's recipe (``ttt_linear``) with every extra removed: the inner model is
f(x; W) = x W (no bias, no layer norm, no residual), its loss on token t is

    l(W; t) = 1/2 || x_K,t W - x_V,t ||^2,   grad_W l = x_K,t^T (x_K,t W - x_V,t),

and every token takes one gradient step at the weights the previous token left:

    W_t = W_{t-1} - eta_t grad_W l(W_{t-1}; t),      z_t = x_Q,t W_t.

Written out, W_t = W_{t-1} + eta_t x_K,t^T (x_V,t - x_K,t W_{t-1}): the delta rule
(``delta_rule``) with S = W, (q, k, v) = (x_Q, x_K, x_V) and beta_t = eta_t. This
module computes it the TTT way (a loss, its gradient, a step), so the two can be
compared; its gradients are the delta rule's (``delta_rule_backward``), so it has
no backward of its own.

Call: ``z, cache = ttt_plain_forward(x_q, x_k, x_v, eta, initial_state=None)``;
``cache.final_state`` is W_N and ``cache.losses`` the loss of every token at the
weights it was learned from (before its own step).

Shape legend: B batch, N positions, F width (W is (B, F, F)).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from .ttt_linear import check_eta


def _check_lkv(W, x_k, x_v):
    W = V.float_array("W", W, min_ndim=2)
    x_k = V.float_array("x_k", x_k, ndim=W.ndim - 1)
    x_v = V.float_array("x_v", x_v, ndim=W.ndim - 1)
    want_k, want_v = W.shape[:-2] + W.shape[-2:-1], W.shape[:-2] + W.shape[-1:]
    if x_k.shape != want_k or x_v.shape != want_v:
        raise ValueError(
            f"x_k{x_k.shape} and x_v{x_v.shape} must be (..., F_in) = {want_k} and "
            f"(..., F_out) = {want_v} for W{W.shape}"
        )
    V.same_dtype(W=W, x_k=x_k, x_v=x_v)
    return W, x_k, x_v


def plain_l2_loss(W, x_k, x_v):
    """1/2 ||x_k W - x_v||^2 for one token per batch row.

    Args:
        W: (..., F_in, F_out) the inner model's weights.
        x_k: (..., F_in) its input; x_v: (..., F_out) its target.

    Returns:
        (...) the losses.
    """
    W, x_k, x_v = _check_lkv(W, x_k, x_v)
    r = (x_k[..., None, :] @ W)[..., 0, :] - x_v  # (..., F_out) residual
    return 0.5 * np.sum(r * r, axis=-1)


def plain_l2_grad(W, x_k, x_v):
    """grad_W of ``plain_l2_loss``: x_k^T (x_k W - x_v), (..., F_in, F_out)."""
    W, x_k, x_v = _check_lkv(W, x_k, x_v)
    r = (x_k[..., None, :] @ W)[..., 0, :] - x_v  # (..., F_out) dl/d(x_k W)
    return x_k[..., :, None] * r[..., None, :]  # forward: l = 1/2 |x_k W - x_v|^2


class TTTPlainCache(NamedTuple):
    final_state: np.ndarray  # (B, F, F) W_N
    losses: np.ndarray  # (B, N) l(W_{t-1}; t), before token t's step


def ttt_plain_forward(x_q, x_k, x_v, eta, initial_state=None):
    """Online gradient descent on 1/2 ||x_K W - x_V||^2, one step per token.

    Args:
        x_q, x_k, x_v: (B, N, F) the query, key (input) and value (target) views.
        eta: (B, N) or a number >= 0, the inner learning rate of every token.
        initial_state: (B, F, F) W_0, default zeros.

    Returns:
        z (B, N, F) with z_t = x_Q,t W_t, cache (final_state, losses).
    """
    views = {"x_q": x_q, "x_k": x_k, "x_v": x_v}
    x_q, x_k, x_v = (V.float_array(n, a, ndim=3) for n, a in views.items())
    V.same_shape(x_q=x_q, x_k=x_k, x_v=x_v)
    V.same_dtype(x_q=x_q, x_k=x_k, x_v=x_v)
    B, N, F = x_q.shape
    eta = check_eta(eta, (B, N), x_q.dtype)  # (B, N)
    if initial_state is None:
        W = np.zeros((B, F, F), dtype=x_q.dtype)
    else:
        W = V.float_array("initial_state", initial_state, ndim=3).copy()
        if W.shape != (B, F, F):
            raise ValueError(f"initial_state{W.shape} must be (B, F, F) = {(B, F, F)}")
        V.same_dtype(x_q=x_q, initial_state=W)
    z, losses = np.empty_like(x_q), np.empty((B, N), dtype=x_q.dtype)
    for t in range(N):
        losses[:, t] = plain_l2_loss(W, x_k[:, t], x_v[:, t])
        W = W - eta[:, t, None, None] * plain_l2_grad(W, x_k[:, t], x_v[:, t])
        z[:, t] = (x_q[:, t, None, :] @ W)[:, 0]  # read with the updated weights
    return z, TTTPlainCache(W, losses)

"""TTT-Linear (Sun et al. 2024): a layer whose hidden state is the weight of a linear
model that is trained by gradient descent while the layer reads its input.

    inner model   f(x; W, b) = x + LN(x W + b)            (LN gain gamma, shift beta)
    inner loss    l(W, b; t) = 1/2 || LN(x_K,t W + b) - (x_V,t - x_K,t) ||^2
    output        z_t = x_Q,t + LN(x_Q,t W_t + b_t)

Mini-batch TTT with mini-batches of size m: every gradient in a mini-batch is taken
at the weights (W_0, b_0) where the mini-batch started; with g_j = dl/dZ at W_0
(``ttt_inner``) and E_ij = s_i eta_j (s_i = 1, or 1/i with ``position_scale`` as in
ttt-lm-pytorch), position i of the mini-batch uses

    W_i = W_0 - sum_{j<=i} E_ij x_K,j^T g_j,       b_i = b_0 - sum_{j<=i} E_ij g_j

and the next mini-batch starts from (W_m, b_m). m = 1 is online gradient descent.
primal form: build every W_i (m F^2 memory). dual form: never build them,
    Zbar = X_Q W_0 + b_0 - (E o tril(X_Q X_K^T) + tril(E)) G,
    W_m  = W_0 - (e o X_K)^T G,   b_m = b_0 - e^T G      (e = last row of E).
The backward is the outer loop: gradients of the outputs w.r.t. the three views, eta,
W_0, b_0, gamma and beta, through the inner gradient steps (``ln_l2_grad_backward``).

Call: ``z, cache = ttt_linear_forward(x_q, x_k, x_v, eta, params, *, mini_batch, form,
position_scale, eps)`` (queries first, as in attention; eta is a differentiable array
of rates, a number broadcasts) and ``dx_q, dx_k, dx_v, deta, grads =
ttt_linear_backward(dout, cache)``.

Shape legend: B batch, N positions, m mini-batch size, F inner width (one head).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import unbroadcast
from ..layers import layernorm_backward, layernorm_forward
from .ttt_inner import ln_l2_grad_backward, ln_l2_grad_forward


def init_ttt_linear_params(width, *, rng, std=0.02, dtype=np.float64):
    """W ~ N(0, std^2) (F, F), b = beta = 0, gamma = 1 (ttt-lm-pytorch's init)."""
    F = V.positive_int("width", width)
    V.rng_arg(rng)
    std = V.real("std", std, lo=0.0)
    dtype = V.dtype_arg(dtype)
    return {
        "W": (std * rng.standard_normal((F, F))).astype(dtype),
        "b": np.zeros(F, dtype=dtype),
        "gamma": np.ones(F, dtype=dtype),
        "beta": np.zeros(F, dtype=dtype),
    }


def check_params(params, F, dtype):
    """W (F, F), b, gamma, beta (F,) in the inputs' dtype."""
    shapes = {"W": (F, F), "b": (F,), "gamma": (F,), "beta": (F,)}
    return V.check_params(params, shapes, dtype=dtype)


def check_eta(eta, shape, dtype):
    """eta: a number or a float array >= 0 that broadcasts to ``shape``."""
    if isinstance(eta, (bool, np.bool_)):
        raise TypeError(f"eta must be a number or a float array, got {eta!r}")
    if isinstance(eta, (int, float, np.integer, np.floating)):
        eta = np.asarray(eta, dtype=dtype)  # a Python number takes the inputs' dtype
    eta = V.float_array("eta", eta)
    V.same_dtype(x_q=np.empty(0, dtype), eta=eta)
    V.values_in_range("eta", eta, lo=0.0)
    try:
        return np.broadcast_to(eta, shape)
    except ValueError:
        raise ValueError(f"eta{eta.shape} must broadcast to {shape}") from None


def _check(x_q, x_k, x_v, eta, params, mini_batch, eps):
    x_q = V.float_array("x_q", x_q, ndim=3)
    x_k = V.float_array("x_k", x_k, ndim=3)
    x_v = V.float_array("x_v", x_v, ndim=3)
    V.same_shape(x_q=x_q, x_k=x_k, x_v=x_v)
    V.same_dtype(x_q=x_q, x_k=x_k, x_v=x_v)
    if 0 in x_q.shape:
        raise ValueError(f"x_q{x_q.shape} needs B, N, F >= 1")
    eta_full = check_eta(eta, x_q.shape[:2], x_q.dtype)  # (B, N) one rate per token
    params = check_params(params, x_q.shape[-1], x_q.dtype)
    V.positive_int("mini_batch", mini_batch)
    V.real("eps", eps, lo=0.0, lo_open=True)
    return x_q, x_k, x_v, eta_full, np.shape(eta), params


def _scales(m, position_scale, dtype):
    """s_i: 1 / i (i = 1..m) with position_scale, else 1."""
    i = np.arange(1, m + 1, dtype=dtype)
    return 1.0 / i if position_scale else np.ones_like(i)


def _inner_grads(xk, xv, W, b, p, eps):
    """G = dl/dZ at the start-of-batch weights, for every token of a mini-batch."""
    Z0 = xk @ W + b[:, None, :]  # (B, m, F)
    return ln_l2_grad_forward(Z0, xv - xk, p["gamma"], p["beta"], eps=eps)


def _dual(xk, xv, xq, eta, W, b, p, s, eps):
    """One mini-batch in dual form: Zbar (B, m, F), the next W and b, a cache."""
    G, gcache = _inner_grads(xk, xv, W, b, p, eps)  # (B, m, F)
    E = np.tril(s[:, None] * eta[:, None, :])  # (B, m, m) E_ij = s_i eta_j, j <= i
    M = E * (xq @ np.swapaxes(xk, 1, 2)) + E  # (B, m, m)
    Zbar = xq @ W + b[:, None, :] - M @ G  # (B, m, F)
    e = E[:, -1, :, None]  # (B, m, 1) the last row of E
    W_next = W - np.swapaxes(e * xk, 1, 2) @ G  # (B, F, F)
    b_next = b - np.sum(e * G, axis=1)  # (B, F)
    return Zbar, W_next, b_next, (xk, xq, eta, s, W, E, M, G, gcache)


def _primal(xk, xv, xq, eta, W, b, p, s, eps):
    """One mini-batch in primal form: build W_i for every position i."""
    G, gcache = _inner_grads(xk, xv, W, b, p, eps)  # (B, m, F)
    step_W = (eta[..., None] * xk)[..., :, None] * G[..., None, :]  # (B, m, F, F)
    W_i = W[:, None] - s[:, None, None] * np.cumsum(step_W, axis=1)  # (B, m, F, F)
    b_i = b[:, None] - s[:, None] * np.cumsum(eta[..., None] * G, axis=1)  # (B, m, F)
    Zbar = (xq[:, :, None, :] @ W_i)[:, :, 0] + b_i  # (B, m, F) z_i = x_Q,i W_i + b_i
    return Zbar, W_i[:, -1], b_i[:, -1], (gcache,)


class TTTLinearCache(NamedTuple):
    x_q: np.ndarray  # (B, N, F)
    x_k: np.ndarray  # (B, N, F)
    x_v: np.ndarray  # (B, N, F)
    eta: np.ndarray  # (B, N) broadcast
    eta_shape: tuple  # the shape eta was given in
    params: dict
    starts: list  # (W, b) at the start of every mini-batch
    losses: np.ndarray  # (B, N) inner loss of each token at its start-of-batch W
    final_state: tuple  # (W, b) after the last token, (B, F, F) and (B, F)
    mini_batch: int
    position_scale: bool
    eps: float


def ttt_linear_forward(
    x_q,
    x_k,
    x_v,
    eta,
    params,
    *,
    mini_batch=16,
    form="dual",
    position_scale=False,
    eps=1e-6,
):
    """Run TTT-Linear over a sequence (module docstring for the equations).

    Args:
        x_q, x_k, x_v: (B, N, F) the query, key and value (target) views.
        eta: (B, N) inner learning rate per token >= 0 (differentiated), or anything
            that broadcasts to (B, N), e.g. a number.
        params: W (F, F), b, gamma, beta (F,) -- W_0, b_0 and the inner layer norm.
        mini_batch: m >= 1; the last mini-batch may be shorter.
        form: "dual" or "primal" (same numbers).
        position_scale: scale the rates by 1/i inside a mini-batch (ttt-lm-pytorch).
        eps: the inner layer norm's epsilon > 0.

    Returns:
        z (B, N, F), cache (``cache.losses`` (B, N), ``cache.final_state`` the last
        (W, b)).
    """
    x_q, x_k, x_v, eta, eta_shape, p = _check(
        x_q, x_k, x_v, eta, params, mini_batch, eps
    )
    position_scale = V.bool_arg("position_scale", position_scale)
    run = {"dual": _dual, "primal": _primal}[V.choice("form", form, ("dual", "primal"))]
    B, N, F = x_k.shape
    W = np.broadcast_to(p["W"], (B, F, F))  # every sequence has its own fast weight
    b = np.broadcast_to(p["b"], (B, F))
    z, losses, starts = np.empty_like(x_q), np.empty((B, N), x_q.dtype), []
    for lo in range(0, N, mini_batch):
        sl = slice(lo, lo + mini_batch)
        s = _scales(x_k[:, sl].shape[1], position_scale, x_k.dtype)
        views = (x_k[:, sl], x_v[:, sl], x_q[:, sl], eta[:, sl])
        Zbar, W_next, b_next, extra = run(*views, W, b, p, s, eps)
        z[:, sl] = (
            x_q[:, sl] + layernorm_forward(Zbar, p["gamma"], p["beta"], eps=eps)[0]
        )
        losses[:, sl] = extra[-1].loss  # the inner loss, from the gradient's cache
        starts.append((W, b))
        W, b = W_next, b_next
    return z, TTTLinearCache(
        x_q, x_k, x_v, eta, eta_shape, p, starts, losses, (W, b), mini_batch,
        position_scale, eps,
    )  # fmt: skip


def _dual_backward(dZbar, dW_next, db_next, saved):
    """Back through Zbar, W_next and b_next of one mini-batch (before G's backward)."""
    xk, xq, eta, s, W, E, M, G, _ = saved
    dxq = dZbar @ np.swapaxes(W, 1, 2)  # forward: Zbar = xq W + b - M G
    dW = np.swapaxes(xq, 1, 2) @ dZbar + dW_next  # W also carries into W_next
    db = dZbar.sum(axis=1) + db_next
    dG = -np.swapaxes(M, 1, 2) @ dZbar
    dM = -dZbar @ np.swapaxes(G, 1, 2)  # (B, m, m)
    dE = dM * (xq @ np.swapaxes(xk, 1, 2) + 1.0)  # forward: M = E o (xq xk^T) + E
    dS = dM * E  # gradient of xq xk^T
    dxq += dS @ xk
    dxk = np.swapaxes(dS, 1, 2) @ xq
    e = E[:, -1, :, None]  # (B, m, 1)
    # forward: W_next = W - (e xk)^T G,  b_next = b - e^T G
    dexk = -G @ np.swapaxes(dW_next, 1, 2)  # (B, m, F) gradient of e * xk
    dxk += e * dexk
    dE[:, -1] += np.sum(dexk * xk, axis=-1) - (G @ db_next[..., None])[..., 0]
    dG -= (e * xk) @ dW_next + e * db_next[:, None, :]
    deta = np.sum(np.tril(dE) * s[:, None], axis=1)  # forward: E_ij = s_i eta_j
    return dxq, dxk, dW, db, dG, deta


def ttt_linear_backward(dout, cache):
    """Outer-loop gradients of ttt_linear_forward (either form).

    Args:
        dout: (B, N, F) upstream gradient of the outputs z.
        cache: from ``ttt_linear_forward``.

    Returns:
        dx_q, dx_k, dx_v (B, N, F), deta (eta's shape), grads {W, b, gamma, beta}.
    """
    x_q, x_k, x_v, eta, eta_shape, p, starts, _, _, m, position_scale, eps = cache
    V.grad_shape("dout", dout, x_q.shape)
    dz = dout
    dx_k, dx_v, dx_q = np.zeros_like(x_k), np.zeros_like(x_v), dz.copy()
    deta = np.zeros_like(eta, dtype=x_k.dtype)
    dgamma, dbeta = np.zeros_like(p["gamma"]), np.zeros_like(p["beta"])
    dW, db = np.zeros_like(starts[0][0]), np.zeros_like(starts[0][1])
    for i in reversed(range(len(starts))):
        sl = slice(i * m, (i + 1) * m)
        xk, xv, xq = x_k[:, sl], x_v[:, sl], x_q[:, sl]
        s = _scales(xk.shape[1], position_scale, xk.dtype)
        Zbar, _, _, saved = _dual(xk, xv, xq, eta[:, sl], *starts[i], p, s, eps)
        ln_cache = layernorm_forward(Zbar, p["gamma"], p["beta"], eps=eps)[1]
        dZbar, dg1, db1 = layernorm_backward(dz[:, sl], ln_cache)  # z = xq + LN(Zbar)
        dxq, dxk, dW, db, dG, deta[:, sl] = _dual_backward(dZbar, dW, db, saved)
        dZ0, dt, dg2, db2 = ln_l2_grad_backward(dG, saved[-1])  # G = grad(Z0, xv - xk)
        dx_q[:, sl] += dxq
        dx_k[:, sl] = dxk - dt + dZ0 @ np.swapaxes(starts[i][0], 1, 2)  # Z0 = xk W + b
        dx_v[:, sl] = dt
        dW = dW + np.swapaxes(xk, 1, 2) @ dZ0
        db = db + dZ0.sum(axis=1)
        dgamma, dbeta = dgamma + dg1 + dg2, dbeta + db1 + db2
    grads = {"W": dW.sum(axis=0), "b": db.sum(axis=0), "gamma": dgamma, "beta": dbeta}
    return dx_q, dx_k, dx_v, np.asarray(unbroadcast(deta, eta_shape)), grads

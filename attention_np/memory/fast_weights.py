"""Fast weights (Ba, Hinton, Mnih, Leibo, Ionescu 2016): an RNN with a decaying
outer-product memory of its own recent hidden states.

    A_t   = lam * A_{t-1} + eta * h_t^T h_t                        (D_h, D_h)
    pre_t = h_{t-1} W + x_t C + b
    h^0 = f(pre_t);   h^{s+1} = f(LN(pre_t + h^s A_{t-1})),  s = 0..S-1;   h_t = h^S

Indexing convention (ours; the paper labels the same states one step later, its h(tau)
being our h_{tau-1}, and its equations agree with each other and with these): h_t is
the state after reading x_t, t = 1..T, with h_0 = 0 and A_0 = 0. While
h_t is being computed, the memory is A_{t-1}: it holds h_1..h_{t-1}, never the state
under construction. LN is layer norm with gain ``gamma`` and shift ``beta``.

Attention view: h A_{t-1} = eta * sum_{tau < t} lam^(t-1-tau) <h, h_tau> h_tau, which is
decayed, unnormalised dot-product attention from the query h to keys = values = the
past states. ``form="attention"`` computes that sum and never builds A (cheaper while
t < D_h); ``form="matrix"`` keeps A. The two agree to rounding. The memory's write and
read are in ``fast_weight_memory``.

Shape legend: B batch, T time steps, D_in input width, D_h hidden width.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..layers import layernorm_backward, layernorm_forward
from .fast_weight_memory import _rates, _read, _read_attention, _update

# f and its derivative written in terms of the output y = f(x)
_ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1.0 - y * y),
    "relu": (lambda x: np.maximum(x, 0.0), lambda y: (y > 0).astype(y.dtype)),
}


def init_fast_weights_params(d_in, d_hidden, *, rng, dtype=np.float64):
    """W (D_h, D_h) and C (D_in, D_h) ~ N(0, 1/fan_in); b = beta = 0, gamma = 1."""
    d_in, d_h = V.positive_int("d_in", d_in), V.positive_int("d_hidden", d_hidden)
    V.rng_arg(rng)
    dtype = V.dtype_arg(dtype)
    return {
        "W": (rng.standard_normal((d_h, d_h)) / np.sqrt(d_h)).astype(dtype),
        "C": (rng.standard_normal((d_in, d_h)) / np.sqrt(d_in)).astype(dtype),
        "b": np.zeros(d_h, dtype=dtype),
        "gamma": np.ones(d_h, dtype=dtype),
        "beta": np.zeros(d_h, dtype=dtype),
    }


class FastWeightsCache(NamedTuple):
    x: np.ndarray  # (B, T, D_in)
    params: dict
    H: np.ndarray  # (B, T, D_h) every h_t
    steps: list  # per t: (pre, h^0, [(h^s, ln cache, h^{s+1}), ...])
    lam: float
    eta: float
    activation: str


def _check(x, params, lam, eta, n_inner, form, activation, eps):
    x = V.float_array("x", x, ndim=3)
    has_w = isinstance(params, dict) and np.ndim(params.get("W")) == 2
    d_h = np.shape(params["W"])[0] if has_w else 0  # check_params names what is wrong
    shapes = {"W": (d_h, d_h), "C": (x.shape[2], d_h), "b": (d_h,)}
    shapes.update(gamma=(d_h,), beta=(d_h,))
    params = V.check_params(params, shapes, dtype=x.dtype)
    if d_h == 0:
        raise ValueError(f"params['W']{params['W'].shape} needs a hidden width >= 1")
    V.choice("form", form, ("matrix", "attention"))
    V.choice("activation", activation, tuple(_ACTIVATIONS))
    V.positive_int("n_inner", n_inner, allow_zero=True)
    V.real("eps", eps, lo=0.0, lo_open=True)
    return x, params, *_rates(lam, eta)


def _step(x_t, h_prev, read, p, n_inner, f, eps):
    """One time step: the slow pre-activation, then S inner-loop refinements."""
    pre = h_prev @ p["W"] + x_t @ p["C"] + p["b"]  # (B, D_h)
    h0 = f(pre)  # (B, D_h) the plain RNN proposal
    h, inner = h0, []
    for _ in range(n_inner):
        y, ln_cache = layernorm_forward(pre + read(h), p["gamma"], p["beta"], eps=eps)
        h_new = f(y)  # (B, D_h)
        inner.append((h, ln_cache, h_new))
        h = h_new
    return h, (pre, h0, inner)


def fast_weights_forward(
    x,
    params,
    *,
    lam=0.95,
    eta=0.5,
    n_inner=1,
    form="matrix",
    activation="tanh",
    eps=1e-5,
):
    """Run the fast-weights RNN over a sequence (module docstring for the equations).

    Args:
        x: (B, T, D_in) inputs.
        params: W (D_h, D_h), C (D_in, D_h), b, gamma, beta (D_h,).
        lam: memory decay in [0, 1]; eta: write strength >= 0.
        n_inner: S, inner-loop steps per time step (0 gives a plain RNN).
        form: "matrix" (keep A) or "attention" (sum over the stored states).
        activation: "tanh" or "relu".
        eps: layer norm's epsilon > 0.

    Returns:
        H (B, T, D_h) hidden states h_1..h_T, cache.
    """
    x, params, lam, eta = _check(x, params, lam, eta, n_inner, form, activation, eps)
    f = _ACTIVATIONS[activation][0]
    B, T, _ = x.shape
    d_h = params["W"].shape[0]
    H = np.zeros((B, T, d_h), dtype=x.dtype)  # (B, T, D_h)
    A = np.zeros((B, d_h, d_h), dtype=x.dtype)  # (B, D_h, D_h) A_0 = 0
    h, steps = np.zeros((B, d_h), dtype=x.dtype), []
    for t in range(T):
        if form == "matrix":
            read = lambda q, A=A: _read(q, A)
        else:
            read = lambda q, t=t: _read_attention(q, H[:, :t], lam, eta)
        h, step = _step(x[:, t], h, read, params, n_inner, f, eps)
        H[:, t] = h
        steps.append(step)
        if form == "matrix":
            A = _update(A, h, lam, eta)
    return H, FastWeightsCache(x, params, H, steps, lam, eta, activation)


def _step_backward(dh, step, A, p, df):
    """Back through the inner loop of one step: dpre, dA (of A_{t-1}), dgamma, dbeta."""
    pre, h0, inner = step
    dpre, dA = np.zeros_like(pre), np.zeros_like(A)
    dgamma, dbeta = np.zeros_like(p["gamma"]), np.zeros_like(p["beta"])
    for h_in, ln_cache, h_out in reversed(inner):
        dz, dg, db = layernorm_backward(dh * df(h_out), ln_cache)  # through f, LN
        dgamma, dbeta = dgamma + dg, dbeta + db
        dpre += dz  # forward: z = pre + h_in A
        dA += h_in[:, :, None] * dz[:, None, :]  # dA = h_in^T dz
        dh = (dz[:, None, :] @ np.swapaxes(A, 1, 2))[:, 0]  # dh_in = dz A^T
    dpre += dh * df(h0)  # forward: h0 = f(pre)
    return dpre, dA, dgamma, dbeta


def _memories(H, lam, eta):
    """A_0 .. A_{T-1} recomputed from the hidden states: (B, D_h, D_h) each."""
    B, T, d_h = H.shape
    memories = [np.zeros((B, d_h, d_h), dtype=H.dtype)]
    for t in range(T - 1):
        memories.append(_update(memories[-1], H[:, t], lam, eta))
    return memories


def fast_weights_backward(dout, cache):
    """Backpropagation through time of fast_weights_forward (either form).

    Args:
        dout: (B, T, D_h) upstream gradient of every hidden state H.
        cache: from ``fast_weights_forward``.

    Returns:
        dx (B, T, D_in), grads keyed like params.
    """
    x, p, H, steps, lam, eta, activation = cache
    V.grad_shape("dout", dout, H.shape)
    df = _ACTIVATIONS[activation][1]
    memories = _memories(H, lam, eta)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx, dA, dh_next = np.zeros_like(x), np.zeros_like(memories[0]), 0.0
    for t in reversed(range(H.shape[1])):
        h = H[:, t]
        # forward: A_t = lam A_{t-1} + eta h^T h  ->  dh += eta h (dA + dA^T)
        dh = dout[:, t] + dh_next + eta * (h[:, None, :] @ (dA + _T(dA)))[:, 0]
        dpre, dA_inner, dgamma, dbeta = _step_backward(dh, steps[t], memories[t], p, df)
        dA = lam * dA + dA_inner  # gradient of A_{t-1}
        h_prev = H[:, t - 1] if t else np.zeros_like(h)
        grads["W"] += h_prev.T @ dpre  # forward: pre = h_prev W + x_t C + b
        grads["C"] += x[:, t].T @ dpre
        grads["b"] += dpre.sum(axis=0)
        grads["gamma"] += dgamma
        grads["beta"] += dbeta
        dx[:, t] = dpre @ p["C"].T
        dh_next = dpre @ p["W"].T
    return dx, grads


def _T(A):
    return np.swapaxes(A, 1, 2)

"""The memory sub-package's layers for ``python -m attention_np gradcheck``.

Each case is ``case(rng) -> (forward, backward, inputs)`` like the core package's
``gradcheck_cases``; sizes are small and all different so that a transposed axis
cannot hide, and every case runs in well under a second.
"""

import numpy as np

from .delta_rule import (
    delta_rule_backward,
    delta_rule_forward,
    sum_rule_backward,
    sum_rule_forward,
)
from .delta_rule_chunkwise import (
    delta_rule_chunkwise_backward,
    delta_rule_chunkwise_forward,
)
from .fast_weights import (
    fast_weights_backward,
    fast_weights_forward,
    init_fast_weights_params,
)
from .inplace_ttt import (
    PARAM_KEYS,
    init_inplace_ttt_params,
    inplace_ttt_backward,
    inplace_ttt_forward,
)
from .memnet import init_memnet_params, memnet_backward, memnet_forward
from .ntm import (
    ntm_address_backward,
    ntm_address_forward,
    ntm_read_backward,
    ntm_read_forward,
    ntm_write_backward,
    ntm_write_forward,
)
from .ttt_inner import ln_l2_grad_backward, ln_l2_grad_forward
from .ttt_linear import init_ttt_linear_params, ttt_linear_backward, ttt_linear_forward


def _jitter(params, rng, scale=0.2):
    """Move every parameter off its init (non-zero biases, gamma != 1)."""
    return {k: v + scale * rng.standard_normal(v.shape) for k, v in params.items()}


def _named(names, backward):
    """Turn a backward that returns a tuple into one that returns a dict."""
    return lambda dout, cache: dict(zip(names, backward(dout, cache), strict=True))


def _fast_weights(rng, form="matrix"):
    params = _jitter(init_fast_weights_params(3, 4, rng=rng), rng)
    inputs = {"x": rng.standard_normal((2, 5, 3)), **params}

    def forward(p):
        weights = {k: p[k] for k in params}
        return fast_weights_forward(
            p["x"], weights, lam=0.9, eta=0.7, n_inner=2, form=form
        )

    def backward(dout, cache):
        dx, grads = fast_weights_backward(dout, cache)
        return {"x": dx, **grads}

    return forward, backward, inputs


def _qkv(rng, d_k=4, d_v=5):
    q, k = rng.standard_normal((2, 2, 3, 6, d_k))  # (B, H, N, d_k)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)  # DeltaNet's unit keys
    return {"q": q, "k": k, "v": rng.standard_normal((2, 3, 6, d_v))}


def _sum_rule(rng):
    forward = lambda p: sum_rule_forward(p["q"], p["k"], p["v"])
    return forward, _named("q k v".split(), sum_rule_backward), _qkv(rng)


def _delta_rule(rng, chunk_size=None):
    inputs = {**_qkv(rng), "beta": rng.uniform(0.1, 0.9, (2, 3, 6))}
    if chunk_size is None:
        fwd, bwd = delta_rule_forward, delta_rule_backward
    else:
        fwd = lambda *a: delta_rule_chunkwise_forward(*a, chunk_size=chunk_size)
        bwd = delta_rule_chunkwise_backward
    forward = lambda p: fwd(p["q"], p["k"], p["v"], p["beta"])
    return forward, _named("q k v beta".split(), bwd), inputs


def _ln_l2_grad(rng):
    inputs = {
        "Z": rng.standard_normal((2, 3, 5)),
        "target": rng.standard_normal((2, 3, 5)),
        "gamma": 1 + 0.3 * rng.standard_normal(5),
        "beta": 0.3 * rng.standard_normal(5),
    }
    forward = lambda p: ln_l2_grad_forward(p["Z"], p["target"], p["gamma"], p["beta"])
    return forward, _named(list(inputs), ln_l2_grad_backward), inputs


def _ttt_linear(rng, mini_batch, position_scale):
    params = _jitter(init_ttt_linear_params(3, rng=rng, std=0.5), rng)
    views = dict(
        zip(("x_k", "x_v", "x_q"), rng.standard_normal((3, 2, 5, 3)), strict=True)
    )
    inputs = {**views, "eta": rng.uniform(0.1, 0.5, (2, 5)), **params}

    def forward(p):
        weights = {k: p[k] for k in params}
        return ttt_linear_forward(
            p["x_k"],
            p["x_v"],
            p["x_q"],
            p["eta"],
            weights,
            mini_batch=mini_batch,
            position_scale=position_scale,
        )

    def backward(dout, cache):
        *d, grads = ttt_linear_backward(dout, cache)
        return {**dict(zip(("x_k", "x_v", "x_q", "eta"), d, strict=True)), **grads}

    return forward, backward, inputs


def _inplace_ttt(rng, separate_target=False):
    params = init_inplace_ttt_params(3, 4, rng=rng)
    params["conv"] = rng.standard_normal(params["conv"].shape)  # not the zero init
    params["W_target"] = params["W_target"] + 0.3 * rng.standard_normal((3, 3))
    inputs = {"x": rng.standard_normal((2, 7, 3)), **params}
    if separate_target:
        inputs["target"] = rng.standard_normal((2, 7, 3))
    lengths = np.array([7, 5]) if separate_target else None  # padding rows

    def forward(p):
        weights = {k: p[k] for k in PARAM_KEYS}
        return inplace_ttt_forward(
            p["x"],
            weights,
            chunk_size=3,
            lr=0.4,
            target=p.get("target"),
            lengths=lengths,
        )

    def backward(dout, cache):
        dx, dtarget, grads = inplace_ttt_backward(dout, cache)
        return {"x": dx, **grads, **({"target": dtarget} if separate_target else {})}

    return forward, backward, inputs


def _memnet(rng):
    params = init_memnet_params(7, 4, n_hops=2, n_memories=5, rng=rng, std=0.5)
    story = rng.integers(0, 7, (2, 4, 3))
    story[0, 0] = 0  # an empty memory slot
    question = rng.integers(1, 7, (2, 2))
    forward = lambda p: memnet_forward(story, question, p, position_enc=True)
    return forward, memnet_backward, params


def _ntm_address(rng):
    B, n, W = 2, 6, 4
    s = rng.uniform(0.1, 1.0, (B, 3))
    w_prev = rng.uniform(0.1, 1.0, (B, n))
    inputs = {
        "k": rng.standard_normal((B, W)),
        "beta": rng.uniform(0.5, 3.0, B),
        "g": rng.uniform(0.1, 0.9, B),
        "s": s / s.sum(axis=1, keepdims=True),
        "gamma": rng.uniform(1.0, 3.0, B),
        "M": rng.standard_normal((B, n, W)),
        "w_prev": w_prev / w_prev.sum(axis=1, keepdims=True),
    }
    forward = lambda p: ntm_address_forward(*p.values())
    return forward, _named(list(inputs), ntm_address_backward), inputs


def _ntm_read_write(rng, write):
    w = rng.uniform(0.0, 1.0, (2, 5))
    inputs = {"w": w / w.sum(axis=1, keepdims=True)}
    if write:
        inputs.update(e=rng.uniform(0.0, 1.0, (2, 3)), a=rng.standard_normal((2, 3)))
    inputs["M"] = rng.standard_normal((2, 5, 3))
    fwd, bwd = (
        (ntm_write_forward, ntm_write_backward)
        if write
        else (ntm_read_forward, ntm_read_backward)
    )
    return lambda p: fwd(*p.values()), _named(list(inputs), bwd), inputs


CASES = {
    "fast weights (Ba et al., matrix form)": _fast_weights,
    "fast weights (Ba et al., attention form)": lambda r: _fast_weights(r, "attention"),
    "sum rule (unnormalised linear attention)": _sum_rule,
    "delta rule (sequential)": _delta_rule,
    "delta rule (chunkwise UT, C=4)": lambda rng: _delta_rule(rng, chunk_size=4),
    "TTT inner gradient (LN-fused L2, second order)": _ln_l2_grad,
    "TTT-Linear (online GD, b=1)": lambda rng: _ttt_linear(rng, 1, False),
    "TTT-Linear (mini-batch 2, 1/i scale)": lambda rng: _ttt_linear(rng, 2, True),
    "In-Place TTT": _inplace_ttt,
    "In-Place TTT (target input, padding)": lambda r: _inplace_ttt(r, True),
    "memory network (2 hops, position encoding)": _memnet,
    "NTM addressing": _ntm_address,
    "NTM read": lambda rng: _ntm_read_write(rng, False),
    "NTM write": lambda rng: _ntm_read_write(rng, True),
}

"""The memory sub-package's layers for ``python -m attention_np gradcheck``.

Each case is ``case(rng) -> gradcheck.LayerCase``: the public forward and backward
themselves, called exactly as the package's contract says (arrays in order, then the
params, then the options), so the check is also a check of the contract. Sizes are
small and all different so that a transposed axis cannot hide, every parameter is
moved off its init, and every case runs in well under a second.
"""

import numpy as np

from ..gradcheck import LayerCase
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

B, H, N, d_k, d_v = 2, 3, 6, 4, 5


def _jitter(params, rng, scale=0.2):
    """Move every parameter off its init (non-zero biases, gamma != 1)."""
    return {k: v + scale * rng.standard_normal(v.shape) for k, v in params.items()}


def _fast_weights(rng, form="matrix"):
    params = _jitter(init_fast_weights_params(3, 4, rng=rng), rng)
    options = {"lam": 0.9, "eta": 0.7, "n_inner": 2, "form": form}
    arrays = {"x": rng.standard_normal((2, 5, 3))}
    return LayerCase(
        fast_weights_forward, fast_weights_backward, arrays, params, options
    )


def _qkv(rng):
    q, k = rng.standard_normal((2, B, H, N, d_k))  # (B, H, N, d_k)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)  # DeltaNet's unit keys
    return {"q": q, "k": k, "v": rng.standard_normal((B, H, N, d_v))}


def _state(rng):
    return rng.standard_normal((B, H, d_k, d_v))  # a state carried from a segment


def _sum_rule(rng):
    arrays = {**_qkv(rng), "initial_state": _state(rng)}
    return LayerCase(sum_rule_forward, sum_rule_backward, arrays)


def _delta_rule(rng, chunk_size=None):
    arrays = {**_qkv(rng), "beta": rng.uniform(0.1, 0.9, (B, H, N))}
    arrays["initial_state"] = _state(rng)
    if chunk_size is None:
        return LayerCase(delta_rule_forward, delta_rule_backward, arrays)
    return LayerCase(
        delta_rule_chunkwise_forward,
        delta_rule_chunkwise_backward,
        arrays,
        options={"chunk_size": chunk_size},
    )


def _ln_l2_grad(rng):
    arrays = {
        "Z": rng.standard_normal((2, 3, 5)),
        "target": rng.standard_normal((2, 3, 5)),
        "gamma": 1 + 0.3 * rng.standard_normal(5),
        "beta": 0.3 * rng.standard_normal(5),
    }
    return LayerCase(ln_l2_grad_forward, ln_l2_grad_backward, arrays)


def _ttt_linear(rng, mini_batch, position_scale, form="dual"):
    params = _jitter(init_ttt_linear_params(3, rng=rng, std=0.5), rng)
    views = rng.standard_normal((3, 2, 5, 3))  # (B, N, F) each
    arrays = dict(zip(("x_q", "x_k", "x_v"), views, strict=True))
    arrays["eta"] = rng.uniform(0.1, 0.5, (2, 5))
    options = {"mini_batch": mini_batch, "position_scale": position_scale}
    options["form"] = form
    return LayerCase(ttt_linear_forward, ttt_linear_backward, arrays, params, options)


def _inplace_ttt_with_target(x, target, params, lengths=None, **options):
    """inplace_ttt_forward with its optional target array before the params: a
    LayerCase passes every array (differentiated) ahead of the params dict."""
    return inplace_ttt_forward(x, params, target, lengths, **options)


_inplace_ttt_with_target.contract_of = "inplace_ttt_forward"


def _inplace_ttt(rng, separate_target=False):
    params = init_inplace_ttt_params(3, 4, rng=rng)
    params["conv"] = rng.standard_normal(params["conv"].shape)  # not the zero init
    params["W_target"] = params["W_target"] + 0.3 * rng.standard_normal((3, 3))
    arrays = {"x": rng.standard_normal((2, 7, 3)), "target": None}  # None: left out
    options = {"chunk_size": 3, "lr": 0.4, "form": "parallel"}
    if separate_target:
        arrays["target"] = rng.standard_normal((2, 7, 3))
        options["lengths"] = np.array([7, 5])  # padding rows
    return LayerCase(
        _inplace_ttt_with_target, inplace_ttt_backward, arrays, params, options
    )


def _memnet(rng):
    params = init_memnet_params(7, 4, n_hops=2, n_memories=5, rng=rng, std=0.5)
    story = rng.integers(0, 7, (2, 4, 3))
    story[0, 0] = 0  # an empty memory slot
    arrays = {"story": story, "question": rng.integers(1, 7, (2, 2))}  # ids: no grad
    options = {"position_enc": True}
    return LayerCase(memnet_forward, memnet_backward, arrays, params, options)


def _normalised(x):
    return x / x.sum(axis=-1, keepdims=True)


def _ntm_address(rng):
    Bn, n, W = 2, 6, 4
    arrays = {
        "k": rng.standard_normal((Bn, W)),
        "beta": rng.uniform(0.5, 3.0, Bn),
        "g": rng.uniform(0.1, 0.9, Bn),
        "s": _normalised(rng.uniform(0.1, 1.0, (Bn, 3))),
        "gamma": rng.uniform(1.0, 3.0, Bn),
        "M": rng.standard_normal((Bn, n, W)),
        "w_prev": _normalised(rng.uniform(0.1, 1.0, (Bn, n))),
    }
    return LayerCase(ntm_address_forward, ntm_address_backward, arrays)


def _ntm_read_write(rng, write):
    arrays = {"w": _normalised(rng.uniform(0.0, 1.0, (2, 5)))}
    if write:
        arrays.update(e=rng.uniform(0.0, 1.0, (2, 3)), a=rng.standard_normal((2, 3)))
        fwd, bwd = ntm_write_forward, ntm_write_backward
    else:
        fwd, bwd = ntm_read_forward, ntm_read_backward
    arrays["M"] = rng.standard_normal((2, 5, 3))
    return LayerCase(fwd, bwd, arrays)


CASES = {
    "fast weights (Ba et al., matrix form)": _fast_weights,
    "fast weights (Ba et al., attention form)": lambda r: _fast_weights(r, "attention"),
    "sum rule (unnormalised linear attention, initial state)": _sum_rule,
    "delta rule (sequential, initial state)": _delta_rule,
    "delta rule (chunkwise UT, C=4, initial state)": lambda r: _delta_rule(r, 4),
    "TTT inner gradient (LN-fused L2, second order)": _ln_l2_grad,
    "TTT-Linear (online GD, b=1)": lambda rng: _ttt_linear(rng, 1, False),
    "TTT-Linear (mini-batch 2, 1/i scale)": lambda rng: _ttt_linear(rng, 2, True),
    "TTT-Linear (primal form, mini-batch 3)": lambda r: _ttt_linear(
        r, 3, False, "primal"
    ),
    "In-Place TTT": _inplace_ttt,
    "In-Place TTT (target input, padding)": lambda r: _inplace_ttt(r, True),
    "memory network (2 hops, position encoding)": _memnet,
    "NTM addressing": _ntm_address,
    "NTM read": lambda rng: _ntm_read_write(rng, False),
    "NTM write": lambda rng: _ntm_read_write(rng, True),
}

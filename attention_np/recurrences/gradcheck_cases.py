"""Gradient-check cases of ``attention_np.recurrences`` for ``python -m attention_np
gradcheck``: every model in every form, called by the contract (``LayerCase``).

Sizes are small and all different (B, H, N, d_k, d_v = 2, 3, 7, 4, 5); the chunk
size 3 does not divide N; gates are away from 1 so the decays matter; keys are unit
vectors (DeltaNet's); the initial state is random (its gradient is checked too). The
"final state" cases check the gradient that flows in through ``cache.final_state``
(``with_final_state_grad``), which carries state across segments.
"""

import numpy as np

from ..gradcheck import LayerCase
from .delta_family import (
    deltanet_backward,
    deltanet_forward,
    gated_deltanet_backward,
    gated_deltanet_forward,
)
from .forms import with_final_state_grad
from .linear_family import (
    gla_backward,
    gla_forward,
    linear_attn_backward,
    linear_attn_forward,
    mamba2_backward,
    mamba2_forward,
    retention_backward,
    retention_forward,
)
from .mixer_ops import (
    l2norm_backward,
    l2norm_forward,
    rmsnorm_backward,
    rmsnorm_forward,
    short_conv_backward,
    short_conv_forward,
)
from .mixers import KINDS, init_mixer_params, mixer_backward, mixer_forward
from .mqar_model import init_mqar_params, mqar_model_backward, mqar_model_forward

B, H, N, d_k, d_v = 2, 3, 7, 4, 5
FORMS = ("recurrent", "parallel", "chunkwise")

MODELS = {  # name: (forward, backward, extra arrays between v and initial_state)
    "linear attention": (linear_attn_forward, linear_attn_backward, ()),
    "retention": (retention_forward, retention_backward, ()),
    "GLA": (gla_forward, gla_backward, ("log_alpha_channels",)),
    "Mamba-2 SSD": (mamba2_forward, mamba2_backward, ("log_alpha",)),
    "DeltaNet": (deltanet_forward, deltanet_backward, ("beta",)),
    "Gated DeltaNet": (
        gated_deltanet_forward,
        gated_deltanet_backward,
        ("log_alpha", "beta"),
    ),
}


def _arrays(rng, extra):
    k = rng.standard_normal((B, H, N, d_k))
    gates = {
        "log_alpha_channels": -rng.uniform(0.05, 1.0, (B, H, N, d_k)),
        "log_alpha": -rng.uniform(0.05, 1.0, (B, H, N)),
        "beta": rng.uniform(0.1, 0.9, (B, H, N)),
    }
    arrays = {
        "q": rng.standard_normal((B, H, N, d_k)),
        "k": k / np.linalg.norm(k, axis=-1, keepdims=True),
        "v": rng.standard_normal((B, H, N, d_v)),
    }
    arrays.update({name.replace("_channels", ""): gates[name] for name in extra})
    arrays["initial_state"] = rng.standard_normal((B, H, d_k, d_v))
    return arrays


def _case(model, form):
    forward, backward, extra = MODELS[model]

    def case(rng):
        options = {"form": form, "chunk_size": 3, "scale": 0.7}
        return LayerCase(forward, backward, _arrays(rng, extra), options=options)

    return case


def _final_state_case(model, form):
    """out and final_state both as outputs: the gradient through the final state."""
    forward, backward, extra = MODELS[model]

    def both(*arrays, **options):
        out, cache = forward(*arrays, **options)
        return (out, cache.final_state), cache

    def backward_both(dout, cache):
        return backward(dout[0], with_final_state_grad(cache, dout[1]))

    both.contract_of = forward.__name__

    def case(rng):
        options = {"form": form, "chunk_size": 3}
        return LayerCase(both, backward_both, _arrays(rng, extra), options=options)

    return case


CASES = {
    f"recurrence: {model} ({form})": _case(model, form)
    for model in MODELS
    for form in FORMS
}
CASES.update(
    {
        f"recurrence: {model} ({form}, final state out)": _final_state_case(model, form)
        for model in ("GLA", "Gated DeltaNet")
        for form in FORMS
    }
)


def _jitter(params, rng):
    """Move every parameter off its init (non-zero biases, random conv taps)."""
    return {k: w + 0.1 * rng.standard_normal(w.shape) for k, w in params.items()}


def _mixer_case(kind):
    def case(rng):
        params = _jitter(init_mixer_params(6, 2, kind=kind, rng=rng), rng)
        arrays = {"x": rng.standard_normal((2, 5, 6))}
        options = {"kind": kind, "n_heads": 2, "chunk_size": 2}
        return LayerCase(mixer_forward, mixer_backward, arrays, params, options)

    return case


def _mqar_model_case(mixer, masked=False):
    def case(rng):
        params = init_mqar_params(9, 4, mixer=mixer, n_heads=2, rng=rng, d_mlp=5)
        arrays = {"ids": rng.integers(0, 9, (2, 6))}
        options = {"mixer": mixer, "n_heads": 2, "chunk_size": 4}
        if masked:  # the head only at some positions: logits (Q, V)
            options["mask"] = rng.random((2, 6)) > 0.5
        return LayerCase(mqar_model_forward, mqar_model_backward, arrays,
                         _jitter(params, rng), options)  # fmt: skip

    return case


CASES.update({f"recurrence mixer: {kind}": _mixer_case(kind) for kind in KINDS})
CASES.update(
    {
        f"recurrence MQAR model ({m})": _mqar_model_case(m)
        for m in ("attention", "gated_deltanet")
    }
)
CASES["recurrence MQAR model (mamba2, head at masked positions)"] = _mqar_model_case(
    "mamba2", masked=True
)
CASES["recurrence mixer part: short causal convolution"] = lambda rng: LayerCase(
    short_conv_forward,
    short_conv_backward,
    {"x": rng.standard_normal((2, 5, 3)), "w": rng.standard_normal((3, 3))},
)
CASES["recurrence mixer part: l2norm"] = lambda rng: LayerCase(
    l2norm_forward, l2norm_backward, {"x": rng.standard_normal((2, 4, 5))}
)
CASES["recurrence mixer part: rmsnorm"] = lambda rng: LayerCase(
    rmsnorm_forward, rmsnorm_backward, {"x": rng.standard_normal((2, 4, 5))}
)

"""Gated linear recurrences: one matrix-valued recurrence, many models.

    S_t = (transition A_t of S_{t-1}) + (write),     o_t = scale q_t S_t

Linear attention (A_t = I), RetNet's retention (gamma I), GLA (diag(alpha_t)),
Mamba-2's SSD (alpha_t I), DeltaNet (I - beta_t k_t^T k_t) and Gated DeltaNet
(alpha_t (I - beta_t k_t^T k_t)), each in three forms that agree to rounding:
recurrent (one token at a time), parallel (decay-masked attention) and chunkwise.

Modules (one idea each):
- ``decay``: log-space cumulative decays and the decay-masked score matrices.
- ``triangular``: (I + L)^{-1} for strictly lower L, by blocks (the UT transform).
- ``recurrent``, ``parallel``, ``chunkwise``: the three forms of the generic
  recurrence (sum-rule or delta-rule write; scalar or per-channel gate).
- ``forms``: validation, dispatch, the public cache, carrying state gradients.
- ``linear_family``: linear_attn, retention, gla, mamba2 (sum-rule writes).
- ``delta_family``: deltanet, gated_deltanet (delta-rule writes).
- ``checks``: input validation of this subpackage.
- ``mqar``: the multi-query associative recall task (Zoology).
- ``mixer_ops``, ``mixer_gates``, ``mixers``: a mixer layer around each recurrence
  (and around softmax attention) with the papers' gates.
- ``mqar_model``, ``mqar_train``: a small two-layer model for MQAR and its training.
"""

from .checks import retention_decays
from .delta_family import (
    deltanet_backward,
    deltanet_forward,
    gated_deltanet_backward,
    gated_deltanet_forward,
)
from .forms import RecurrenceCache, with_final_state_grad
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
from .mqar import MQARBatch, mqar_batch
from .mqar_model import (
    init_mqar_params,
    masked_cross_entropy,
    mqar_model_backward,
    mqar_model_forward,
)
from .mqar_train import train_mqar

__all__ = [
    "KINDS",
    "MQARBatch",
    "RecurrenceCache",
    "deltanet_backward",
    "deltanet_forward",
    "gated_deltanet_backward",
    "gated_deltanet_forward",
    "gla_backward",
    "gla_forward",
    "linear_attn_backward",
    "linear_attn_forward",
    "mamba2_backward",
    "mamba2_forward",
    "retention_backward",
    "retention_forward",
    "retention_decays",
    "with_final_state_grad",
    "init_mixer_params",
    "init_mqar_params",
    "l2norm_backward",
    "l2norm_forward",
    "masked_cross_entropy",
    "mixer_backward",
    "mixer_forward",
    "mqar_batch",
    "mqar_model_backward",
    "mqar_model_forward",
    "rmsnorm_backward",
    "rmsnorm_forward",
    "short_conv_backward",
    "short_conv_forward",
    "train_mqar",
]

"""Which functions a student's solution may not call: the answer key of each exercise.

A checker lists the package's implementations of what the student writes (as
"module:qualname" strings, resolved when the check runs, so an import cycle or a
later rename cannot break the import of this package) and the checker's own
reference functions (``_ref``). ``guard.py`` watches for calls of them while the
student's function runs. tests/test_exercise_checkers.py checks that every name
below still resolves, so a rename in the package cannot switch the check off
silently.
"""

from . import _ref

P = "attention_np."

SOFTMAX = (
    P + "softmax:softmax_forward",
    P + "naive:softmax_naive",
    P + "attention:attention_weights",
    P + "efficient.online_softmax:online_softmax",
    P + "efficient.online_softmax:online_logsumexp",
)
SOFTMAX_BACKWARD = (P + "softmax:softmax_backward",)

ATTENTION = (
    P + "attention:attention_forward",
    P + "naive:attention_naive",
    P + "efficient.flash:flash_attention_forward",
    P + "efficient.flash_reference:flash_attention_reference",
    P + "efficient.block_attention:block_attention_forward",
    P + "efficient.banded:sliding_window_attention_forward",
    P + "decoding:gqa_attention_forward",
    P + "decoding:cached_attention",
    P + "additive:luong_attention_forward",
    P + "parallel.ring_sim:ring_attention_forward",
    P + "parallel.ulysses:ulysses_attention_forward",
)
ATTENTION_BACKWARD = (
    P + "attention:attention_backward",
    P + "efficient.flash:flash_attention_backward",
    P + "efficient.block_attention:block_attention_backward",
    P + "decoding:gqa_attention_backward",
    P + "parallel.ring_sim:ring_attention_backward",
)
MASKS = (
    P + "masks:causal_mask",
    P + "masks:padding_mask",
    P + "masks:attention_mask",
    P + "efficient.sparse_masks:sliding_window_mask",
)
HEADS = (P + "multihead:split_heads", P + "multihead:merge_heads")
MHA = (
    P + "multihead:mha_forward",
    P + "multihead:mha_backward",
    P + "naive:mha_naive",
    P + "transformer.self_attention:self_attention_forward",
    P + "transformer.self_attention:self_attention_backward",
)
FINITE_DIFFERENCES = (
    P + "gradcheck:numerical_grad",
    P + "gradcheck:numerical_grads",
    P + "gradcheck:check_layer",
    P + "gradcheck:compare",
    P + "gradcheck:grad_report",
)
ROPE = (P + "positional:rope_forward", P + "positional:rope_backward")
LAYERNORM = (P + "layers:layernorm_forward", P + "layers:layernorm_backward")
ONLINE_SOFTMAX = SOFTMAX + (
    P + "efficient.online_softmax:online_softmax_step",
    P + "efficient.tile_softmax:merge",
    P + "efficient.tile_softmax:finish",
)
LINEAR_ATTENTION = (
    P + "efficient.linear_attention:linear_attention_forward",
    P + "efficient.linear_attention:linear_attention_weights",
    P + "efficient.kernel_products:recurrent_forward",
    P + "efficient.kernel_products:parallel_causal_forward",
    P + "efficient.kernel_products:chunkwise_forward",
    P + "memory.delta_rule:sum_rule_forward",
)
FAST_WEIGHTS = (
    P + "memory.fast_weight_memory:fast_weight_update",
    P + "memory.fast_weights:fast_weights_forward",
)
DELTA_RULE = (
    P + "memory.delta_rule:delta_rule_forward",
    P + "memory.delta_rule_chunkwise:delta_rule_chunkwise_forward",
    P + "memory.delta_rule_chunkwise:ut_transform",
)
TTT = (
    P + "memory.ttt_inner:ln_l2_grad_forward",
    P + "memory.ttt_inner:ln_l2_grad_backward",
    P + "memory.ttt_linear:ttt_linear_forward",
    P + "memory.ttt_decode:ttt_linear_decode_step",
)

RECURRENCES = (
    P + "recurrences.delta_family:gated_deltanet_forward",
    P + "recurrences.delta_family:deltanet_forward",
    P + "recurrences.linear_family:mamba2_forward",
    P + "recurrences.linear_family:gla_forward",
    P + "recurrences.recurrent:recurrent_forward",
    P + "recurrences.parallel:parallel_forward",
    P + "recurrences.chunkwise:chunkwise_forward",
    P + "recurrences.forms:run_form",
    P + "recurrences.triangular:unit_lower_inverse",
) + DELTA_RULE

REFERENCE = _ref.FUNCTIONS  # the checkers' own answer key

ALL = (SOFTMAX + SOFTMAX_BACKWARD + ATTENTION + ATTENTION_BACKWARD + MASKS + HEADS
       + MHA + FINITE_DIFFERENCES + ROPE + LAYERNORM + ONLINE_SOFTMAX
       + LINEAR_ATTENTION + FAST_WEIGHTS + DELTA_RULE + TTT + RECURRENCES)  # fmt: skip

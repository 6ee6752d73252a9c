"""Classroom exercises: checkers that run a student's function and explain mistakes.

Each exercise notebook in ``notebooks/exercises/`` ends with a call such as
``check_softmax(softmax)``. A checker runs the student's function on random cases
and edge cases (fully masked rows, scores of 1e4, N != M, several heads), compares
it with the package's reference (and, for a backward, with finite differences),
prints one ✓/✗ line per case with a hint naming the likely mistake, and returns
True only when every case passes. ``python -m attention_np.exercises build OUT``
writes the student copies (solutions replaced by stubs).

To add a checker, see ``framework.py`` (cases, comparisons) and ``hints.py`` (hint
rules), and the teacher's guide ``notebooks/exercises/README.md``.
"""

from .attention_checks import check_attention
from .backward_checks import check_attention_backward
from .fast_weight_checks import check_delta_rule_update, check_fast_weight_update
from .framework import Case, Checker, run_checks
from .gradchecker_checks import check_gradient_checker
from .heads_checks import check_split_merge
from .hints import Hint, matches, matches_any, raised, when
from .layernorm_checks import check_layernorm_backward
from .linear_rnn_checks import check_linear_attention_rnn
from .masks_checks import check_masks
from .mha_checks import check_mha_backward, check_mha_forward
from .numgrad_checks import check_numerical_grad
from .online_softmax_checks import check_online_attention, check_online_softmax
from .question_checks import check_key_bias
from .rope_checks import check_rope
from .softmax_checks import check_softmax, check_softmax_backward
from .ttt_checks import check_ttt_grad, check_ttt_ln_grad

__all__ = [
    "Case",
    "Checker",
    "Hint",
    "check_attention",
    "check_attention_backward",
    "check_delta_rule_update",
    "check_fast_weight_update",
    "check_gradient_checker",
    "check_key_bias",
    "check_layernorm_backward",
    "check_linear_attention_rnn",
    "check_masks",
    "check_mha_backward",
    "check_mha_forward",
    "check_numerical_grad",
    "check_online_attention",
    "check_online_softmax",
    "check_rope",
    "check_softmax",
    "check_softmax_backward",
    "check_split_merge",
    "check_ttt_grad",
    "check_ttt_ln_grad",
    "matches",
    "matches_any",
    "raised",
    "run_checks",
    "when",
]

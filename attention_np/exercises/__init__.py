"""Classroom exercises: checkers that run a student's function and explain mistakes.

Each exercise notebook in ``notebooks/exercises/`` (named after the lesson it
follows: ``07a_softmax_backward`` comes after lesson 07) ends each task with a
locked check cell such as::

    from attention_np.exercises import check_softmax

    check_softmax(softmax)

A checker draws fresh random cases and edge cases (fully masked rows, scores of
1e4, N != M, batch and head axes), compares the student's function with its own
reference (and, for a backward, with finite differences), prints one ✓/✗ line per
case with a hint for a recognised mistake, and raises AssertionError unless every
case passes: nbgrader scores the cell 0. A solution that calls the package's (or
the checker's) implementation of what it should write fails; so does one that
never returns (a time limit per case).

``python -m attention_np.exercises build OUT`` writes the student kit (student
copies of the notebooks and a wheel of this package); ``... audit DIR`` lists
suspicious lines in submitted notebooks. See ``framework.py`` (cases, grading),
``hints.py`` (hint rules), ``guard.py`` (time limit, answer-key detection) and the
teacher's guide ``notebooks/exercises/README.md``.
"""

from .attention_checks import check_attention
from .backward_checks import check_attention_backward
from .fast_weight_checks import check_delta_rule_update, check_fast_weight_update
from .framework import Case, Checker, grade
from .gradchecker_checks import check_gradient_checker
from .heads_checks import check_merge_heads, check_split_heads
from .hints import Hint, matches, matches_any, raised, when
from .layernorm_checks import check_layernorm_backward
from .linear_rnn_checks import check_linear_attention_rnn
from .masks_checks import check_causal_mask, check_padding_mask
from .mha_checks import check_mha_backward, check_mha_forward
from .numgrad_checks import check_numerical_grad
from .online_softmax_checks import check_online_attention, check_online_softmax
from .question_checks import check_answers, check_bias_gradients, check_score_change
from .recurrence_checks import check_gated_delta_chunk, check_gated_delta_step
from .rope_checks import check_rope
from .softmax_checks import check_softmax, check_softmax_backward
from .ttt_checks import check_ttt_grad, check_ttt_ln_grad

__all__ = [
    "Case",
    "Checker",
    "Hint",
    "check_answers",
    "check_attention",
    "check_attention_backward",
    "check_bias_gradients",
    "check_causal_mask",
    "check_delta_rule_update",
    "check_fast_weight_update",
    "check_gated_delta_chunk",
    "check_gated_delta_step",
    "check_gradient_checker",
    "check_layernorm_backward",
    "check_linear_attention_rnn",
    "check_merge_heads",
    "check_mha_backward",
    "check_mha_forward",
    "check_numerical_grad",
    "check_online_attention",
    "check_online_softmax",
    "check_padding_mask",
    "check_rope",
    "check_score_change",
    "check_softmax",
    "check_softmax_backward",
    "check_split_heads",
    "check_ttt_grad",
    "check_ttt_ln_grad",
    "grade",
    "matches",
    "matches_any",
    "raised",
    "when",
]

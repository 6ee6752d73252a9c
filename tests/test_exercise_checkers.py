"""The exercise checkers: right solutions pass, planted mistakes fail with their hint.

For every graded function there are at least two different correct solutions (loop
vs vectorised, two-pass vs online, ...) that must pass for several seeds, and at
least three planted mistakes that must fail; the FIRST hint printed must name the
mistake, or be the neutral "compare case X" message where no hint applies. Then the
guarantees every checker gives whatever the student's code does: a failed check
raises, the answer key cannot be called, odd return values, sys.exit and endless
loops are failed cases, never a crash or a hung cell.
"""

import hashlib
import re
import sys
import threading

import exercise_solutions as S
import numpy as np
import pytest

import attention_np as an
from attention_np import exercises as ex
from attention_np.exercises import (
    answer_key,
    attention_checks,
    backward_checks,
    cases,
    fast_weight_checks,
    gradchecker_checks,
    guard,
    heads_checks,
    layernorm_checks,
    linear_rnn_checks,
    masks_checks,
    mha_checks,
    numgrad_checks,
    online_softmax_checks,
    question_checks,
    recurrence_checks,
    rope_checks,
    softmax_checks,
    ttt_checks,
)

NEUTRAL = "no common mistake gives exactly this result"

# name -> (Checker, public check function, [correct solutions])
CHECKERS = {
    "softmax": (softmax_checks.SOFTMAX, ex.check_softmax,
                [S.softmax, S.softmax_rows, S.softmax_lse]),
    "softmax_backward": (softmax_checks.SOFTMAX_BACKWARD, ex.check_softmax_backward,
                         [S.softmax_backward, S.softmax_backward_jacobian]),
    "attention": (attention_checks.ATTENTION, ex.check_attention,
                  [S.attention, S.attention_loops]),
    "causal_mask": (masks_checks.CAUSAL, ex.check_causal_mask,
                    [S.causal_mask, S.causal_mask_loops]),
    "padding_mask": (masks_checks.PADDING, ex.check_padding_mask,
                     [S.padding_mask, S.padding_mask_loops]),
    "split_heads": (heads_checks.SPLIT, ex.check_split_heads,
                    [S.split_heads, S.split_heads_slices]),
    "merge_heads": (heads_checks.MERGE, ex.check_merge_heads,
                    [S.merge_heads, S.merge_heads_concat]),
    "mha_forward": (mha_checks.MHA_FORWARD, ex.check_mha_forward,
                    [S.mha_forward, S.mha_forward_loops]),
    "attention_backward": (backward_checks.ATTENTION_BACKWARD,
                           ex.check_attention_backward,
                           [S.attention_backward, S.attention_backward_loops]),
    "mha_backward": (mha_checks.MHA_BACKWARD, ex.check_mha_backward,
                     [S.mha_backward, S.mha_backward_own]),
    "numerical_grad": (numgrad_checks.NUMGRAD, ex.check_numerical_grad,
                       [S.numgrad, S.numgrad_copies]),
    "gradient_check": (gradchecker_checks.GRADIENT_CHECKER, ex.check_gradient_checker,
                       [S.grad_check, S.grad_check_sorted]),
    "score_change": (question_checks.CHANGE, ex.check_score_change,
                     [S.score_change, S.score_change_shift]),
    "bias_gradients": (question_checks.GRADIENTS, ex.check_bias_gradients,
                       [S.bias_gradients, S.bias_gradients_own]),
    "answers": (question_checks.ANSWERS, ex.check_answers,
                [lambda: S.ANSWERS, lambda: {**S.ANSWERS, "zero_gradient": ["b_k"]}]),
    "rope": (rope_checks.ROPE, ex.check_rope, [S.rope, S.rope_pairs]),
    "layernorm_backward": (layernorm_checks.LAYERNORM_BACKWARD,
                           ex.check_layernorm_backward,
                           [S.layernorm_backward, S.layernorm_backward_staged]),
    "online_softmax": (online_softmax_checks.ONLINE_SOFTMAX, ex.check_online_softmax,
                       [S.online_softmax, S.online_softmax_rows]),
    "online_attention": (online_softmax_checks.ONLINE_ATTENTION,
                         ex.check_online_attention,
                         [S.online_attention, S.online_attention_rows]),
    "linear_attention_rnn": (linear_rnn_checks.LINEAR_RNN,
                             ex.check_linear_attention_rnn,
                             [S.linear_attention_rnn, S.linear_attention_parallel]),
    "fast_weight_update": (fast_weight_checks.FAST_WEIGHT_UPDATE,
                           ex.check_fast_weight_update,
                           [S.fast_weight_update, S.fast_weight_update_einsum,
                            S.fast_weight_update_loop]),
    "delta_rule_update": (fast_weight_checks.DELTA_RULE_UPDATE,
                          ex.check_delta_rule_update,
                          [S.delta_rule_update, S.delta_rule_update_loop]),
    "ttt_grad": (ttt_checks.TTT_GRAD, ex.check_ttt_grad, [S.ttt_grad, S.ttt_grad_loop]),
    "ttt_ln_grad": (ttt_checks.TTT_LN_GRAD, ex.check_ttt_ln_grad,
                    [S.ttt_ln_grad, S.ttt_ln_grad_package]),
    "gated_delta_step": (recurrence_checks.GATED_DELTA_STEP, ex.check_gated_delta_step,
                         [S.gated_delta_step, S.gated_delta_step_householder]),
    "gated_delta_chunk": (recurrence_checks.GATED_DELTA_CHUNK,
                          ex.check_gated_delta_chunk,
                          [S.gated_delta_chunk, S.gated_delta_chunk_loop,
                           S.gated_delta_chunk_substitution]),
}  # fmt: skip


def with_bug(fn, bug):
    return lambda *a: fn(*a, bug=bug)


# (checker name, planted mistake, expected text of the first hint)
PLANTED = [
    ("softmax", lambda x: S.softmax(x, shift=None, safe=False), "overflows"),
    ("softmax", lambda x: S.softmax(x, safe=False), "every entry is -inf"),
    ("softmax", lambda x: S.softmax(x, axis=-2), "wrong axis"),
    ("softmax", lambda x: S.softmax(x, shift="global"), "max of the whole array"),
    ("softmax", lambda x: S.softmax(x, keepdims=False), "keepdims=True"),
    ("softmax", lambda x: S.softmax(x, inplace=True), "work on a copy"),
    ("softmax", lambda x: np.exp(x - np.max(x, -1, keepdims=True)), "do not sum to 1"),
    ("softmax", lambda x: None, "`return` line"),
    ("softmax", lambda x: S.softmax(x) + 1e-3, NEUTRAL),
    ("softmax_backward", with_bug(S.softmax_backward, "diagonal"), "diagonal"),
    ("softmax_backward", with_bug(S.softmax_backward, "axis"), "wrong axis"),
    ("softmax_backward", with_bug(S.softmax_backward, "unweighted"), "weight dout"),
    ("softmax_backward", with_bug(S.softmax_backward, "no y"), "factor y_j"),
    ("attention", lambda *a: S.attention(*a, scale=lambda d: 1.0), "missing scale"),
    ("attention", lambda *a: S.attention(*a, scale=lambda d: 1 / d), "not d"),
    ("attention", lambda *a: S.attention(*a, scale=lambda d: 0.3), NEUTRAL),
    ("attention", lambda *a: S.attention(*a, axis=-2), "wrong axis"),
    ("attention", lambda *a: S.attention(*a, invert=True), "inverted mask"),
    ("attention", lambda *a: S.attention(*a, after=True), "after softmax"),
    ("attention", lambda *a: S.attention(*a, fill=0.0), "exp(0) = 1"),
    ("attention", lambda *a: S.attention(*a, fill=-1e9), "finite fill value"),
    ("attention", lambda *a: S.attention(*a, fill=-1e9, add=True), "finite fill"),
    ("attention", lambda *a: S.attention(*a, shift=None), "overflows"),
    ("attention", lambda *a: S.attention(*a, shift="global"), "max of the whole"),
    ("attention", lambda *a: S.attention(*a, safe=False), "attend to nothing"),
    ("attention", lambda *a: S.attention(*a, k_t=lambda k: k.T), "reverses ALL axes"),
    ("attention",
     lambda q, k, v, mask=None: S.attention(q, k, v, mask if mask else None),
     "is not None"),
    ("attention", lambda q, k, v, mask, scale: None, "signature differs"),
    ("causal_mask", with_bug(S.causal_mask, "inverted"), "inverted mask"),
    ("causal_mask", with_bug(S.causal_mask, "no diagonal"), "diagonal is missing"),
    ("causal_mask", with_bug(S.causal_mask, "float"), "boolean array"),
    ("causal_mask", with_bug(S.causal_mask, "bottom right"), "bottom-right"),
    ("padding_mask", with_bug(S.padding_mask, "off by one"), "off by one"),
    ("padding_mask", with_bug(S.padding_mask, "(B, M)"), "(B, 1, 1, M)"),
    ("padding_mask", with_bug(S.padding_mask, "inverted"), "inverted mask"),
    ("split_heads", with_bug(S.split_heads, "reshape only"), "without the transpose"),
    ("split_heads", with_bug(S.split_heads, "interleaved"), "contiguous"),
    ("split_heads", with_bug(S.split_heads, "no transpose"), "wrong order"),
    ("merge_heads", with_bug(S.merge_heads, "reshape only"), "without the transpose"),
    ("merge_heads", with_bug(S.merge_heads, "interleaved"), "contiguous"),
    ("merge_heads", with_bug(S.merge_heads, "heads first"), NEUTRAL),
    ("mha_forward", lambda *a: S.mha_forward(*a, split=S.split_heads_slices,
     merge=lambda t: S.merge_heads(t, bug="reshape only")), "merged without"),
    ("mha_forward", lambda *a: S.mha_forward(*a, proj=False), "output projection"),
    ("mha_forward", lambda *a: S.mha_forward(*a, scale=lambda D: 1 / np.sqrt(D)),
     "d = D / n_heads"),
    ("mha_forward", lambda *a: S.mha_forward(*a, bias=False), "biases are missing"),
    ("mha_forward", lambda *a: S.mha_forward(*a, w_t=True), "no transpose"),
    ("mha_forward", lambda *a: S.mha_forward(*a, use_mask=False), "mask is ignored"),
    ("attention_backward", with_bug(S.attention_backward, "dv"), "dv needs P"),
    ("attention_backward", with_bug(S.attention_backward, "dk"), "dk needs dS"),
    ("attention_backward", with_bug(S.attention_backward, "dq"), "no transpose on dS"),
    ("attention_backward", with_bug(S.attention_backward, "scale"), "scale is missing"),
    ("attention_backward", with_bug(S.attention_backward, "row"), "row term"),
    ("attention_backward", with_bug(S.attention_backward, "dP"), "dP needs v"),
    ("attention_backward", lambda *a: S.attention_backward(*a)[:2], "exactly the"),
    ("mha_backward", with_bug(S.mha_backward, "dx_q only"), "three paths"),
    ("mha_backward", with_bug(S.mha_backward, "W^T"), "dW is the transpose"),
    ("mha_backward", with_bug(S.mha_backward, "db not summed"), "bias is added"),
    ("mha_backward", with_bug(S.mha_backward, "missing key"), "exactly the keys"),
    ("numerical_grad", with_bug(S.numgrad, "ones"), "as if dout were all ones"),
    ("numerical_grad", with_bug(S.numgrad, "h"), "factor 2"),
    ("numerical_grad", with_bug(S.numgrad, "one-sided"), "one-sided"),
    ("numerical_grad", with_bug(S.numgrad, "no restore"), "put the old value back"),
    ("gradient_check", with_bug(S.grad_check, "ones"), "constant dout"),
    ("gradient_check", with_bug(S.grad_check, "relative"), "relative error"),
    ("gradient_check", with_bug(S.grad_check, "loose"), "10% too large"),
    ("gradient_check", with_bug(S.grad_check, "first entry"), "ONE wrong entry"),
    ("gradient_check", with_bug(S.grad_check, "abs"), "returns -dx"),
    ("gradient_check", with_bug(S.grad_check, "ignores tolerances"), "atol or rtol"),
    ("gradient_check", with_bug(S.grad_check, "mean"), "largest |difference|"),
    ("gradient_check", with_bug(S.grad_check, "assert"), "must RETURN False"),
    ("gradient_check", with_bug(S.grad_check, "float"), "(a bool)"),
    ("gradient_check", lambda f, b, x, rng, *tol: True, "never called backward"),
    ("score_change", lambda q, k, b, s: S.score_change(q, k, b, 1.0), "scale is"),
    ("score_change", lambda q, k, b, s: S.score_change(q, k, -b, s), "sign is flipped"),
    ("score_change", lambda q, k, b, s: s * (q @ b), "full (..., N, M) change"),
    ("bias_gradients", with_bug(S.bias_gradients, "no mask"), "without the mask"),
    ("bias_gradients", with_bug(S.bias_gradients, "signed max"), "ABSOLUTE"),
    ("bias_gradients", with_bug(S.bias_gradients, "mean"), "not the mean"),
    ("bias_gradients", lambda *a: {"b_q": 1.0, "b_k": 0.0, "b_v": 1.0, "b_o": 2.0},
     "they are new at every call"),
    ("answers", lambda: {**S.ANSWERS, "zero_gradient": {"b_k", "b_v"}}, "b_v does get"),
    ("answers", lambda: {**S.ANSWERS, "zero_gradient": set()}, "about 1e-16"),
    ("answers", lambda: {**S.ANSWERS, "rows_constant": False}, "look along a row"),
    ("answers", lambda: {"rows_constant": True}, "must return a dict"),
    ("rope", with_bug(S.rope, "rotate half"), "rotate-half layout"),
    ("rope", with_bug(S.rope, "direction"), "wrong way round"),
    ("rope", with_bug(S.rope, "-i/d"), "frequencies are wrong"),
    ("rope", with_bug(S.rope, "from 1"), "positions start at 0"),
    ("rope", with_bug(S.rope, "overwrite"), "ORIGINAL pair"),
    ("rope", with_bug(S.rope, "no minus"), "keeps the length"),
    ("rope", with_bug(S.rope, "ignore positions"), "use the `positions` argument"),
    ("rope", with_bug(S.rope, "1-D positions"), "leading axes"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "constants"), "as constants"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "no mean"), "the mean is"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "no var"), "the variance is"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "eps"), "eps goes inside"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "ddof"), "biased variance"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "not summed"), "add up"),
    ("layernorm_backward", with_bug(S.layernorm_backward, "axis 0"), "add up"),
    ("online_softmax", with_bug(S.online_softmax, "no rescale"), "rescaled to the new"),
    ("online_softmax", with_bug(S.online_softmax, "factor"), "upside down"),
    ("online_softmax", with_bug(S.online_softmax, "no guard"), "-inf - (-inf) = NaN"),
    ("online_softmax", with_bug(S.online_softmax, "m0 = 0"), "start the running max"),
    ("online_softmax", with_bug(S.online_softmax, "empty row"), "no finite score"),
    ("online_softmax", with_bug(S.online_softmax, "log l"), "lse = m + log(l)"),
    ("online_softmax", with_bug(S.online_softmax, "block max"), "block's own max"),
    ("online_attention", with_bug(S.online_attention, "acc"), "accumulator was not"),
    ("online_attention", with_bug(S.online_attention, "no rescale"), "rescaled to"),
    ("online_attention", with_bug(S.online_attention, "factor"), "upside down"),
    ("online_attention", with_bug(S.online_attention, "no guard"), "-inf - (-inf)"),
    ("online_attention", with_bug(S.online_attention, "no division"), "divided by"),
    ("online_attention", with_bug(S.online_attention, "empty row"), "0 / 0 = NaN"),
    ("online_attention", with_bug(S.online_attention, "block max"), "block's own max"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "read first"), "BEFORE"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "no normaliser"),
     "normaliser is missing"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "elu"), "not elu(x)"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "raw"), "feature map"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "transposed"),
     "outer product is transposed"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "after the loop"),
     "non-causal"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "constant eps"),
     "the eps argument"),
    ("linear_attention_rnn", with_bug(S.linear_attention_rnn, "eps in numerator"),
     "the eps argument"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "no decay"), "must decay"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "decay on new"),
     "OLD memory only"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "inner product"),
     "not the number h . h"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "np.outer"),
     "np.outer flattens"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "batch sum"),
     "one outer product per batch row"),
    ("fast_weight_update", with_bug(S.fast_weight_update, "in place"), "on a copy"),
    ("delta_rule_update", with_bug(S.delta_rule_update, "sum rule"), "the sum rule"),
    ("delta_rule_update", with_bug(S.delta_rule_update, "transposed"), "transposed"),
    ("delta_rule_update", with_bug(S.delta_rule_update, "S k"), "S k reads"),
    ("delta_rule_update", with_bug(S.delta_rule_update, "sign"), "sign of the"),
    ("delta_rule_update", with_bug(S.delta_rule_update, "scalar beta"), "two new axes"),
    ("ttt_grad", with_bug(S.ttt_grad, "target x_v"), "the target is x_v - x_k"),
    ("ttt_grad", with_bug(S.ttt_grad, "transposed"), "dW is transposed"),
    ("ttt_grad", with_bug(S.ttt_grad, "per token"), "gradients add up"),
    ("ttt_grad", with_bug(S.ttt_grad, "mean"), "SUM over the m tokens"),
    ("ttt_grad", with_bug(S.ttt_grad, "last token"), "not just the last one"),
    ("ttt_grad", with_bug(S.ttt_grad, "sign"), "sign is flipped"),
    ("ttt_ln_grad", with_bug(S.ttt_ln_grad, "no LN backward"), "layer norm's backward"),
    ("ttt_ln_grad", with_bug(S.ttt_ln_grad, "target x_v"), "the target is x_v - x_k"),
    ("ttt_ln_grad", with_bug(S.ttt_ln_grad, "transposed"), "dW is transposed"),
    ("ttt_ln_grad", with_bug(S.ttt_ln_grad, "default eps"), "eps argument"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "decay after"),
     "decays *before* the write"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "undecayed read"),
     "from the decayed state"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "read before"),
     "after writing the current token"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "sum rule"),
     "writes the correction"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "no beta"), "beta is missing"),
    ("gated_delta_step", with_bug(S.gated_delta_step, "in place"), "on a copy"),
    ("gated_delta_step",
     lambda *a: tuple(x.T for x in S.gated_delta_step_householder(*a)), "k along"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "exp product"),
     "mask them before exp"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "unmasked"),
     "tokens j <= i only"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "inter"),
     "not Q S0"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "decay S"),
     "whole chunk's decay"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "no S0 in U"),
     "including the incoming state"),
    ("gated_delta_chunk", with_bug(S.gated_delta_chunk, "keys"),
     "until the end of the chunk"),
    ("gated_delta_chunk",
     lambda *a: (S.gated_delta_chunk(*a)[0] - 1e-3, S.gated_delta_chunk(*a)[1]),
     NEUTRAL),
]  # fmt: skip

SEEDS = [0, 1, 2]


def run(name, fn, capsys, seed):
    ok = CHECKERS[name][0].run(fn, seed=seed)
    return ok, capsys.readouterr().out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, (_, _, sols) in CHECKERS.items() for i in range(len(sols))],
)
def test_every_correct_solution_passes(name, index, seed, capsys):
    ok, out = run(name, CHECKERS[name][2][index], capsys, seed)
    assert ok is True, out
    assert "✗" not in out and "cases pass" in out


def planted_id(entry):
    return f"{entry[0]}: {entry[2][:30]}"


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize(("name", "fn", "hint"), PLANTED, ids=map(planted_id, PLANTED))
def test_planted_mistake_fails_with_its_hint(name, fn, hint, seed, capsys):
    ok, out = run(name, fn, capsys, seed)
    assert ok is False, out
    first_hint = next(line for line in out.splitlines() if "Hint:" in line)
    assert hint in first_hint, out


@pytest.mark.parametrize("name", CHECKERS)
def test_every_graded_function_has_two_solutions_and_three_planted_mistakes(name):
    assert len(CHECKERS[name][2]) >= 2
    assert sum(entry[0] == name for entry in PLANTED) >= 3


# --- the hints never give the solution away -------------------------------------------

SOLUTION_LINES = {
    "softmax": ["np.exp(x - m)", "e / np.where(s == 0, 1.0, s)"],
    "softmax_backward": [
        "y * (dout - row)",
        "np.sum(dout * y, axis=-1, keepdims=True)",
    ],
    "fast_weight_update": ["h[:, :, None] * h[:, None, :]"],
    "delta_rule_update": ["k[..., :, None] * (v - stored)[..., None, :]"],
    "ttt_grad": ["x_k.T @ G, G.sum(axis=0)"],
}


@pytest.mark.parametrize("name", CHECKERS)
def test_no_hint_contains_solution_code(name):
    checker = CHECKERS[name][0]
    texts = [h.text for h in checker.hints]
    for line in SOLUTION_LINES.get(name, []):
        assert not any(line in t for t in texts), line


# --- graded entry point: raises, and nothing a student can set changes that -----


def test_a_failed_check_raises_assertion_error_after_printing_the_report(capsys):
    with pytest.raises(AssertionError, match=r"softmax\(x\) -> y: \d/6 cases pass"):
        ex.check_softmax(lambda x: S.softmax(x, axis=-2))
    out = capsys.readouterr().out
    assert "✗" in out and "Hint:" in out and "seed" in out


def test_a_passing_check_returns_none_so_nbgrader_sees_no_partial_credit(capsys):
    assert ex.check_softmax(S.softmax) is None
    assert "✓ 6/6 cases pass" in capsys.readouterr().out


def test_a_stub_raises_not_implemented_as_assertion_error(capsys):
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        ex.check_softmax(stub)
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "1", ""])
def test_no_environment_variable_turns_failures_into_passes(monkeypatch, value):
    for name in ("ATTENTION_NP_STRICT", "ATTENTION_NP_GRADING", "NBGRADER"):
        monkeypatch.setenv(name, value)
    with pytest.raises(AssertionError):
        ex.check_softmax(lambda x: x)


def test_every_run_draws_new_cases_so_recorded_answers_fail(capsys):
    table = {}

    def recorder(x):
        table[x.tobytes()] = S.softmax(x)
        return table[x.tobytes()]

    def replay(x):
        return table[x.tobytes()]

    ex.check_softmax(recorder)  # a student's visible run
    with pytest.raises(AssertionError):
        ex.check_softmax(replay)  # the grader's run
    assert "KeyError" in capsys.readouterr().out


def test_a_seed_repeats_the_cases_of_a_run(capsys):
    first = softmax_checks.SOFTMAX.make_cases(np.random.default_rng(7))
    again = softmax_checks.SOFTMAX.make_cases(np.random.default_rng(7))
    assert all(
        np.array_equal(a.args[0], b.args[0]) for a, b in zip(first, again, strict=True)
    )


def _case_key(case):
    parts = [np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else
             repr(a).encode() for a in case.args]  # fmt: skip
    return hashlib.sha1(b"|".join(parts)).hexdigest()


# A fixed multiple-choice question: its "cases" are the questions themselves.
SAME_CASES_EVERY_RUN = {"answers"}


@pytest.mark.parametrize("name", sorted(set(CHECKERS) - SAME_CASES_EVERY_RUN))
def test_answers_copied_from_thirty_visible_runs_cover_no_fresh_run(name):
    """A student may run a check cell many times and paste a table of every input
    seen -> its right output. The cases of a grading run must (almost) never all
    be in such a table, so each checker draws from a space far larger than that."""
    checker = CHECKERS[name][0]

    def cases(seed):
        return checker.make_cases(np.random.default_rng(seed))

    table = {_case_key(c) for seed in range(30) for c in cases(seed)}
    covered = [
        s for s in range(1000, 1100) if all(_case_key(c) in table for c in cases(s))
    ]
    assert not covered, f"{name}: a table of 30 runs covers fresh seeds {covered}"


def test_random_sizes_defeat_a_table_of_visible_masks(capsys):
    runs = [masks_checks.CAUSAL.make_cases(np.random.default_rng(s)) for s in range(30)]
    sizes = {c.args for cases in runs for c in cases}
    table = {s: S.causal_mask(*s) for s in sizes}
    assert not masks_checks.CAUSAL.run(lambda N, M: table[(N, M)], seed=12345)


# --- the answer key cannot be called ------------------------------------------------

CHEATS = {
    "softmax": lambda x: an.softmax_forward(x)[0],
    "softmax_backward": lambda dout, y: an.softmax_backward(dout, (y,)),
    "attention": lambda q, k, v, mask=None: an.attention_forward(
        q, k, v, mask, causal=False)[0],
    "causal_mask": lambda N, M: an.causal_mask(N, M),
    "padding_mask": lambda lengths, M: an.padding_mask(lengths, M),
    "split_heads": lambda x, H: an.split_heads(x, H),
    "merge_heads": lambda x: an.merge_heads(x),
    "mha_forward": lambda x, p, H, mask=None: an.mha_forward(
        x, x, p, mask, n_heads=H, causal=False)[0],
    "attention_backward": lambda dout, q, k, v, P: an.attention_backward(
        dout, an.attention_forward(q, k, v, causal=False)[1]),
    "mha_backward": lambda dout, x, p, H, mask=None: an.mha_backward(
        dout, an.mha_forward(x, x, p, mask, n_heads=H, causal=False)[1]),
    "numerical_grad": lambda f, x, dout, h=1e-6: an.numerical_grad(f, x, dout, h),
    "gradient_check": lambda f, b, x, rng, atol=1e-7, rtol=1e-6: bool(
        np.allclose(b(np.ones(np.shape(f(x)[0])), f(x)[1]), an.numerical_grad(
            lambda z: f(z)[0], x, np.ones(np.shape(f(x)[0]))))),
    "rope": lambda x, positions=None, base=1e4: __import__(
        "attention_np.positional").positional.rope_forward(x, positions, base=base)[0],
    "layernorm_backward": lambda dout, x, gamma, eps=1e-5: an.layernorm_backward(
        dout, an.layernorm_forward(x, gamma, 0 * gamma, eps=eps)[1]),
    "online_softmax": lambda x, block: (an.softmax_forward(x)[0], None),
    "online_attention": lambda s, v, block: an.softmax_forward(s)[0] @ v,
    "linear_attention_rnn": lambda q, k, v, eps=1e-6: __import__(
        "attention_np.efficient").efficient.linear_attention_forward(
        q, k, v, feature_map="elu+1", causal=True, form="recurrent", eps=eps)[0],
    "fast_weight_update": lambda A, h, lam, eta: __import__(
        "attention_np.memory").memory.fast_weight_update(A, h, lam=lam, eta=eta),
    "delta_rule_update": lambda S_, k, v, beta: __import__(
        "attention_np.memory").memory.delta_rule_forward(
        k[..., None, :], k[..., None, :], v[..., None, :],
        np.asarray(beta, float)[..., None], initial_state=S_)[1].final_state,
    "ttt_grad": lambda x_k, x_v, W, b: __import__(
        "attention_np.memory.ttt_inner").memory.ttt_inner.ln_l2_grad_forward(
        x_k @ W + b, x_v - x_k, np.ones(len(b)), np.zeros(len(b)))[0],
    "ttt_ln_grad": lambda x_k, x_v, W, b, g, be, eps=1e-6: __import__(
        "attention_np.memory.ttt_inner").memory.ttt_inner.ln_l2_grad_forward(
        x_k @ W + b, x_v - x_k, g, be, eps=eps)[0],
    "gated_delta_step": lambda S_, q, k, v, a, b: (
        lambda r: (r[0][0], r[1].final_state))(
        __import__("attention_np.recurrences").recurrences.gated_deltanet_forward(
            q[None], k[None], v[None], np.log([a]), np.array([b]), S_, scale=1.0)),
    "gated_delta_chunk": lambda S0, Q, K, V, la, b: (
        lambda r: (r[0], r[1].final_state))(
        __import__("attention_np.recurrences").recurrences.gated_deltanet_forward(
            Q, K, V, la, b, S0, form="chunkwise", scale=1.0)),
}  # fmt: skip

# the checkers' own reference functions are off limits too
REFERENCE_CHEATS = {
    "softmax": lambda x: __import__(
        "attention_np.exercises._ref").exercises._ref.softmax(x),
    "attention": lambda q, k, v, mask=None: attention_checks._ref.attention(
        q, k, v, mask)[0],
    "mha_backward": lambda dout, x, p, H, mask=None: mha_checks._ref.mha_backward(
        dout, x, p, H, mask),
    "bias_gradients": lambda x, p, dout, H, mask=None: {
        n: float(np.abs(g).max())
        for n, g in mha_checks._ref.mha_backward(dout, x, p, H, mask)[1].items()},
    "score_change": lambda q, k, b, s: question_checks._ref.attention(q, k, k)[0] * 0,
    "delta_rule_update": fast_weight_checks._delta_reference,
    "gated_delta_step": recurrence_checks._step_reference,
    "gated_delta_chunk": recurrence_checks._chunk_reference,
    "linear_attention_rnn": lambda q, k, v, eps=1e-6: linear_rnn_checks._parallel(
        q, k, v, eps),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CHEATS))
def test_calling_the_package_implementation_fails_with_a_message_saying_so(
    name, capsys
):
    ok, out = run(name, CHEATS[name], capsys, 0)
    assert ok is False
    assert "your function calls attention_np." in out and "Write it yourself" in out


@pytest.mark.parametrize("name", list(REFERENCE_CHEATS))
def test_calling_the_checkers_reference_fails_too(name, capsys):
    ok, out = run(name, REFERENCE_CHEATS[name], capsys, 0)
    assert ok is False
    assert "your function calls attention_np.exercises." in out


def test_every_name_in_the_answer_key_resolves():
    """A renamed package function must not switch the detection off silently."""
    names = [n for n in answer_key.ALL if isinstance(n, str)]
    codes = guard.resolve(names)
    assert len(set(codes.values())) == len(set(names))


def test_an_alias_of_the_reference_is_caught_too(capsys):
    from attention_np.softmax import softmax_forward as my_softmax

    ok, out = run("softmax", lambda x: my_softmax(x)[0], capsys, 0)
    assert not ok and "attention_np.softmax.softmax_forward" in out


def test_catching_every_exception_does_not_hide_a_call_of_the_answer_key(capsys):
    def sneaky(x):
        try:
            return an.softmax_forward(x)[0]
        except BaseException:  # noqa: BLE001 (what a student might try)
            return None

    ok, out = run("softmax", sneaky, capsys, 0)
    assert not ok and "your function calls" in out


def test_a_call_of_the_answer_key_moved_into_a_thread_is_caught_too(capsys):
    """The profile hook of the student's thread does not follow a thread it starts:
    ``pool.submit(an.softmax_forward, x)`` must be caught as well."""
    from concurrent.futures import ThreadPoolExecutor

    def in_a_pool(x):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(an.softmax_forward, x).result()[0]

    def in_a_thread(x):
        box = []
        worker = threading.Thread(target=lambda: box.append(an.softmax_forward(x)))
        worker.start()
        worker.join()
        return box[0][0]

    for cheat in (in_a_pool, in_a_thread):
        ok, out = run("softmax", cheat, capsys, 0)
        assert not ok and "attention_np.softmax.softmax_forward" in out
    assert threading.getprofile() is None


def test_own_code_in_a_thread_still_passes(capsys):
    from concurrent.futures import ThreadPoolExecutor

    def in_a_pool(x):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(S.softmax, x).result()

    ok, out = run("softmax", in_a_pool, capsys, 0)
    assert ok, out


# --- never crash, never hang ----------------------------------------------------------


class Unreadable:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("cannot be an array")

    def __eq__(self, other):
        raise RuntimeError("cannot be compared")

    __hash__ = object.__hash__


def forever(*args):
    while True:
        pass


def exits(*args):
    sys.exit(3)


EVIL = {
    "returns None": lambda *a: None,
    "wrong shape": lambda *a: np.zeros(3),
    "unreadable object": lambda *a: Unreadable(),
    "a tuple of unreadable objects": lambda *a: (Unreadable(),) * 3,
    "a string": lambda *a: "42",
    "a ragged list": lambda *a: [np.zeros(2), np.zeros(3)],
    "calls sys.exit": exits,
    "raises KeyboardInterrupt-free BaseException": lambda *a: (_ for _ in ()).throw(
        GeneratorExit()
    ),
    "never returns": forever,
}


@pytest.mark.parametrize("evil", EVIL)
@pytest.mark.parametrize("name", CHECKERS)
def test_odd_student_code_gives_a_failed_case_not_a_crash_or_a_hang(
    name, evil, capsys, monkeypatch
):
    monkeypatch.setattr(cases, "TIME_LIMIT", 0.2)
    ok, out = run(name, EVIL[evil], capsys, 0)
    assert ok is False
    assert "✗" in out and "Traceback" not in out
    if evil == "never returns":
        assert "did not return within 0.2 s" in out
    if evil == "calls sys.exit":
        assert "sys.exit()" in out


def test_the_time_limit_also_works_outside_the_main_thread(capsys, monkeypatch):
    """Off the main thread there is no alarm: the checker gives up on the student's
    thread, which runs on. The test stops its loop afterwards, or it would hold the
    GIL and slow every later test in this process."""
    monkeypatch.setattr(cases, "TIME_LIMIT", 0.2)
    stop = threading.Event()

    def spins(*args):
        while not stop.is_set():
            pass

    result = []
    worker = threading.Thread(
        target=lambda: result.append(run("softmax", spins, capsys, 0))
    )
    try:
        worker.start()
        worker.join(10)
    finally:
        stop.set()
    assert result and result[0][0] is False


def test_a_case_that_times_out_ends_the_check(capsys, monkeypatch):
    monkeypatch.setattr(cases, "TIME_LIMIT", 0.2)
    ok, out = run("mha_backward", forever, capsys, 0)
    assert out.count("✗") == 1


def test_the_alarm_is_disarmed_after_a_check():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    ex.check_softmax(S.softmax)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
    assert sys.getprofile() is None


def test_checkers_leave_the_global_random_state_alone():
    np.random.seed(3)
    expected = np.random.random()
    np.random.seed(3)
    ex.check_attention(S.attention)
    assert np.random.random() == expected


def test_a_result_instead_of_a_function_is_explained(capsys):
    with pytest.raises(AssertionError):
        ex.check_softmax(np.zeros(3))
    assert "pass the function itself" in capsys.readouterr().out


def test_verdict_names_the_case_the_element_and_expected_vs_got(capsys):
    ok, out = run("softmax", lambda x: S.softmax(x, safe=False), capsys, 0)
    line = next(s for s in out.splitlines() if "✗ a row that is all -inf" in s)
    assert re.search(r"y\[1, \d, 0\] is NaN, expected 0", line)


# --- a student function that fights the time limit, or interrupts itself ----------


def _in_a_child(code, timeout):
    """Run ``code`` (which uses ``ex``, ``time``) in a fresh interpreter; (rc, out,
    seconds). A hang is bounded by ``timeout`` and killed, never left spinning."""
    import os
    import subprocess
    import time

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:  # the child is killed by subprocess.run
        pytest.fail(f"the check cell did not return within {timeout} s")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


SWALLOWS = {
    "one loop": """
def f(x):
    while True:
        try:
            time.sleep(0.01)
        except BaseException:
            pass
""",
    "a busy loop": """
def f(x):
    while True:
        try:
            sum(range(1000))
        except BaseException:
            pass
""",
    "catches and returns a wrong answer": """
def f(x):
    try:
        while True:
            time.sleep(0.01)
    except BaseException:
        return x
""",
}


@pytest.mark.parametrize("swallow", SWALLOWS)
def test_a_function_that_swallows_the_time_limit_still_times_out(swallow):
    """The alarm's CaseTimeout is caught by the student's `except BaseException:`:
    the check cell must still end, with the time-limit message, within seconds."""
    code = f"""
import time
from attention_np.exercises import cases
import attention_np.exercises as ex
cases.TIME_LIMIT = 0.3
{SWALLOWS[swallow]}
try:
    ex.check_softmax(f)
except AssertionError as e:
    print("SUMMARY", e)
"""
    rc, out, seconds = _in_a_child(code, timeout=30)
    assert rc == 0, out
    assert "did not return within 0.3 s" in out and "SUMMARY" in out, out
    assert seconds < 15, seconds


def test_a_checker_with_no_cases_fails(capsys):
    """0/0 is not a pass: e.g. an answer cell that empties a module's case table."""
    from dataclasses import replace

    empty = replace(softmax_checks.SOFTMAX, make_cases=lambda rng: [])
    assert empty.run(S.softmax, seed=0) is False
    assert "no case was checked" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="no case was checked"):
        ex.grade(empty, S.softmax, seed=0)


def interrupts(*args):
    raise KeyboardInterrupt


def test_a_function_that_raises_keyboard_interrupt_is_a_failed_check(capsys):
    """Raised by the function (or a Ctrl-C while it runs): the check ends with its
    AssertionError summary, the other cases not run."""
    with pytest.raises(AssertionError, match="KeyboardInterrupt"):
        ex.check_softmax(interrupts)
    out = capsys.readouterr().out
    assert out.count("✗") == 1 and "the other cases were not run" in out


def test_a_real_interrupt_while_the_function_runs_ends_the_check(capsys):
    import os
    import signal

    def ctrl_c(x):
        os.kill(os.getpid(), signal.SIGINT)  # as the kernel's interrupt button
        return S.softmax(x)

    with pytest.raises(AssertionError, match="KeyboardInterrupt"):
        ex.check_softmax(ctrl_c)


def test_an_interrupt_between_cases_still_interrupts(monkeypatch):
    """Ctrl-C while the checker's own code runs is not caught."""
    real = cases.run_case
    calls = []

    def run_case(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr("attention_np.exercises.framework.run_case", run_case)
    with pytest.raises(KeyboardInterrupt):
        ex.check_softmax(S.softmax)


class BadMessage(Exception):
    def __str__(self):
        sys.exit(1)


def test_student_code_never_runs_after_the_call(capsys, monkeypatch):
    """An exception whose __str__ exits, or a function that swaps sys.stdout: a
    failed case, the report printed where it belongs."""

    def raises_bad(x):
        raise BadMessage()

    with pytest.raises(AssertionError, match="BadMessage"):
        ex.check_softmax(raises_bad)

    def swaps_stdout(x):
        import io

        sys.stdout = io.StringIO()
        return x

    with pytest.raises(AssertionError):
        ex.check_softmax(swaps_stdout)
    assert "✗" in capsys.readouterr().out


class Lazy:
    """A returned object whose conversion to an array runs code: the answer key, an
    exit, an endless loop."""

    def __init__(self, x, then):
        self.x, self.then = x, then

    def __array__(self, *args, **kwargs):
        return self.then(self.x)


def _endless(x):
    while True:
        pass


LAZY = {
    "calls the answer key": lambda x: an.softmax_forward(x),
    "exits": lambda x: sys.exit(0),
    "never returns": _endless,
}


@pytest.mark.parametrize("lazy", LAZY)
def test_a_returned_object_is_read_under_the_guard(lazy, capsys, monkeypatch):
    """Its __array__ runs inside the time limit and the answer-key watch: the
    package's softmax called there is caught, an exit or a hang is a failed case."""
    monkeypatch.setattr(cases, "TIME_LIMIT", 0.2)
    ok, out = run("softmax", lambda x: Lazy(x, LAZY[lazy]), capsys, 0)
    assert ok is False and "✗" in out
    if lazy == "calls the answer key":
        assert "softmax_forward" in out
    if lazy == "never returns":
        assert "did not return within 0.2 s" in out

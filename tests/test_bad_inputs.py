"""The bad-input catalogue: each misuse raises ValueError/TypeError with a message that
names the argument and the offending shape or value, and leaves the caller's arrays
untouched. The second half tests the documented NaN/inf policy for valid-typed inputs:
non-finite values are not scanned for, they propagate to the rows they touch."""

import re

import numpy as np
import pytest

import attention_np as an
from attention_np import viz
from attention_np.additive import (
    additive_attention_backward,
    additive_attention_forward,
    init_additive_params,
    luong_attention_backward,
    luong_attention_forward,
)
from attention_np.decoding import gqa_attention_backward, gqa_attention_forward
from attention_np.gradcheck import (
    check_layer,
    grad_report,
    numerical_grad,
    numerical_grads,
    rel_error,
)
from attention_np.positional import rope_backward, rope_forward

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 6))
k = R.standard_normal((2, 3, 5, 6))
v = R.standard_normal((2, 3, 5, 7))
x = R.standard_normal((2, 4, 12))
x_kv = R.standard_normal((2, 5, 8))
scores = R.standard_normal((2, 5))
P = an.init_mha_params(12, 3, rng=np.random.default_rng(1))
P_CROSS = an.init_mha_params(12, 3, rng=np.random.default_rng(1), d_kv=8)
_, ATT_CACHE = an.attention_forward(q, k, v)
_, SOFTMAX_CACHE = an.softmax_forward(scores)
_, MHA_CACHE = an.mha_forward(x, x, P, 3)
_, LINEAR_CACHE = an.linear_forward(x, P["W_q"])

# sub-packages: caches for the dout checks, inputs for the boolean options
_, GQA_CACHE = gqa_attention_forward(q, k[:, :1], v[:, :1])  # G = 1 of H = 3
ADD_P = init_additive_params(6, 6, 5, rng=np.random.default_rng(4))
_, ADD_CACHE = additive_attention_forward(q, k, v, ADD_P)
_, LUONG_CACHE = luong_attention_forward(q, k, v)
_, ROPE_CACHE = rope_forward(q)


ARRAYS = [q, k, v, x, x_kv, scores, *P.values(), *P_CROSS.values()]
        TypeError,
        lit("causal must be True or False, got 1"),
    ),
    (
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
    ),
    (
        "init_mha_params bias='no'",
        lambda: an.init_mha_params(12, 3, rng=np.random.default_rng(0), bias="no"),
        TypeError,
        lit("bias must be True or False, got 'no'"),
    ),
    (
    ),
    (
        "plot_attention colorbar='yes'",
        lambda: viz.plot_attention(scores, colorbar="yes"),
        TypeError,
        lit("colorbar must be True or False, got 'yes'"),
    ),
    (
        "plot_heads diverging=1",
        lambda: viz.plot_heads(q[0], diverging=1),
        TypeError,
        lit("diverging must be True or False, got 1"),
    ),
    (
        "plot_mask legend=None",
        lambda: viz.plot_mask(np.ones((3, 3), bool), legend=None),
        TypeError,
        lit("legend must be True, False or 'below', got None"),
    ),
    # --- softmax ---------------------------------------------------------------------
    (
        "softmax of ints",
        lambda: an.softmax_forward(np.arange(5)),
        TypeError,
        lit("x must be a float16/float32/float64 array, got dtype int64"),
    ),
    (
        "softmax of a 0-d array",
        lambda: an.softmax_forward(np.array(1.0)),
        ValueError,
        lit("x must have at least 1 dimension, got shape ()"),
    ),
    (
        "softmax mask of wrong shape",
        lambda: an.softmax_forward(scores, np.ones(3, bool)),
        ValueError,
        lit("mask(3,) does not broadcast to the scores' shape (2, 5)"),
    ),
    (
        "softmax float mask",
        lambda: an.softmax_forward(scores, np.ones(5)),
        TypeError,
        lit("mask must be a boolean array (True = may attend), got dtype float64"),
    ),
    # --- mask builders ---------------------------------------------------------------
    (
        "causal align typo",
        lambda: an.causal_mask(4, align="bottom-right"),
        ValueError,
        lit("align must be one of ('top_left', 'bottom_right'), got 'bottom-right'"),
    ),
    (
        "causal negative N",
        lambda: an.causal_mask(-1),
        ValueError,
        lit("N must be >= 0, got -1"),
    ),
    (
        "causal negative M",
        lambda: an.causal_mask(4, -2),
        ValueError,
        lit("M must be >= 0, got -2"),
    ),
    (
        "causal float N",
        lambda: an.causal_mask(4.5),
        TypeError,
        lit("N must be an int, got float 4.5"),
    ),
    (
        "causal bool N",
        lambda: an.causal_mask(True),
        TypeError,
        lit("N must be an int, got bool True"),
    ),
    (
        "lengths longer than M",
        lambda: an.padding_mask([3, 7], 5),
        ValueError,
        lit("lengths must lie in [0, M=5], got [3, 7]"),
    ),
    (
        "negative length",
        lambda: an.padding_mask([-1, 2], 5),
        ValueError,
        lit("lengths must lie in [0, M=5], got [-1, 2]"),
    ),
    (
        "fractional length",
        lambda: an.padding_mask([2.5], 5),
        TypeError,
        lit("lengths must be integers, got dtype float64: [2.5]"),
    ),
    (
        "lengths None",
        lambda: an.padding_mask(None, 5),
        TypeError,
        lit("lengths must be integers, got dtype object: None"),
    ),
    (
        "lengths 2-D",
        lambda: an.padding_mask([[1, 2]], 5),
        ValueError,
        lit("lengths must be 1-D (B,), got shape (1, 2)"),
    ),
    (
        "lengths a scalar",
        lambda: an.padding_mask(3, 5),
        ValueError,
        lit("lengths must be 1-D (B,), got shape ()"),
    ),
    (
        "padding M not an int",
        lambda: an.padding_mask([1, 2], 5.0),
        TypeError,
        lit("M must be an int, got float 5.0"),
    ),
    (
        "combine non-boolean",
        lambda: an.combine_masks(np.ones((2, 2), bool), np.ones((2, 2))),
        TypeError,
        lit("combine_masks: mask #1 must be a boolean array, got float64"),
    ),
    (
        "combine counts None arguments in the index",
        lambda: an.combine_masks(None, None, [[True]]),
        TypeError,
        lit("combine_masks: mask #2 must be a boolean array, got list"),
    ),
    (
        "combine incompatible shapes",
        lambda: an.combine_masks(np.ones((2, 3), bool), np.ones((4, 5), bool)),
        ValueError,
        lit("combine_masks: mask shapes (2, 3), (4, 5) do not broadcast"),
    ),
    # --- heads -----------------------------------------------------------------------
    (
        "n_heads does not divide D (split)",
        lambda: an.split_heads(x, 5),
        ValueError,
        lit("n_heads=5 must divide the feature width D=12 of x(2, 4, 12)"),
    ),
    (
        "split into zero heads",
        lambda: an.split_heads(x, 0),
        ValueError,
        lit("n_heads must be >= 1, got 0"),
    ),
    (
        "split of a 4-D array",
        lambda: an.split_heads(q, 3),
        ValueError,
        lit("x must have 3 dimensions, got shape (2, 3, 4, 6)"),
    ),
    (
        "merge of a 3-D array",
        lambda: an.merge_heads(x),
        ValueError,
        lit("x must have 4 dimensions, got shape (2, 4, 12)"),
    ),
    (
        "merge of ints",
        lambda: an.merge_heads(q.astype(int)),
        TypeError,
        lit("x must be a float16/float32/float64 array, got dtype int64"),
    ),
    # --- init_mha_params -------------------------------------------------------------
    (
        "n_heads does not divide d_model (init)",
        lambda: an.init_mha_params(12, 5, rng=R),
        ValueError,
        lit("n_heads=5 must divide d_model=12"),
    ),
    (
        "init without Generator",
        lambda: an.init_mha_params(12, 3, rng=0),
        TypeError,
        lit("rng must be a np.random.Generator, got int"),
    ),
    (
        "init d_model float",
        lambda: an.init_mha_params(12.0, 3, rng=R),
        TypeError,
        lit("d_model must be an int, got float 12.0"),
    ),
    (
        "init d_kv zero",
        lambda: an.init_mha_params(12, 3, rng=R, d_kv=0),
        ValueError,
        lit("d_kv must be >= 1, got 0"),
    ),
    (
        "init integer dtype",
        lambda: an.init_mha_params(12, 3, rng=R, dtype=int),
        TypeError,
        lit("dtype must be float16/float32/float64, got int64"),
    ),
    # --- mha_forward -----------------------------------------------------------------
    (
        "zero heads",
        lambda: an.mha_forward(x, x, P, 0),
        ValueError,
        lit("n_heads must be >= 1, got 0"),
    ),
    (
        "n_heads float",
        lambda: an.mha_forward(x, x, P, 3.0),
        TypeError,
        lit("n_heads must be an int, got float 3.0"),
    ),
    (
        "n_heads does not divide d_model (mha)",
        lambda: an.mha_forward(x, x, P, 5),
        ValueError,
        lit("n_heads=5 must divide d_model=12"),
    ),
    (
        "params missing W_o",
        lambda: an.mha_forward(x, x, without(P, "W_o"), 3),
        ValueError,
        lit("params: missing keys ['W_o'], unexpected keys []"),
    ),
    (
        "params with only some biases",
        lambda: an.mha_forward(x, x, without(P, "b_v"), 3),
        ValueError,
        lit("params: missing keys ['b_v'], unexpected keys []"),
    ),
    (
        "params with a typo key",
        lambda: an.mha_forward(x, x, with_(without(P, "W_q"), "Wq", P["W_q"]), 3),
        ValueError,
        lit("params: missing keys ['W_q'], unexpected keys ['Wq']"),
    ),
    (
        "params W_k misshaped",
        lambda: an.mha_forward(x, x, with_(P, "W_k", P["W_k"][:, :6]), 3),
        ValueError,
        lit("params['W_k'] has shape (12, 6), expected (12, 12)"),
    ),
    (
        "params bias 2-D",
        lambda: an.mha_forward(x, x, with_(P, "b_q", P["b_q"][None]), 3),
        ValueError,
        lit("params['b_q'] has shape (1, 12), expected (12,)"),
    ),
    (
        "cross-attention params for self",
        lambda: an.mha_forward(x, x, P_CROSS, 3),
        ValueError,
        lit("params['W_k'] has shape (8, 12), expected (12, 12)"),
    ),
    (
        "self-attention params for cross",
        lambda: an.mha_forward(x, x_kv, P, 3),
        ValueError,
        lit(
            "params['W_k'] has shape (12, 12), expected (8, 12) for d_model=12, d_kv=8"
        ),
    ),
    (
        "params not a dict",
        lambda: an.mha_forward(x, x, list(P.values()), 3),
        TypeError,
        lit("params must be a dict, got list"),
    ),
    (
        "integer params",
        lambda: an.mha_forward(x, x, with_(P, "W_q", P["W_q"].astype(int)), 3),
        TypeError,
        lit("params['W_q'] must be a float16/float32/float64 array, got dtype int64"),
    ),
    (
        "float32 param with float64 inputs",
        lambda: an.mha_forward(x, x, with_(P, "W_v", P["W_v"].astype(np.float32)), 3),
        TypeError,
        lit("params['W_v'] has dtype float32 but the inputs are float64"),
    ),
    (
        "x_q float32, x_kv float64",
        lambda: an.mha_forward(x.astype(np.float32), x_kv, P_CROSS, 3),
        TypeError,
        lit("arrays must share one float dtype, got x_q float32, x_kv float64"),
    ),
    (
        "x_q 2-D",
        lambda: an.mha_forward(x[0], x[0], P, 3),
        ValueError,
        lit("x_q must have 3 dimensions, got shape (4, 12)"),
    ),
    (
        "batch mismatch",
        lambda: an.mha_forward(x, x_kv[:1], P_CROSS, 3),
        ValueError,
        lit("x_q(2, 4, 12) and x_kv(1, 5, 8) must share the batch size B"),
    ),
    (
        "mha mask wrong shape",
        lambda: an.mha_forward(x, x, P, 3, np.ones((5, 5), bool)),
        ValueError,
        lit("mask(5, 5) does not broadcast to the scores' shape (2, 3, 4, 4)"),
    ),
    (
        "mha mask with the wrong number of heads",
        lambda: an.mha_forward(x, x, P, 3, np.ones((2, 4, 4, 4), bool)),
        ValueError,
        lit("mask(2, 4, 4, 4) does not broadcast to the scores' shape (2, 3, 4, 4)"),
    ),
    (
        "mha dropout without rng",
        lambda: an.mha_forward(x, x, P, 3, dropout_p=0.1),
        TypeError,
        r"dropout_p > 0 needs an explicit rng=.*, got rng=None$",
    ),
    (
        "mha dropout_p > 1",
        lambda: an.mha_forward(x, x, P, 3, dropout_p=1.5, rng=R),
        ValueError,
        lit("dropout_p must be in [0, 1), got 1.5"),
    ),
    # --- linear ----------------------------------------------------------------------
    (
        "linear width mismatch",
        lambda: an.linear_forward(x, P["W_k"][:8]),
        ValueError,
        lit("x(2, 4, 12) and W(8, 12) must share D_in"),
    ),
    (
        "linear bias misshaped",
        lambda: an.linear_forward(x, P["W_q"], np.zeros(5)),
        ValueError,
        lit("b(5,) must have shape (D_out,) = (12,) for W(12, 12)"),
    ),
    (
        "linear W 1-D",
        lambda: an.linear_forward(x, np.ones(12)),
        ValueError,
        lit("W must have 2 dimensions, got shape (12,)"),
    ),
    (
        "linear x 0-d",
        lambda: an.linear_forward(np.array(1.0), P["W_q"]),
        ValueError,
        lit("x must have at least 1 dimension, got shape ()"),
    ),
    (
        "linear mixed dtypes",
        lambda: an.linear_forward(x, P["W_q"].astype(np.float32)),
        TypeError,
        lit("arrays must share one float dtype, got x float64, W float32"),
    ),
    # --- gradient checking -----------------------------------------------------------
    (
        "gradcheck in float32",
        lambda: numerical_grad(lambda a: a, q.astype(np.float32), q),
        TypeError,
        lit("x has dtype float32; finite differences need float64"),
    ),
    (
        "gradcheck of a list",
        lambda: numerical_grad(lambda a: a, [1.0, 2.0], np.ones(2)),
        TypeError,
        lit("x must be a NumPy array, got list"),
    ),
    (
        "gradcheck dout of another shape",
        lambda: numerical_grad(lambda a: a, scores, np.ones(5)),
        ValueError,
        lit("f returned an array of shape (2, 5) but dout has shape (5,)"),
    ),
    (
        "gradcheck dout that would broadcast",
        lambda: numerical_grad(lambda a: a[:, None], scores[0], np.ones(5)),
        ValueError,
        lit("f returned an array of shape (5, 1) but dout has shape (5,)"),
    ),
    (
        "gradcheck step zero",
        lambda: numerical_grad(lambda a: a, scores, scores, h=0),
        ValueError,
        lit("h must be a positive, finite step, got 0"),
    ),
    (
        "numerical_grads of a list",
        lambda: numerical_grads(lambda p: p, [scores], scores),
        TypeError,
        lit("inputs must be a dict {name: float64 array}, got list"),
    ),
    (
        "rel_error of two shapes",
        lambda: rel_error(np.ones(3), np.ones(4)),
        ValueError,
        lit("rel_error: a(3,) and b(4,) must have one shape"),
    ),
    (
        "grad_report of lists",
        lambda: grad_report([scores], [scores]),
        TypeError,
        lit("analytic gradients must be a dict {name: array}, got list"),
    ),
    (
        "check_layer without Generator",
        lambda: check_layer(double, lambda d, c: {"x": 2 * d}, {"x": scores}, rng=0),
        TypeError,
        lit("rng must be a np.random.Generator, got int"),
    ),
    (
        "check_layer backward returns a tuple",
        lambda: check_layer(double, lambda d, c: (2 * d,), {"x": scores}, rng=R),
        TypeError,
        lit("analytic gradients must be a dict {name: array}, got tuple"),
    ),
    (
        "check_layer backward with other keys",
        lambda: check_layer(double, lambda d, c: {"y": 2 * d}, {"x": scores}, rng=R),
        ValueError,
        lit("analytic and numeric gradients have different keys: ['x', 'y']"),
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = [a.copy() for a in ARRAYS]
    keys = (list(P), list(P_CROSS))
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) in (ValueError, TypeError)
    for a, b in zip(ARRAYS, before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert keys == (list(P), list(P_CROSS))


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 30
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


# --- NaN/inf policy: not scanned for, propagated to the rows they touch (README) -----


def rows_with_nan(a):
    return np.isnan(a).any(axis=-1)


def test_softmax_nan_or_inf_in_a_row_makes_only_that_row_nan():
    x_bad = scores.copy()
    x_bad[0, 2] = np.nan
    with np.errstate(invalid="ignore"):  # inf - inf: NumPy may warn
        y, _ = an.softmax_forward(x_bad)
        y_inf, _ = an.softmax_forward(np.where(x_bad != x_bad, np.inf, x_bad))
    expected_rows = np.array([True, False])
    np.testing.assert_array_equal(np.isnan(y).all(axis=-1), expected_rows)
    np.testing.assert_array_equal(np.isnan(y_inf).all(axis=-1), expected_rows)
    np.testing.assert_array_equal(y[1], an.softmax_forward(scores)[0][1])


def test_softmax_minus_inf_is_a_masked_entry_not_an_error():
    x_bad = scores.copy()
    x_bad[0, 2] = -np.inf
    y, _ = an.softmax_forward(x_bad)
    assert y[0, 2] == 0.0 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-12)


def test_softmax_masked_nan_score_is_dropped():
    x_bad = scores.copy()
    x_bad[0, 2] = np.nan
    mask = np.ones(scores.shape, bool)
    mask[0, 2] = False
    y, _ = an.softmax_forward(x_bad, mask)
    assert np.all(np.isfinite(y)) and y[0, 2] == 0.0


def test_attention_nan_in_a_key_reaches_only_the_queries_that_may_attend_it():
    k_bad = k.copy()
    k_bad[0, 1, 2, 0] = np.nan  # key j = 2 of batch 0, head 1
    out, _ = an.attention_forward(q, k_bad, v, an.causal_mask(4, 5))
    expected = np.zeros(out.shape[:-1], bool)
    expected[0, 1, 2:] = True  # causal: queries i >= 2 may attend key 2
    np.testing.assert_array_equal(rows_with_nan(out), expected)


def test_attention_nan_in_a_value_reaches_every_query_of_its_head_even_masked_ones():
    # 0 * NaN = NaN in P @ V, so masking key j does not protect against NaN in v[j]
    v_bad = v.copy()
    v_bad[0, 1, 2, 3] = np.nan
    out, _ = an.attention_forward(q, k, v_bad, an.causal_mask(4, 5))
    nan = np.isnan(out)
    assert nan[0, 1, :, 3].all() and nan.sum() == out.shape[-2]


def test_mha_nan_in_a_query_token_makes_only_its_output_row_nan():
    x_bad = x.copy()
    x_bad[1, 2, 5] = np.nan
    out, _ = an.mha_forward(x_bad, x_kv, P_CROSS, 3, an.causal_mask(4, 5))
    expected = np.zeros(out.shape[:-1], bool)
    expected[1, 2] = True
    np.testing.assert_array_equal(rows_with_nan(out), expected)
    assert np.isnan(out[1, 2]).all()


def test_mha_nan_in_a_key_value_token_reaches_its_whole_sequence_only():
    kv_bad = x_kv.copy()
    kv_bad[1, 4, 0] = np.nan  # last key of sequence 1: causally masked for all queries
    out, _ = an.mha_forward(x, kv_bad, P_CROSS, 3, an.causal_mask(4, 5))
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


def test_attention_backward_nan_in_a_query_spreads_to_every_key_and_value_grad():
    # backward: dk = dS^T q and dv = P^T dout mix all queries of a (batch, head)
    q_bad = q.copy()
    q_bad[0, 1, 2, 3] = np.nan
    out, cache = an.attention_forward(q_bad, k, v)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dq, dk, dv = an.attention_backward(dout, cache)
    expected_dq = np.zeros(dq.shape[:-1], bool)
    expected_dq[0, 1, 2] = True
    np.testing.assert_array_equal(rows_with_nan(dq), expected_dq)
    for grad in (dk, dv):
        assert np.isnan(grad[0, 1]).all() and np.isnan(grad).sum() == grad[0, 1].size

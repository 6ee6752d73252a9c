"""Bad inputs to the core package: every public function of attention_np's top-level
modules (attention, softmax, masks, multihead, decoding, additive, positional,
analysis, layers, linear, gradcheck, viz argument checks) and the gradcheck command
line.

Each catalogue case asserts the exception type, that the message names the argument,
and the message itself; a failed call leaves every array it was given, the params,
the KV caches and NumPy's global random state as they were. The second half tests the
documented NaN/inf policy (README: non-finite inputs are not scanned for, they
propagate to the rows they touch) and that finite inputs, even of magnitude 1e4,
never give NaN under any mask.
"""

import re
import subprocess
import sys

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
from attention_np.analysis import (
    attention_entropy,
    entropy_per_head,
    offset_mass,
    sink_mass,
    sink_mass_per_head,
)
from attention_np.decoding import (
    KVCache,
    cached_attention,
    gqa_attention_backward,
    gqa_attention_forward,
    kv_cache_bytes,
    repeat_kv,
)
from attention_np.gradcheck import (
    check_layer,
    grad_report,
    numerical_grad,
    numerical_grads,
    rel_error,
)
from attention_np.masks import attention_mask
from attention_np.positional import (
    alibi_bias,
    alibi_slopes,
    frequencies,
    interleaved_to_half,
    rope_backward,
    rope_forward,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 6))  # (B, H, N, d)
k = R.standard_normal((2, 3, 5, 6))  # (B, H, M, d)
v = R.standard_normal((2, 3, 5, 7))  # (B, H, M, d_v)
x = R.standard_normal((2, 4, 12))  # (B, N, D)
x_kv = R.standard_normal((2, 5, 8))  # (B, M, D_kv)
scores = R.standard_normal((2, 5))
weights = an.attention_weights(q, k, causal=True)  # (B, H, N, M)
P = an.init_mha_params(12, 3, rng=np.random.default_rng(1))
P_CROSS = an.init_mha_params(12, 3, rng=np.random.default_rng(1), d_kv=8)
P_GQA = an.init_mha_params(12, 3, rng=np.random.default_rng(1), n_kv_heads=1)
ADD_P = init_additive_params(6, 6, 5, rng=np.random.default_rng(4))
W_A = R.standard_normal((6, 6))
GAMMA, BETA = np.ones(12), np.zeros(12)
IDS = np.array([[0, 3, 2], [1, 1, 4]])
EMB = R.standard_normal((5, 4))
ROPE_X = R.standard_normal((2, 3, 4, 8))  # (B, H, N, d) with an even d

_, ATT_CACHE = an.attention_forward(q, k, v, causal=False)
_, SOFTMAX_CACHE = an.softmax_forward(scores)
_, MHA_CACHE = an.mha_forward(x, x, P, n_heads=3, causal=True)
_, LINEAR_CACHE = an.linear_forward(x, P["W_q"])
_, LN_CACHE = an.layernorm_forward(x, GAMMA, BETA)
_, GQA_CACHE = gqa_attention_forward(q, k[:, :1], v[:, :1], causal=False)  # G = 1
_, ADD_CACHE = additive_attention_forward(q, k, v, ADD_P, causal=False)
_, LUONG_CACHE = luong_attention_forward(q, k, v, causal=False)
_, ROPE_CACHE = rope_forward(q)

ARRAYS = [q, k, v, x, x_kv, scores, weights, W_A, GAMMA, BETA, IDS, EMB, ROPE_X]
ARRAYS += [*P.values(), *P_CROSS.values(), *P_GQA.values(), *ADD_P.values()]
PARAMS = [P, P_CROSS, P_GQA, ADD_P]


def without(d, key):
    return {k_: v_ for k_, v_ in d.items() if k_ != key}


def with_(d, key, value):
    return {**d, key: value}


def double(p):
    """A forward for check_layer: out = 2 x."""
    return 2.0 * p["x"], None


def cache_of(length, capacity=4, dtype=np.float64, G=3, d=4):
    """A KVCache for mha_forward with H = 3, D = 12 (d = 4), holding ``length``."""
    cache = KVCache(2, G, d, capacity, dtype=dtype)
    if length:
        shape = (2, G, length, d)
        cache.append(np.ones(shape, dtype), np.ones(shape, dtype))
    return cache


CACHE = cache_of(2)  # holds 2 of 4 tokens: every failed call must leave it so
DECODE_CACHE = KVCache(2, 1, 6, 6)  # for cached_attention: G = 1, d = d_v = 6
DECODE_CACHE.append(np.ones((2, 1, 3, 6)), np.ones((2, 1, 3, 6)))
KV_CACHES = [CACHE, DECODE_CACHE]
q1 = q[:, :, :1]  # (B, H, 1, d): one new query per head
k1 = k[:, :1, :1]  # (B, G = 1, 1, d): one new key
v1 = k1.copy()  # values of width d_v = d = 6 (the cache's d_v)
x1 = x[:, :1]  # (B, 1, D): one new token


def C(name, call, exc, arg, text=None, regex=None):
    """One catalogue case: ``call()`` raises ``exc`` naming ``arg``; the message
    contains ``text`` (literally) or matches ``regex`` when given."""
    return name, call, exc, arg, re.escape(text) if text is not None else regex


ATT = {"causal": False}  # the options of a valid attention call
MHA = {"n_heads": 3, "causal": False}  # the options of a valid mha_forward call
MASK_SCORES = "does not broadcast to the scores' shape (2, 3, 4, 5)"
FLOAT_DTYPE = "must be a float16/float32/float64 array, got dtype"

CATALOGUE = [
    # --- attention_forward / attention_weights ---------------------------------------
    C(
        "q/k width mismatch",
        lambda: an.attention_forward(q, k[..., :5], v, **ATT),
        ValueError,
        "k",
        "q(2, 3, 4, 6) and k(2, 3, 5, 5) must share the last axis d",
    ),
    C(
        "k/v length mismatch",
        lambda: an.attention_forward(q, k, v[..., :4, :], **ATT),
        ValueError,
        "v",
        "k(2, 3, 5, 6) and v(2, 3, 4, 7) must share the length M",
    ),
    C(
        "q of rank 1",
        lambda: an.attention_forward(q[0, 0, 0], k, v, **ATT),
        ValueError,
        "q",
        "q must have at least 2 dimensions, got shape (6,)",
    ),
    C(
        "q is a 0-d array",
        lambda: an.attention_forward(np.array(1.0), k, v, **ATT),
        ValueError,
        "q",
        "q must have at least 2 dimensions, got shape ()",
    ),
    C(
        "batch dims do not broadcast",
        lambda: an.attention_forward(q, k[:, :2], v[:, :2], **ATT),
        ValueError,
        "k",
        "leading (batch/head) dimensions of q(2, 3, 4, 6), k(2, 2, 5, 6), "
        "v(2, 2, 5, 7) do not broadcast",
    ),
    C(
        "zero head width",
        lambda: an.attention_forward(q[..., :0], k[..., :0], v, **ATT),
        ValueError,
        "q",
        "q(2, 3, 4, 0) and k(2, 3, 5, 0) need a head width d >= 1",
    ),
    C(
        "integer q",
        lambda: an.attention_forward(q.astype(int), k, v, **ATT),
        TypeError,
        "q",
        f"q {FLOAT_DTYPE} int64",
    ),
    C(
        "complex q",
        lambda: an.attention_forward(q.astype(complex), k, v, **ATT),
        TypeError,
        "q",
        f"q {FLOAT_DTYPE} complex128",
    ),
    C(
        "object v",
        lambda: an.attention_forward(q, k, v.astype(object), **ATT),
        TypeError,
        "v",
        f"v {FLOAT_DTYPE} object",
    ),
    C(
        "v is None",
        lambda: an.attention_forward(q, k, None, **ATT),
        TypeError,
        "v",
        "v must be a NumPy array, got NoneType",
    ),
    C(
        "ragged nested list k",
        lambda: an.attention_forward(q, [[1.0], [1.0, 2.0]], v, **ATT),
        ValueError,
        "k",
        "k is a ragged nested list, not an array",
    ),
    C(
        "mixed dtypes",
        lambda: an.attention_forward(q.astype(np.float32), k, v, **ATT),
        TypeError,
        "q",
        "arrays must share one float dtype, got q float32, k float64, v float64",
    ),
    C(
        "q is a string",
        lambda: an.attention_forward("q", k, v, **ATT),
        TypeError,
        "q",
        "q must be a NumPy array, got str",
    ),
    C(
        "causal left out",
        lambda: an.attention_forward(q, k, v),
        TypeError,
        "causal",
        "missing 1 required keyword-only argument: 'causal'",
    ),
    C(
        "causal='no'",
        lambda: an.attention_forward(q, k, v, causal="no"),
        TypeError,
        "causal",
        "causal must be True or False, got 'no'",
    ),
    C(
        "causal=None",
        lambda: an.attention_forward(q, k, v, causal=None),
        TypeError,
        "causal",
        "causal must be True or False, got None",
    ),
    C(
        "align typo",
        lambda: an.attention_forward(q, k, v, causal=True, align="bottom-right"),
        ValueError,
        "align",
        "align must be one of ('top_left', 'bottom_right'), got 'bottom-right'",
    ),
    C(
        "align checked even when not causal",
        lambda: an.attention_forward(q, k, v, causal=False, align=None),
        ValueError,
        "align",
        "align must be one of ('top_left', 'bottom_right'), got None",
    ),
    C(
        "attention_weights width mismatch",
        lambda: an.attention_weights(q, k[..., :5], **ATT),
        ValueError,
        "k",
        "q(2, 3, 4, 6) and k(2, 3, 5, 5) must share the last axis d",
    ),
    C(
        "attention_weights mask of wrong shape",
        lambda: an.attention_weights(q, k, np.ones((3, 3), bool), **ATT),
        ValueError,
        "mask",
        f"mask(3, 3) {MASK_SCORES}",
    ),
    C(
        "attention_weights causal=1",
        lambda: an.attention_weights(q, k, causal=1),
        TypeError,
        "causal",
        "causal must be True or False, got 1",
    ),
    C(
        "attention_weights scale inf",
        lambda: an.attention_weights(q, k, causal=True, scale=-np.inf),
        ValueError,
        "scale",
        "scale must be finite, got -inf",
    ),
    # --- masks passed to attention ---------------------------------------------------
    C(
        "mask of wrong shape",
        lambda: an.attention_forward(q, k, v, np.ones((4, 4), bool), **ATT),
        ValueError,
        "mask",
        f"mask(4, 4) {MASK_SCORES}",
    ),
    C(
        "mask of transposed shape",
        lambda: an.attention_forward(q, k, v, np.ones((5, 4), bool), **ATT),
        ValueError,
        "mask",
        f"mask(5, 4) {MASK_SCORES}",
    ),
    C(
        "mask with an extra dimension",
        lambda: an.attention_forward(q, k, v, np.ones((1, 2, 3, 4, 5), bool), **ATT),
        ValueError,
        "mask",
        f"mask(1, 2, 3, 4, 5) {MASK_SCORES}",
    ),
    C(
        "float mask",
        lambda: an.attention_forward(q, k, v, np.ones((4, 5)), **ATT),
        TypeError,
        "mask",
        "mask must be a boolean array (True = may attend), got dtype float64;",
    ),
    C(
        "mask with NaN",
        lambda: an.attention_forward(q, k, v, np.full((4, 5), np.nan), **ATT),
        TypeError,
        "mask",
        "got dtype float64 (it contains NaN)",
    ),
    C(
        "int 0/1 mask",
        lambda: an.attention_forward(q, k, v, np.ones((4, 5), int), **ATT),
        TypeError,
        "mask",
        "mask must be a boolean array (True = may attend), got dtype int64",
    ),
    C(
        "object mask",
        lambda: an.attention_forward(q, k, v, np.ones((4, 5), object), **ATT),
        TypeError,
        "mask",
        "mask must be a boolean array (True = may attend), got dtype object",
    ),
    C(
        "mask is a list",
        lambda: an.attention_forward(q, k, v, [[True] * 5] * 4, **ATT),
        TypeError,
        "mask",
        "mask must be a boolean NumPy array, got list",
    ),
    # --- dropout and scale -----------------------------------------------------------
    C(
        "dropout_p = 1",
        lambda: an.attention_forward(q, k, v, dropout_p=1.0, rng=R, **ATT),
        ValueError,
        "dropout_p",
        "dropout_p must be in [0, 1), got 1.0",
    ),
    C(
        "negative dropout_p",
        lambda: an.attention_forward(q, k, v, dropout_p=-0.1, rng=R, **ATT),
        ValueError,
        "dropout_p",
        "dropout_p must be in [0, 1), got -0.1",
    ),
    C(
        "NaN dropout_p",
        lambda: an.attention_forward(q, k, v, dropout_p=np.nan, rng=R, **ATT),
        ValueError,
        "dropout_p",
        "dropout_p must be in [0, 1), got nan",
    ),
    C(
        "dropout_p is a string",
        lambda: an.attention_forward(q, k, v, dropout_p="0.1", rng=R, **ATT),
        TypeError,
        "dropout_p",
        "dropout_p must be a float in [0, 1), got '0.1'",
    ),
    C(
        "dropout without rng",
        lambda: an.attention_forward(q, k, v, dropout_p=0.1, **ATT),
        TypeError,
        "rng",
        regex=r"dropout_p > 0 needs an explicit rng=.*, got rng=None$",
    ),
    C(
        "dropout with legacy seed int",
        lambda: an.attention_forward(q, k, v, dropout_p=0.1, rng=3, **ATT),
        TypeError,
        "rng",
        regex=r"dropout_p > 0 needs an explicit rng=.*, got rng=3$",
    ),
    C(
        "dropout with legacy RandomState",
        lambda: an.attention_forward(
            q, k, v, dropout_p=0.1, rng=np.random.RandomState(0), **ATT
        ),
        TypeError,
        "rng",
        regex=r"dropout_p > 0 needs an explicit rng=.*, got rng=RandomState\(MT19937\)",
    ),
    C(
        "scale is a string",
        lambda: an.attention_forward(q, k, v, scale="0.1", **ATT),
        TypeError,
        "scale",
        "scale must be a number or None, got '0.1'",
    ),
    C(
        "scale is inf",
        lambda: an.attention_forward(q, k, v, scale=np.inf, **ATT),
        ValueError,
        "scale",
        "scale must be finite, got inf",
    ),
    C(
        "scale is NaN",
        lambda: an.attention_forward(q, k, v, scale=np.nan, **ATT),
        ValueError,
        "scale",
        "scale must be finite, got nan",
    ),
    # --- backward functions: the upstream gradient is user input ---------------------
    C(
        "attention_backward dout of a broadcastable but wrong shape",
        lambda: an.attention_backward(np.ones((4, 7)), ATT_CACHE),
        ValueError,
        "dout",
        "dout(4, 7) must have the shape of the forward's output (2, 3, 4, 7)",
    ),
    C(
        "softmax_backward dout of wrong shape",
        lambda: an.softmax_backward(np.ones(5), SOFTMAX_CACHE),
        ValueError,
        "dout",
        "dout(5,) must have the shape of the forward's output (2, 5)",
    ),
    C(
        "linear_backward dout of wrong width",
        lambda: an.linear_backward(np.ones((2, 4, 6)), LINEAR_CACHE),
        ValueError,
        "dout",
        "dout(2, 4, 6) must have the shape of the forward's output (2, 4, 12)",
    ),
    C(
        "mha_backward dout of wrong width",
        lambda: an.mha_backward(np.ones((2, 4, 11)), MHA_CACHE),
        ValueError,
        "dout",
        "dout(2, 4, 11) must have the shape of the forward's output (2, 4, 12)",
    ),
    C(
        "layernorm_backward dout of one position",
        lambda: an.layernorm_backward(np.ones(12), LN_CACHE),
        ValueError,
        "dout",
        "dout(12,) must have the shape of the forward's output (2, 4, 12)",
    ),
    C(
        "gqa_attention_backward dout with a last axis of 1",
        lambda: gqa_attention_backward(np.ones((2, 3, 4, 1)), GQA_CACHE),
        ValueError,
        "dout",
        "dout(2, 3, 4, 1) must have the shape of the forward's output (2, 3, 4, 7)",
    ),
    C(
        "additive_attention_backward dout of one head",
        lambda: additive_attention_backward(np.ones((4, 7)), ADD_CACHE),
        ValueError,
        "dout",
        "dout(4, 7) must have the shape of the forward's output (2, 3, 4, 7)",
    ),
    C(
        "luong_attention_backward dout with an extra axis",
        lambda: luong_attention_backward(np.ones((1, 2, 3, 4, 7)), LUONG_CACHE),
        ValueError,
        "dout",
        "dout(1, 2, 3, 4, 7) must have the shape of the forward's output (2, 3, 4, 7)",
    ),
    C(
        "rope_backward dout of one head",
        lambda: rope_backward(np.ones((4, 6)), ROPE_CACHE),
        ValueError,
        "dout",
        "dout(4, 6) must have the shape of the forward's output (2, 3, 4, 6)",
    ),
    # --- softmax ---------------------------------------------------------------------
    C(
        "softmax of ints",
        lambda: an.softmax_forward(np.arange(5)),
        TypeError,
        "x",
        f"x {FLOAT_DTYPE} int64",
    ),
    C(
        "softmax of a 0-d array",
        lambda: an.softmax_forward(np.array(1.0)),
        ValueError,
        "x",
        "x must have at least 1 dimension, got shape ()",
    ),
    C(
        "softmax mask of wrong shape",
        lambda: an.softmax_forward(scores, np.ones(3, bool)),
        ValueError,
        "mask",
        "mask(3,) does not broadcast to the scores' shape (2, 5)",
    ),
    C(
        "softmax float mask",
        lambda: an.softmax_forward(scores, np.ones(5)),
        TypeError,
        "mask",
        "mask must be a boolean array (True = may attend), got dtype float64",
    ),
    # --- mask builders ---------------------------------------------------------------
    C(
        "causal_mask align typo",
        lambda: an.causal_mask(4, align="bottom-right"),
        ValueError,
        "align",
        "align must be one of ('top_left', 'bottom_right'), got 'bottom-right'",
    ),
    C(
        "causal_mask negative N",
        lambda: an.causal_mask(-1),
        ValueError,
        "N",
        "N must be >= 0, got -1",
    ),
    C(
        "causal_mask negative M",
        lambda: an.causal_mask(4, -2),
        ValueError,
        "M",
        "M must be >= 0, got -2",
    ),
    C(
        "causal_mask float N",
        lambda: an.causal_mask(4.5),
        TypeError,
        "N",
        "N must be an int, got float 4.5",
    ),
    C(
        "causal_mask bool N",
        lambda: an.causal_mask(True),
        TypeError,
        "N",
        "N must be an int, got bool True",
    ),
    C(
        "lengths longer than M",
        lambda: an.padding_mask([3, 7], 5),
        ValueError,
        "lengths",
        "lengths must lie in [0, M=5], got [3, 7]",
    ),
    C(
        "negative length",
        lambda: an.padding_mask([-1, 2], 5),
        ValueError,
        "lengths",
        "lengths must lie in [0, M=5], got [-1, 2]",
    ),
    C(
        "fractional length",
        lambda: an.padding_mask([2.5], 5),
        TypeError,
        "lengths",
        "lengths must be integers, got dtype float64: [2.5]",
    ),
    C(
        "lengths None",
        lambda: an.padding_mask(None, 5),
        TypeError,
        "lengths",
        "lengths must be integers, got dtype object: None",
    ),
    C(
        "lengths 2-D",
        lambda: an.padding_mask([[1, 2]], 5),
        ValueError,
        "lengths",
        "lengths must be 1-D (B,), got shape (1, 2)",
    ),
    C(
        "lengths a scalar",
        lambda: an.padding_mask(3, 5),
        ValueError,
        "lengths",
        "lengths must be 1-D (B,), got shape ()",
    ),
    C(
        "padding M not an int",
        lambda: an.padding_mask([1, 2], 5.0),
        TypeError,
        "M",
        "M must be an int, got float 5.0",
    ),
    C(
        "combine non-boolean",
        lambda: an.combine_masks(np.ones((2, 2), bool), np.ones((2, 2))),
        TypeError,
        "mask",
        "combine_masks: mask #1 must be a boolean array, got float64",
    ),
    C(
        "combine counts None arguments in the index",
        lambda: an.combine_masks(None, None, [[True]]),
        TypeError,
        "mask",
        "combine_masks: mask #2 must be a boolean array, got list",
    ),
    C(
        "combine incompatible shapes",
        lambda: an.combine_masks(np.ones((2, 3), bool), np.ones((4, 5), bool)),
        ValueError,
        "mask",
        "combine_masks: mask shapes (2, 3), (4, 5) do not broadcast",
    ),
    C(
        "attention_mask negative N",
        lambda: attention_mask(None, causal=True, N=-1, M=3),
        ValueError,
        "N",
        "N must be >= 0, got -1",
    ),
    C(
        "attention_mask float mask",
        lambda: attention_mask(np.ones((3, 4)), causal=True, N=3, M=4),
        TypeError,
        "mask",
        "mask must be a boolean array",
    ),
    C(
        "attention_mask mask of another (N, M)",
        lambda: attention_mask(np.ones((2, 4, 4), bool), causal=False, N=3, M=4),
        ValueError,
        "mask",
        "mask(2, 4, 4) does not broadcast to the scores' shape (2, 3, 4)",
    ),
    C(
        "attention_mask causal='yes'",
        lambda: attention_mask(None, causal="yes", N=3, M=4),
        TypeError,
        "causal",
        "causal must be True or False, got 'yes'",
    ),
    # --- heads -----------------------------------------------------------------------
    C(
        "n_heads does not divide D (split)",
        lambda: an.split_heads(x, 5),
        ValueError,
        "n_heads",
        "n_heads=5 must divide the feature width D=12 of x(2, 4, 12)",
    ),
    C(
        "split into zero heads",
        lambda: an.split_heads(x, 0),
        ValueError,
        "n_heads",
        "n_heads must be >= 1, got 0",
    ),
    C(
        "split of a 4-D array",
        lambda: an.split_heads(q, 3),
        ValueError,
        "x",
        "x must have 3 dimensions, got shape (2, 3, 4, 6)",
    ),
    C(
        "merge of a 3-D array",
        lambda: an.merge_heads(x),
        ValueError,
        "x",
        "x must have 4 dimensions, got shape (2, 4, 12)",
    ),
    C(
        "merge of ints",
        lambda: an.merge_heads(q.astype(int)),
        TypeError,
        "x",
        f"x {FLOAT_DTYPE} int64",
    ),
    # --- init_mha_params -------------------------------------------------------------
    C(
        "n_heads does not divide d_model (init)",
        lambda: an.init_mha_params(12, 5, rng=R),
        ValueError,
        "n_heads",
        "n_heads=5 must divide d_model=12",
    ),
    C(
        "n_kv_heads does not divide n_heads (init)",
        lambda: an.init_mha_params(12, 4, rng=R, n_kv_heads=3),
        ValueError,
        "n_kv_heads",
        "n_kv_heads=3 must divide n_heads=4",
    ),
    C(
        "zero n_kv_heads",
        lambda: an.init_mha_params(12, 4, rng=R, n_kv_heads=0),
        ValueError,
        "n_kv_heads",
        "n_kv_heads must be >= 1, got 0",
    ),
    C(
        "init without Generator",
        lambda: an.init_mha_params(12, 3, rng=0),
        TypeError,
        "rng",
        "rng must be a np.random.Generator, got int",
    ),
    C(
        "init d_model float",
        lambda: an.init_mha_params(12.0, 3, rng=R),
        TypeError,
        "d_model",
        "d_model must be an int, got float 12.0",
    ),
    C(
        "init d_kv zero",
        lambda: an.init_mha_params(12, 3, rng=R, d_kv=0),
        ValueError,
        "d_kv",
        "d_kv must be >= 1, got 0",
    ),
    C(
        "init integer dtype",
        lambda: an.init_mha_params(12, 3, rng=R, dtype=int),
        TypeError,
        "dtype",
        "dtype must be float16/float32/float64, got int64",
    ),
    C(
        "init dtype that is not a dtype",
        lambda: an.init_mha_params(12, 3, rng=R, dtype="float8"),
        TypeError,
        "dtype",
        "dtype must be a NumPy float dtype, got 'float8'",
    ),
    C(
        "init bias='no'",
        lambda: an.init_mha_params(12, 3, rng=np.random.default_rng(0), bias="no"),
        TypeError,
        "bias",
        "bias must be True or False, got 'no'",
    ),
    # --- mha_forward -----------------------------------------------------------------
    C(
        "zero heads",
        lambda: an.mha_forward(x, x, P, n_heads=0, causal=False),
        ValueError,
        "n_heads",
        "n_heads must be >= 1, got 0",
    ),
    C(
        "n_heads float",
        lambda: an.mha_forward(x, x, P, n_heads=3.0, causal=False),
        TypeError,
        "n_heads",
        "n_heads must be an int, got float 3.0",
    ),
    C(
        "n_heads left out",
        lambda: an.mha_forward(x, x, P, causal=False),
        TypeError,
        "n_heads",
        "missing 1 required keyword-only argument: 'n_heads'",
    ),
    C(
        "n_heads does not divide d_model (mha)",
        lambda: an.mha_forward(x, x, P, n_heads=5, causal=False),
        ValueError,
        "n_heads",
        "n_heads=5 must divide the width of x_q(2, 4, 12)=12",
    ),
    C(
        "x_q narrower than the params (mha)",
        lambda: an.mha_forward(x[..., :5], x[..., :5], P, n_heads=2, causal=False),
        ValueError,
        "x_q",
        "x_q(2, 4, 5) has width 5 but params['W_q'](12, 12) takes inputs of width 12",
    ),
    C(
        "x_kv of another width than the params (mha)",
        lambda: an.mha_forward(x, x[..., :6], P_CROSS, **MHA),
        ValueError,
        "x_kv",
        "x_kv(2, 4, 6) has width 6 but params['W_k'](8, 12) takes inputs of width 8",
    ),
    C(
        "n_kv_heads does not divide n_heads (mha)",
        lambda: an.mha_forward(x, x, P, n_heads=3, n_kv_heads=2, causal=False),
        ValueError,
        "n_kv_heads",
        "n_kv_heads=2 must divide n_heads=3",
    ),
    C(
        "GQA params without n_kv_heads",
        lambda: an.mha_forward(x, x, P_GQA, **MHA),
        ValueError,
        "W_k",
        "params['W_k'] must have shape (12, 12), got (12, 4)",
    ),
    C(
        "MHA params with n_kv_heads=1",
        lambda: an.mha_forward(x, x, P, n_kv_heads=1, **MHA),
        ValueError,
        "W_k",
        "params['W_k'] must have shape (12, 4), got (12, 12)",
    ),
    C(
        "params missing W_o",
        lambda: an.mha_forward(x, x, without(P, "W_o"), **MHA),
        ValueError,
        "params",
        "params: missing keys ['W_o'], unexpected keys []",
    ),
    C(
        "params with only some biases",
        lambda: an.mha_forward(x, x, without(P, "b_v"), **MHA),
        ValueError,
        "params",
        "params: missing keys ['b_v'], unexpected keys []",
    ),
    C(
        "params with a typo key",
        lambda: an.mha_forward(x, x, with_(without(P, "W_q"), "Wq", P["W_q"]), **MHA),
        ValueError,
        "params",
        "params: missing keys ['W_q'], unexpected keys ['Wq']",
    ),
    C(
        "params W_k misshaped",
        lambda: an.mha_forward(x, x, with_(P, "W_k", P["W_k"][:, :6]), **MHA),
        ValueError,
        "W_k",
        "params['W_k'] must have shape (12, 12), got (12, 6)",
    ),
    C(
        "params bias 2-D",
        lambda: an.mha_forward(x, x, with_(P, "b_q", P["b_q"][None]), **MHA),
        ValueError,
        "b_q",
        "params['b_q'] must have shape (12,), got (1, 12)",
    ),
    C(
        "cross-attention params for self",
        lambda: an.mha_forward(x, x, P_CROSS, **MHA),
        ValueError,
        "x_kv",
        "x_kv(2, 4, 12) has width 12 but params['W_k'](8, 12) takes inputs of width 8",
    ),
    C(
        "self-attention params for cross",
        lambda: an.mha_forward(x, x_kv, P, **MHA),
        ValueError,
        "x_kv",
        "x_kv(2, 5, 8) has width 8 but params['W_k'](12, 12) takes inputs of width 12",
    ),
    C(
        "params not a dict",
        lambda: an.mha_forward(x, x, list(P.values()), **MHA),
        TypeError,
        "params",
        "params must be a dict, got list",
    ),
    C(
        "integer params",
        lambda: an.mha_forward(x, x, with_(P, "W_q", P["W_q"].astype(int)), **MHA),
        TypeError,
        "W_q",
        f"params['W_q'] {FLOAT_DTYPE} int64",
    ),
    C(
        "float32 param with float64 inputs",
        lambda: an.mha_forward(
            x, x, with_(P, "W_v", P["W_v"].astype(np.float32)), **MHA
        ),
        TypeError,
        "W_v",
        "params['W_v'] has dtype float32 but the inputs are float64",
    ),
    C(
        "x_q float32, x_kv float64",
        lambda: an.mha_forward(x.astype(np.float32), x_kv, P_CROSS, **MHA),
        TypeError,
        "x_q",
        "arrays must share one float dtype, got x_q float32, x_kv float64",
    ),
    C(
        "x_q 2-D",
        lambda: an.mha_forward(x[0], x[0], P, **MHA),
        ValueError,
        "x_q",
        "x_q must have 3 dimensions, got shape (4, 12)",
    ),
    C(
        "batch mismatch",
        lambda: an.mha_forward(x, x_kv[:1], P_CROSS, **MHA),
        ValueError,
        "x_kv",
        "x_q(2, 4, 12) and x_kv(1, 5, 8) must share the batch size B",
    ),
    C(
        "mha mask wrong shape",
        lambda: an.mha_forward(x, x, P, np.ones((5, 5), bool), **MHA),
        ValueError,
        "mask",
        "mask(5, 5) does not broadcast to the scores' shape (2, 3, 4, 4)",
    ),
    C(
        "mha mask with the wrong number of heads",
        lambda: an.mha_forward(x, x, P, np.ones((2, 4, 4, 4), bool), **MHA),
        ValueError,
        "mask",
        "mask(2, 4, 4, 4) does not broadcast to the scores' shape (2, 3, 4, 4)",
    ),
    C(
        "mha causal='yes'",
        lambda: an.mha_forward(x, x, P, n_heads=3, causal="yes"),
        TypeError,
        "causal",
        "causal must be True or False, got 'yes'",
    ),
    C(
        "mha align typo",
        lambda: an.mha_forward(x, x, P, n_heads=3, causal=True, align="top-left"),
        ValueError,
        "align",
        "align must be one of ('top_left', 'bottom_right'), got 'top-left'",
    ),
    C(
        "mha dropout without rng",
        lambda: an.mha_forward(x, x, P, dropout_p=0.1, **MHA),
        TypeError,
        "rng",
        regex=r"dropout_p > 0 needs an explicit rng=.*, got rng=None$",
    ),
    C(
        "mha dropout_p > 1",
        lambda: an.mha_forward(x, x, P, dropout_p=1.5, rng=R, **MHA),
        ValueError,
        "dropout_p",
        "dropout_p must be in [0, 1), got 1.5",
    ),
    C(
        "positions with cross-attention",
        lambda: an.mha_forward(x, x_kv, P_CROSS, positions=np.arange(4), **MHA),
        ValueError,
        "positions",
        "positions and kv_cache are for self-attention: x_q(2, 4, 12) and "
        "x_kv(2, 5, 8) must have the same length",
    ),
    C(
        "positions of the wrong length",
        lambda: an.mha_forward(x, x, P, positions=np.arange(5), **MHA),
        ValueError,
        "positions",
        "positions(5,) must be (N,) = (4,), (B, N) or broadcast to x(2, 3, 4, 4)[:-1]",
    ),
    C(
        "positions of strings",
        lambda: an.mha_forward(x, x, P, positions=["a", "b", "c", "d"], **MHA),
        TypeError,
        "positions",
        "positions must be integers or floats, got dtype <U1",
    ),
    C(
        "positions with an odd head width",
        lambda: an.mha_forward(x, x, P, n_heads=4, causal=True, positions=[0, 1, 2, 3]),
        ValueError,
        "positions",
        "positions (RoPE) rotate pairs of dims: the head width d = D / H = 12 / 4 "
        "must be even",
    ),
    C(
        "kv_cache that is not a KVCache",
        lambda: an.mha_forward(x1, x1, P, kv_cache={"k": 0}, **MHA),
        TypeError,
        "kv_cache",
        "kv_cache must be a KVCache, got dict",
    ),
    C(
        "kv_cache with cross-attention",
        lambda: an.mha_forward(x, x_kv, P_CROSS, kv_cache=CACHE, **MHA),
        ValueError,
        "kv_cache",
        "positions and kv_cache are for self-attention",
    ),
    C(
        "kv_cache too small for the new tokens",
        lambda: an.mha_forward(x[:, :3], x[:, :3], P, kv_cache=CACHE, **MHA),
        ValueError,
        "kv_cache",
        "kv_cache full: 2 + 3 tokens > capacity 4",
    ),
    C(
        "kv_cache of another dtype",
        lambda: an.mha_forward(
            x1, x1, P, kv_cache=cache_of(0, dtype=np.float32), **MHA
        ),
        TypeError,
        "kv_cache",
        "kv_cache stores float32 but the inputs are float64",
    ),
    C(
        "kv_cache for other key/value heads",
        lambda: an.mha_forward(x1, x1, P, kv_cache=cache_of(0, G=1), **MHA),
        ValueError,
        "kv_cache",
        "kv_cache holds (B, G, d, d_v) = (2, 1, 4, 4), need (2, 3, 4, 4)",
    ),
    C(
        "kv_cache step with a top-left causal rule",
        lambda: an.mha_forward(x1, x1, P, n_heads=3, causal=True, kv_cache=CACHE),
        ValueError,
        "align",
        'causal attention needs align="bottom_right"',
    ),
    C(
        "kv_cache step with a float mask",
        lambda: an.mha_forward(x1, x1, P, np.ones((1, 3)), kv_cache=CACHE, **MHA),
        TypeError,
        "mask",
        "mask must be a boolean array",
    ),
    C(
        "kv_cache step with a mask over the new keys only",
        lambda: an.mha_forward(
            x1, x1, P, np.ones((2, 3, 1, 2), bool), kv_cache=CACHE, **MHA
        ),
        ValueError,
        "mask",
        "mask(2, 3, 1, 2) does not broadcast to the scores' shape (2, 3, 1, 3)",
    ),
    C(
        "kv_cache step with causal='no'",
        lambda: an.mha_forward(x1, x1, P, n_heads=3, causal="no", kv_cache=CACHE),
        TypeError,
        "causal",
        "causal must be True or False, got 'no'",
    ),
    C(
        "kv_cache step with a bad dropout_p",
        lambda: an.mha_forward(x1, x1, P, kv_cache=CACHE, dropout_p=2.0, **MHA),
        ValueError,
        "dropout_p",
        "dropout_p must be in [0, 1), got 2.0",
    ),
    C(
        "kv_cache step with positions of the wrong length",
        lambda: an.mha_forward(x1, x1, P, kv_cache=CACHE, positions=[2, 3], **MHA),
        ValueError,
        "positions",
        "positions(2,) must be (N,) = (1,)",
    ),
    # --- grouped-query attention, KV cache, cached_attention -------------------------
    C(
        "gqa groups that do not divide the heads",
        lambda: gqa_attention_forward(q, k[:, :2], v[:, :2], **ATT),
        ValueError,
        "k",
        "k(2, 2, 5, 6) and v(2, 2, 5, 7) need G heads (axis 1) dividing the H heads "
        "of q(2, 3, 4, 6)",
    ),
    C(
        "gqa q of rank 3",
        lambda: gqa_attention_forward(q[0], k, v, **ATT),
        ValueError,
        "q",
        "q must have 4 dimensions, got shape (3, 4, 6)",
    ),
    C(
        "gqa batch mismatch",
        lambda: gqa_attention_forward(q[:1], k[:, :1], v[:, :1], **ATT),
        ValueError,
        "q",
        "q(1, 3, 4, 6), k(2, 1, 5, 6), v(2, 1, 5, 7) must share B (axis 0)",
    ),
    C(
        "gqa mask for another number of heads",
        lambda: gqa_attention_forward(
            q, k[:, :1], v[:, :1], np.ones((1, 2, 4, 5), bool), **ATT
        ),
        ValueError,
        "mask",
        f"mask(1, 2, 4, 5) {MASK_SCORES}",
    ),
    C(
        "gqa causal left out",
        lambda: gqa_attention_forward(q, k, v),
        TypeError,
        "causal",
        "missing 1 required keyword-only argument: 'causal'",
    ),
    C(
        "gqa align typo",
        lambda: gqa_attention_forward(q, k, v, causal=True, align="bottom"),
        ValueError,
        "align",
        "align must be one of ('top_left', 'bottom_right'), got 'bottom'",
    ),
    C(
        "repeat_kv zero heads",
        lambda: repeat_kv(k, 0),
        ValueError,
        "n_heads",
        "n_heads must be >= 1, got 0",
    ),
    C(
        "repeat_kv heads not a multiple of G",
        lambda: repeat_kv(k, 4),
        ValueError,
        "n_heads",
        "n_heads=4 must be a multiple of G=3 of x(2, 3, 5, 6)",
    ),
    C(
        "repeat_kv of a 3-D array",
        lambda: repeat_kv(k[0], 3),
        ValueError,
        "x",
        "x must have 4 dimensions, got shape (3, 5, 6)",
    ),
    C(
        "KVCache of ints",
        lambda: KVCache(1, 2, 4, 8, dtype=int),
        TypeError,
        "dtype",
        "dtype must be float16/float32/float64, got int64",
    ),
    C(
        "KVCache of bools",
        lambda: KVCache(1, 2, 4, 8, dtype=bool),
        TypeError,
        "dtype",
        "dtype must be float16/float32/float64, got bool",
    ),
    C(
        "KVCache zero capacity",
        lambda: KVCache(1, 2, 4, 0),
        ValueError,
        "capacity",
        "capacity must be >= 1, got 0",
    ),
    C(
        "KVCache float d_head",
        lambda: KVCache(1, 2, 4.0, 8),
        TypeError,
        "d_head",
        "d_head must be an int, got float 4.0",
    ),
    C(
        "KVCache.append keys of another head count",
        lambda: DECODE_CACHE.append(np.ones((2, 2, 1, 6)), np.ones((2, 2, 1, 6))),
        ValueError,
        "k_new",
        "k_new(2, 2, 1, 6) and v_new(2, 2, 1, 6) must be (B, G, n, d) = (2, 1, n, 6)",
    ),
    C(
        "KVCache.append values of another dtype",
        lambda: DECODE_CACHE.append(
            np.ones((2, 1, 1, 6)), np.ones((2, 1, 1, 6), np.float32)
        ),
        TypeError,
        "v_new",
        "k_new and v_new have dtypes float64, float32 but the cache stores float64",
    ),
    C(
        "KVCache.append past the capacity",
        lambda: DECODE_CACHE.append(np.ones((2, 1, 4, 6)), np.ones((2, 1, 4, 6))),
        ValueError,
        "capacity",
        "cache full: 3 + 4 tokens > capacity 6",
    ),
    C(
        "cached_attention without a KVCache",
        lambda: cached_attention(q1, k1, v1, None, causal=True),
        TypeError,
        "cache",
        "cache must be a KVCache, got NoneType",
    ),
    C(
        "cached_attention 2 new queries for 1 new key",
        lambda: cached_attention(q[:, :, :2], k1, v1, DECODE_CACHE, causal=True),
        ValueError,
        "q_new",
        "q_new(2, 3, 2, 6) must be (B, H, n, d) with H a multiple of G for "
        "k_new(2, 1, 1, 6): one query per new key",
    ),
    C(
        "cached_attention float32 keys for a float64 cache",
        lambda: cached_attention(
            q1, k1.astype(np.float32), v1.astype(np.float32), DECODE_CACHE, causal=True
        ),
        TypeError,
        "k_new",
        "k_new and v_new have dtypes float32, float32 but the cache stores float64",
    ),
    C(
        "cached_attention float32 queries",
        lambda: cached_attention(
            q1.astype(np.float32), k1, v1, DECODE_CACHE, causal=True
        ),
        TypeError,
        "q_new",
        "arrays must share one float dtype, got q_new float32, k_new float64",
    ),
    C(
        "cached_attention full cache",
        lambda: cached_attention(
            q[:, :, :4], k[:, :1, :4], k[:, :1, :4], DECODE_CACHE, causal=True
        ),
        ValueError,
        "capacity",
        "cache full: 3 + 4 tokens > capacity 6",
    ),
    C(
        "cached_attention mask over the new key only",
        lambda: cached_attention(
            q1, k1, v1, DECODE_CACHE, np.ones((2, 3, 1, 3), bool), causal=True
        ),
        ValueError,
        "mask",
        "mask(2, 3, 1, 3) does not broadcast to the scores' shape (2, 3, 1, 4)",
    ),
    C(
        "cached_attention int mask",
        lambda: cached_attention(
            q1, k1, v1, DECODE_CACHE, np.ones(4, int), causal=True
        ),
        TypeError,
        "mask",
        "mask must be a boolean array (True = may attend), got dtype int64",
    ),
    C(
        "cached_attention causal='no'",
        lambda: cached_attention(q1, k1, v1, DECODE_CACHE, causal="no"),
        TypeError,
        "causal",
        "causal must be True or False, got 'no'",
    ),
    C(
        "cached_attention scale NaN",
        lambda: cached_attention(q1, k1, v1, DECODE_CACHE, causal=True, scale=np.nan),
        ValueError,
        "scale",
        "scale must be finite, got nan",
    ),
    C(
        "kv_cache_bytes negative length",
        lambda: kv_cache_bytes(2, 1, 64, -5),
        ValueError,
        "seq_len",
        "seq_len must be >= 0, got -5",
    ),
    C(
        "kv_cache_bytes float layers",
        lambda: kv_cache_bytes(2.0, 1, 64, 128),
        TypeError,
        "n_layers",
        "n_layers must be an int, got float 2.0",
    ),
    C(
        "kv_cache_bytes bool bytes_per_elem",
        lambda: kv_cache_bytes(2, 1, 64, 128, bytes_per_elem=True),
        TypeError,
        "bytes_per_elem",
        "bytes_per_elem must be an int, got bool True",
    ),
    # --- Bahdanau and Luong ----------------------------------------------------------
    C(
        "additive params missing v_a",
        lambda: additive_attention_forward(q, k, v, without(ADD_P, "v_a"), **ATT),
        ValueError,
        "params",
        "params: missing keys ['v_a'], unexpected keys []",
    ),
    C(
        "additive W_a for another query width",
        lambda: additive_attention_forward(
            q[..., :4], k, v, ADD_P, causal=False, align="top_left"
        ),
        ValueError,
        "W_a",
        "params['W_a'] must have shape (4, 5), got (6, 5)",
    ),
    C(
        "additive U_a with other columns than v_a",
        lambda: additive_attention_forward(
            q, k, v, with_(ADD_P, "U_a", ADD_P["U_a"][:, :3]), **ATT
        ),
        ValueError,
        "U_a",
        "params['U_a'] must have shape (6, 5), got (6, 3)",
    ),
    C(
        "additive v_a 2-D",
        lambda: additive_attention_forward(
            q, k, v, with_(ADD_P, "v_a", ADD_P["v_a"][None]), **ATT
        ),
        ValueError,
        "v_a",
        "params['v_a'] must have 1 dimension, got shape (1, 5)",
    ),
    C(
        "additive empty v_a",
        lambda: additive_attention_forward(
            q,
            k,
            v,
            {"W_a": np.ones((6, 0)), "U_a": np.ones((6, 0)), "v_a": np.ones(0)},
            **ATT,
        ),
        ValueError,
        "v_a",
        "params['v_a'] must have A >= 1 entries, got shape (0,)",
    ),
    C(
        "additive float32 params with float64 inputs",
        lambda: additive_attention_forward(
            q, k, v, {n: a.astype(np.float32) for n, a in ADD_P.items()}, **ATT
        ),
        TypeError,
        "W_a",
        "params['W_a'] has dtype float32 but the inputs are float64",
    ),
    C(
        "additive leading axes that differ",
        lambda: additive_attention_forward(q, k[:1], v[:1], ADD_P, **ATT),
        ValueError,
        "k",
        "q(2, 3, 4, 6), k(1, 3, 5, 6), v(1, 3, 5, 7) must share leading axes",
    ),
    C(
        "additive float mask",
        lambda: additive_attention_forward(q, k, v, ADD_P, np.ones((4, 5)), **ATT),
        TypeError,
        "mask",
        "mask must be a boolean array",
    ),
    C(
        "additive mask of wrong shape",
        lambda: additive_attention_forward(
            q, k, v, ADD_P, np.ones((5, 4), bool), **ATT
        ),
        ValueError,
        "mask",
        f"mask(5, 4) {MASK_SCORES}",
    ),
    C(
        "additive causal=1",
        lambda: additive_attention_forward(q, k, v, ADD_P, causal=1),
        TypeError,
        "causal",
        "causal must be True or False, got 1",
    ),
    C(
        "additive params not a dict",
        lambda: additive_attention_forward(q, k, v, list(ADD_P.values()), **ATT),
        TypeError,
        "params",
        "params must be a dict, got list",
    ),
    C(
        "init_additive_params integer dtype",
        lambda: init_additive_params(3, 4, 5, rng=R, dtype=np.int32),
        TypeError,
        "dtype",
        "dtype must be float16/float32/float64, got int32",
    ),
    C(
        "init_additive_params zero d_attn",
        lambda: init_additive_params(3, 4, 0, rng=R),
        ValueError,
        "d_attn",
        "d_attn must be >= 1, got 0",
    ),
    C(
        "init_additive_params without Generator",
        lambda: init_additive_params(3, 4, 5, rng=None),
        TypeError,
        "rng",
        "rng must be a np.random.Generator, got NoneType",
    ),
    C(
        "luong W_a of the wrong shape",
        lambda: luong_attention_forward(q, k, v, W_A[:, :5], **ATT),
        ValueError,
        "W_a",
        "W_a(6, 5) must be (D_q, D_k) = (6, 6) for q(2, 3, 4, 6) and k(2, 3, 5, 6)",
    ),
    C(
        "luong W_a 1-D",
        lambda: luong_attention_forward(q, k, v, W_A[0], **ATT),
        ValueError,
        "W_a",
        "W_a must have 2 dimensions, got shape (6,)",
    ),
    C(
        "luong integer W_a",
        lambda: luong_attention_forward(q, k, v, W_A.astype(int), **ATT),
        TypeError,
        "W_a",
        f"W_a {FLOAT_DTYPE} int64",
    ),
    C(
        "luong float32 W_a",
        lambda: luong_attention_forward(q, k, v, W_A.astype(np.float32), **ATT),
        TypeError,
        "W_a",
        "arrays must share one float dtype, got q float64, k float64, W_a float32",
    ),
    C(
        "luong dot with different widths",
        lambda: luong_attention_forward(q[..., :4], k, v, **ATT),
        ValueError,
        "k",
        "q(2, 3, 4, 4) and k(2, 3, 5, 6) must share the last axis d",
    ),
    C(
        "luong causal left out",
        lambda: luong_attention_forward(q, k, v),
        TypeError,
        "causal",
        "missing 1 required keyword-only argument: 'causal'",
    ),
    # --- positional: RoPE, sinusoids, ALiBi ------------------------------------------
    C(
        "rope positions that do not broadcast",
        lambda: rope_forward(ROPE_X, np.arange(5)),
        ValueError,
        "positions",
        "positions(5,) must be (N,) = (4,), (B, N) or broadcast to x(2, 3, 4, 8)[:-1]",
    ),
    C(
        "rope positions (B, N) for another batch",
        lambda: rope_forward(ROPE_X, np.zeros((3, 4), int)),
        ValueError,
        "positions",
        "positions(3, 4) must be (N,) = (4,), (B, N)",
    ),
    C(
        "rope positions that would grow x",
        lambda: rope_forward(ROPE_X[0, 0], np.zeros((2, 4))),
        ValueError,
        "positions",
        "positions(2, 4) must be (N,) = (4,), (B, N) or broadcast to x(4, 8)[:-1]",
    ),
    C(
        "rope positions with NaN",
        lambda: rope_forward(ROPE_X, [0.0, np.nan, 2.0, 3.0]),
        ValueError,
        "positions",
        "positions must be finite, got NaN or inf in (4,)",
    ),
    C(
        "rope positions inf",
        lambda: rope_forward(ROPE_X, np.full(4, np.inf)),
        ValueError,
        "positions",
        "positions must be finite",
    ),
    C(
        "rope boolean positions",
        lambda: rope_forward(ROPE_X, np.ones(4, bool)),
        TypeError,
        "positions",
        "positions must be integers or floats, got dtype bool",
    ),
    C(
        "rope complex positions",
        lambda: rope_forward(ROPE_X, np.arange(4) * 1j),
        TypeError,
        "positions",
        "positions must be integers or floats, got dtype complex128",
    ),
    C(
        "rope base zero",
        lambda: rope_forward(ROPE_X, base=0.0),
        ValueError,
        "base",
        "base must be finite and lie in (0.0, inf], got 0.0",
    ),
    C(
        "rope negative base",
        lambda: rope_forward(ROPE_X, base=-10000.0),
        ValueError,
        "base",
        "base must be finite and lie in (0.0, inf], got -10000.0",
    ),
    C(
        "rope base NaN",
        lambda: rope_forward(ROPE_X, base=np.nan),
        ValueError,
        "base",
        "base must be finite and lie in (0.0, inf], got nan",
    ),
    C(
        "rope base a string",
        lambda: rope_forward(ROPE_X, base="10000"),
        TypeError,
        "base",
        "base must be a number, got '10000'",
    ),
    C(
        "rope layout typo",
        lambda: rope_forward(ROPE_X, layout="rotate_half"),
        ValueError,
        "layout",
        "layout must be one of ('interleaved', 'half'), got 'rotate_half'",
    ),
    C(
        "rope odd width",
        lambda: rope_forward(np.ones((3, 5))),
        ValueError,
        "x",
        "x.shape[-1]=5 must be even: positions rotate pairs of dims",
    ),
    C(
        "rope of ints",
        lambda: rope_forward(np.ones((3, 4), int)),
        TypeError,
        "x",
        f"x {FLOAT_DTYPE} int64",
    ),
    C(
        "sinusoidal odd d_model",
        lambda: sinusoidal_encoding(4, 7),
        ValueError,
        "d_model",
        "d_model=7 must be even",
    ),
    C(
        "sinusoidal negative n_positions",
        lambda: sinusoidal_encoding(-1, 8),
        ValueError,
        "n_positions",
        "n_positions must be >= 0, got -1",
    ),
    C(
        "sinusoidal base inf",
        lambda: sinusoidal_encoding(4, 8, base=np.inf),
        ValueError,
        "base",
        "base must be finite",
    ),
    C(
        "sinusoidal_shift_matrix k a string",
        lambda: sinusoidal_shift_matrix("2", 8),
        TypeError,
        "k",
        "k must be a number, got '2'",
    ),
    C(
        "sinusoidal_shift_matrix k NaN",
        lambda: sinusoidal_shift_matrix(np.nan, 8),
        ValueError,
        "k",
        "k must be finite and lie in [-inf, inf], got nan",
    ),
    C(
        "frequencies of width zero",
        lambda: frequencies(0),
        ValueError,
        "d",
        "d must be >= 1, got 0",
    ),
    C(
        "interleaved_to_half of a scalar",
        lambda: interleaved_to_half(np.array(1.0)),
        ValueError,
        "x",
        "x must have at least 1 dimension, got shape ()",
    ),
    C(
        "interleaved_to_half odd width",
        lambda: interleaved_to_half(np.ones(5)),
        ValueError,
        "x",
        "x.shape[-1]=5 must be even",
    ),
    C(
        "alibi_slopes zero heads",
        lambda: alibi_slopes(0),
        ValueError,
        "n_heads",
        "n_heads must be >= 1, got 0",
    ),
    C(
        "alibi_slopes float heads",
        lambda: alibi_slopes(8.0),
        TypeError,
        "n_heads",
        "n_heads must be an int, got float 8.0",
    ),
    C(
        "alibi_bias form typo",
        lambda: alibi_bias(4, 5, form="linear"),
        ValueError,
        "form",
        "form must be one of ('distance', 'key'), got 'linear'",
    ),
    C(
        "alibi_bias negative heads",
        lambda: alibi_bias(-2, 5),
        ValueError,
        "n_heads",
        "n_heads must be >= 1, got -2",
    ),
    C(
        "alibi_bias negative M",
        lambda: alibi_bias(4, 5, -1),
        ValueError,
        "M",
        "M must be >= 0, got -1",
    ),
    # --- analysis --------------------------------------------------------------------
    C(
        "offset_mass fractional offset",
        lambda: offset_mass(weights, 0.5),
        TypeError,
        "offset",
        "offset must be an int, got float 0.5",
    ),
    C(
        "offset_mass offset a string",
        lambda: offset_mass(weights, "-1"),
        TypeError,
        "offset",
        "offset must be an int, got str '-1'",
    ),
    C(
        "offset_mass boolean offset",
        lambda: offset_mass(weights, True),
        TypeError,
        "offset",
        "offset must be an int, got bool True",
    ),
    C(
        "offset_mass of 1-D weights",
        lambda: offset_mass(weights[0, 0, 0], -1),
        ValueError,
        "weights",
        "weights must have at least 2 dimensions, got shape (5,)",
    ),
    C(
        "sink_mass zero sinks",
        lambda: sink_mass(weights, 0),
        ValueError,
        "n_sink",
        "n_sink must be >= 1, got 0",
    ),
    C(
        "sink_mass more sinks than keys",
        lambda: sink_mass(weights, 6),
        ValueError,
        "n_sink",
        "n_sink=6 must be <= M, the keys of weights(2, 3, 4, 5)",
    ),
    C(
        "sink_mass_per_head no query left after the sinks",
        lambda: sink_mass_per_head(weights, 4),
        ValueError,
        "n_sink",
        "weights(2, 3, 4, 5) need more than 4 queries to average (n_sink=4, "
        "skip_first=True)",
    ),
    C(
        "sink_mass_per_head skip_first='no'",
        lambda: sink_mass_per_head(weights, skip_first="no"),
        TypeError,
        "skip_first",
        "skip_first must be True or False, got 'no'",
    ),
    C(
        "attention_entropy negative weights",
        lambda: attention_entropy(-weights),
        ValueError,
        "weights",
        "weights(2, 3, 4, 5) must be finite and >= 0 (attention weights)",
    ),
    C(
        "attention_entropy NaN weights",
        lambda: attention_entropy(np.full((2, 3), np.nan)),
        ValueError,
        "weights",
        "weights(2, 3) must be finite and >= 0",
    ),
    C(
        "attention_entropy normalized='yes'",
        lambda: attention_entropy(weights, normalized="yes"),
        TypeError,
        "normalized",
        "normalized must be True or False, got 'yes'",
    ),
    C(
        "attention_entropy float mask",
        lambda: attention_entropy(weights, np.ones((4, 5))),
        TypeError,
        "mask",
        "mask must be a boolean array",
    ),
    C(
        "entropy_per_head mask of wrong shape",
        lambda: entropy_per_head(weights, np.ones((5, 4), bool)),
        ValueError,
        "mask",
        f"mask(5, 4) {MASK_SCORES}",
    ),
    C(
        "entropy_per_head integer weights",
        lambda: entropy_per_head(np.ones((3, 3), int)),
        TypeError,
        "weights",
        f"weights {FLOAT_DTYPE} int64",
    ),
    # --- layers: layer norm, embedding, GELU -----------------------------------------
    C(
        "layernorm gamma of another width",
        lambda: an.layernorm_forward(x, GAMMA[:6], BETA),
        ValueError,
        "gamma",
        "gamma(6,) and beta(12,) must be (D,) for x(2, 4, 12)",
    ),
    C(
        "layernorm beta 2-D",
        lambda: an.layernorm_forward(x, GAMMA, BETA[None]),
        ValueError,
        "beta",
        "beta must have 1 dimension, got shape (1, 12)",
    ),
    C(
        "layernorm eps zero",
        lambda: an.layernorm_forward(x, GAMMA, BETA, eps=0.0),
        ValueError,
        "eps",
        "eps must be finite and lie in (0.0, inf], got 0.0",
    ),
    C(
        "layernorm eps NaN",
        lambda: an.layernorm_forward(x, GAMMA, BETA, eps=np.nan),
        ValueError,
        "eps",
        "eps must be finite and lie in (0.0, inf], got nan",
    ),
    C(
        "layernorm eps a string",
        lambda: an.layernorm_forward(x, GAMMA, BETA, eps="1e-5"),
        TypeError,
        "eps",
        "eps must be a number, got '1e-5'",
    ),
    C(
        "layernorm float32 gamma with float64 x",
        lambda: an.layernorm_forward(x, GAMMA.astype(np.float32), BETA),
        TypeError,
        "gamma",
        "arrays must share one float dtype, got x float64, gamma float32, beta float64",
    ),
    C(
        "embedding negative id",
        lambda: an.embedding_forward(IDS - 1, EMB),
        ValueError,
        "ids",
        "ids must lie in [0, 5) for W(5, 4), got min -1 max 3",
    ),
    C(
        "embedding id equal to V",
        lambda: an.embedding_forward(IDS + 1, EMB),
        ValueError,
        "ids",
        "ids must lie in [0, 5) for W(5, 4), got min 1 max 5",
    ),
    C(
        "embedding float ids",
        lambda: an.embedding_forward(IDS.astype(float), EMB),
        TypeError,
        "ids",
        "ids must be integers, got dtype float64",
    ),
    C(
        "embedding boolean ids",
        lambda: an.embedding_forward(IDS > 1, EMB),
        TypeError,
        "ids",
        "ids must be integers, got dtype bool",
    ),
    C(
        "embedding table 1-D",
        lambda: an.embedding_forward(IDS, EMB[0]),
        ValueError,
        "W",
        "W must have 2 dimensions, got shape (4,)",
    ),
    C(
        "GELU of ints",
        lambda: an.gelu_forward(np.arange(3)),
        TypeError,
        "x",
        f"x {FLOAT_DTYPE} int64",
    ),
    # --- linear ----------------------------------------------------------------------
    C(
        "linear width mismatch",
        lambda: an.linear_forward(x, P["W_k"][:8]),
        ValueError,
        "W",
        "x(2, 4, 12) and W(8, 12) must share D_in",
    ),
    C(
        "linear bias misshaped",
        lambda: an.linear_forward(x, P["W_q"], np.zeros(5)),
        ValueError,
        "b",
        "b(5,) must have shape (D_out,) = (12,) for W(12, 12)",
    ),
    C(
        "linear W 1-D",
        lambda: an.linear_forward(x, np.ones(12)),
        ValueError,
        "W",
        "W must have 2 dimensions, got shape (12,)",
    ),
    C(
        "linear x 0-d",
        lambda: an.linear_forward(np.array(1.0), P["W_q"]),
        ValueError,
        "x",
        "x must have at least 1 dimension, got shape ()",
    ),
    C(
        "linear mixed dtypes",
        lambda: an.linear_forward(x, P["W_q"].astype(np.float32)),
        TypeError,
        "W",
        "arrays must share one float dtype, got x float64, W float32",
    ),
    # --- gradient checking -----------------------------------------------------------
    C(
        "gradcheck in float32",
        lambda: numerical_grad(lambda a: a, q.astype(np.float32), q),
        TypeError,
        "x",
        "x has dtype float32; finite differences need float64",
    ),
    C(
        "gradcheck of a list",
        lambda: numerical_grad(lambda a: a, [1.0, 2.0], np.ones(2)),
        TypeError,
        "x",
        "x must be a NumPy array, got list",
    ),
    C(
        "gradcheck dout of another shape",
        lambda: numerical_grad(lambda a: a, scores, np.ones(5)),
        ValueError,
        "dout",
        "f returned an array of shape (2, 5) but dout has shape (5,)",
    ),
    C(
        "gradcheck dout that would broadcast",
        lambda: numerical_grad(lambda a: a[:, None], scores[0], np.ones(5)),
        ValueError,
        "dout",
        "f returned an array of shape (5, 1) but dout has shape (5,)",
    ),
    C(
        "gradcheck step zero",
        lambda: numerical_grad(lambda a: a, scores, scores, h=0),
        ValueError,
        "h",
        "h must be a positive, finite step, got 0",
    ),
    C(
        "gradcheck step a string",
        lambda: numerical_grad(lambda a: a, scores, scores, h="1e-6"),
        TypeError,
        "h",
        "h must be a positive float, got '1e-6'",
    ),
    C(
        "numerical_grads of a list",
        lambda: numerical_grads(lambda p: p, [scores], scores),
        TypeError,
        "inputs",
        "inputs must be a dict {name: float64 array}, got list",
    ),
    C(
        "numerical_grads of an int array",
        lambda: numerical_grads(lambda p: p["w"], {"w": np.ones(3, int)}, np.ones(3)),
        TypeError,
        "w",
        "w has dtype int64; finite differences need float64",
    ),
    C(
        "rel_error of two shapes",
        lambda: rel_error(np.ones(3), np.ones(4)),
        ValueError,
        "a",
        "rel_error: a(3,) and b(4,) must have one shape",
    ),
    C(
        "grad_report of lists",
        lambda: grad_report([scores], [scores]),
        TypeError,
        "analytic",
        "analytic gradients must be a dict {name: array}, got list",
    ),
    C(
        "check_layer without Generator",
        lambda: check_layer(double, lambda d, c: {"x": 2 * d}, {"x": scores}, rng=0),
        TypeError,
        "rng",
        "rng must be a np.random.Generator, got int",
    ),
    C(
        "check_layer backward returns a tuple",
        lambda: check_layer(double, lambda d, c: (2 * d,), {"x": scores}, rng=R),
        TypeError,
        "analytic",
        "analytic gradients must be a dict {name: array}, got tuple",
    ),
    C(
        "check_layer backward with other keys",
        lambda: check_layer(double, lambda d, c: {"y": 2 * d}, {"x": scores}, rng=R),
        ValueError,
        "x",
        "analytic and numeric gradients have different keys: ['x', 'y']",
    ),
    # --- viz: arguments are checked before matplotlib is imported --------------------
    C(
        "plot_attention colorbar='yes'",
        lambda: viz.plot_attention(scores, colorbar="yes"),
        TypeError,
        "colorbar",
        "colorbar must be True or False, got 'yes'",
    ),
    C(
        "plot_attention of strings",
        lambda: viz.plot_attention(np.array([["a", "b"]])),
        TypeError,
        "weights",
        "weights must be a real-valued array, got dtype <U1",
    ),
    C(
        "plot_attention of 3-D weights",
        lambda: viz.plot_attention(q[0]),
        ValueError,
        "weights",
        "weights must have 2 dimensions, got shape (3, 4, 6)",
    ),
    C(
        "plot_attention negative vmax",
        lambda: viz.plot_attention(scores, diverging=True, vmax=-1.0),
        ValueError,
        "vmax",
        "vmax must be finite and lie in (0.0, inf], got -1.0",
    ),
    C(
        "plot_attention fmt not a string",
        lambda: viz.plot_attention(scores, fmt=2),
        TypeError,
        "fmt",
        "fmt must be a format string like '.2f', got 2",
    ),
    C(
        "plot_attention fmt not a number format",
        lambda: viz.plot_attention(scores, fmt=".2q"),
        ValueError,
        "fmt",
        "fmt must be a number format like '.2f', got '.2q'",
    ),
    C(
        "plot_attention mask of the wrong shape",
        lambda: viz.plot_attention(scores, mask=np.ones((5, 2), bool)),
        ValueError,
        "mask",
        "mask(5, 2) does not broadcast to the weights' (2, 5)",
    ),
    C(
        "plot_heads diverging=1",
        lambda: viz.plot_heads(q[0], diverging=1),
        TypeError,
        "diverging",
        "diverging must be True or False, got 1",
    ),
    C(
        "plot_heads panel zero",
        lambda: viz.plot_heads(q[0], panel=0),
        ValueError,
        "panel",
        "panel must be finite and lie in (0.0, inf], got 0.0",
    ),
    C(
        "plot_heads head_titles of the wrong length",
        lambda: viz.plot_heads(q[0], head_titles=["a", "b"]),
        ValueError,
        "head_titles",
        "head_titles must hold H = 3 titles, got 2",
    ),
    C(
        "plot_heads label not a string",
        lambda: viz.plot_heads(q[0], label=5),
        TypeError,
        "label",
        "label must be a string or None, got 5",
    ),
    C(
        "plot_mask legend=None",
        lambda: viz.plot_mask(np.ones((3, 3), bool), legend=None),
        TypeError,
        "legend",
        "legend must be True, False or 'below', got None",
    ),
    C(
        "plot_mask of floats",
        lambda: viz.plot_mask(np.ones((3, 3))),
        TypeError,
        "mask",
        "mask must be boolean (True = may attend), got float64",
    ),
    C(
        "save_figure dpi zero",
        lambda: viz.save_figure(None, "x", dpi=0),
        ValueError,
        "dpi",
        "dpi must be finite and lie in (0.0, inf], got 0.0",
    ),
    C(
        "explore_attention of 4-D weights",
        lambda: viz.explore_attention(np.ones((2, 2, 3, 3))),
        ValueError,
        "weights",
        "weights must have 3 dimensions, got shape (2, 2, 3, 3)",
    ),
]


def snapshot():
    """Copies of everything a failed call must leave as it was."""
    arrays = [a.copy() for a in ARRAYS]
    params = [{n: a.copy() for n, a in p.items()} for p in PARAMS]
    caches = [(c.k.copy(), c.v.copy(), c.length) for c in KV_CACHES]
    return arrays, params, caches, np.random.get_state()[1].copy()


def assert_unchanged(before):
    arrays, params, caches, state = before
    for a, b in zip(ARRAYS, arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    for p, b in zip(PARAMS, params, strict=True):
        assert list(p) == list(b)
        for name in p:
            np.testing.assert_array_equal(p[name], b[name])
    for c, (ck, cv, length) in zip(KV_CACHES, caches, strict=True):
        assert c.length == length
        np.testing.assert_array_equal(c.k, ck)
        np.testing.assert_array_equal(c.v, cv)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_naming_the_argument_and_touches_nothing(case):
    _, call, exc, arg, pattern = case
    before = snapshot()
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc  # exactly ValueError or TypeError
    message = str(info.value)
    assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])", message), (
        f"the message does not name {arg!r}: {message}"
    )
    assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert_unchanged(before)


def test_catalogue_is_large_distinct_and_covers_the_core_api():
    assert len(CATALOGUE) >= 50
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)
    assert all(c[2] in (ValueError, TypeError) for c in CATALOGUE)


def test_viz_argument_errors_do_not_import_matplotlib():
    code = (
        "import sys, numpy as np\n"
        "from attention_np import viz\n"
        "for call in (lambda: viz.plot_attention(np.ones((2, 2)), colorbar=1),\n"
        "             lambda: viz.plot_heads(np.ones((2, 2, 2)), panel=-1),\n"
        "             lambda: viz.plot_mask(np.ones((2, 2)))):\n"
        "    try:\n"
        "        call()\n"
        "    except (TypeError, ValueError):\n"
        "        pass\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


# --- the gradcheck command line: usage errors are argparse errors, exit status 2 ----


@pytest.mark.parametrize(
    "args, message",
    [
        (["gradcheck", "-k", "no_such_layer"], "no gradcheck case matches"),
        (["gradcheck", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["gradcheck", "--seed", "1.5"], "argument --seed: expected an integer"),
        (["gradcheck", "--seed"], "argument --seed: expected one argument"),
        (["gradcheck", "--bogus"], "unrecognized arguments: --bogus"),
        (["gradchek"], "invalid choice: 'gradchek'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_gradcheck_cli_usage_errors_exit_two_with_an_argparse_message(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "attention_np", *args], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "error: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr and "layers ok" not in result.stdout


# --- a failed call changes nothing it was given -------------------------------------


MHA_FAILURES = {
    "bad mask": lambda c: an.mha_forward(
        x1, x1, P, np.ones((2, 3, 1, 9), bool), kv_cache=c, **MHA
    ),
    "bad positions": lambda c: an.mha_forward(
        x1, x1, P, kv_cache=c, positions=[np.nan], **MHA
    ),
    "causal=1": lambda c: an.mha_forward(x1, x1, P, n_heads=3, causal=1, kv_cache=c),
    "float32 params": lambda c: an.mha_forward(
        x1, x1, {n: a.astype(np.float32) for n, a in P.items()}, kv_cache=c, **MHA
    ),
    "too many tokens": lambda c: an.mha_forward(x, x, P, kv_cache=c, **MHA),
    "dropout without rng": lambda c: an.mha_forward(
        x1, x1, P, kv_cache=c, dropout_p=0.5, **MHA
    ),
}


@pytest.mark.parametrize("name", MHA_FAILURES)
def test_a_failed_mha_forward_leaves_its_kv_cache_unchanged(name):
    cache = cache_of(2)
    before = cache.k.copy(), cache.v.copy(), cache.length
    with pytest.raises((ValueError, TypeError)):
        MHA_FAILURES[name](cache)
    assert cache.length == before[2]
    np.testing.assert_array_equal(cache.k, before[0])
    np.testing.assert_array_equal(cache.v, before[1])


def test_successful_calls_leave_their_inputs_and_the_global_rng_alone():
    before = snapshot()
    cache = KVCache(2, 1, 6, 6)
    out = cached_attention(q1, k1, v1, cache, causal=True)
    an.mha_forward(x1, x1, P, kv_cache=cache_of(0), **MHA)
    attention_entropy(weights, normalized=True)
    entropy_per_head(weights, weights > 0.1, normalized=True)
    sink_mass_per_head(weights, 2)
    offset_mass(weights, -1)
    interleaved_to_half(ROPE_X)
    rope_forward(ROPE_X, np.array([[0, 1, 2, 3], [4, 5, 6, 7]]))
    an.layernorm_backward(np.ones_like(x), an.layernorm_forward(x, GAMMA, BETA)[1])
    an.embedding_backward(np.ones((2, 3, 4)), an.embedding_forward(IDS, EMB)[1])
    assert out.shape == (2, 3, 1, 6)
    assert_unchanged(before)


# --- NaN and inf: propagated as documented; finite inputs never give NaN ------------


def rows_with_nan(a):
    return np.isnan(a).any(axis=-1)


def test_mha_nan_in_a_query_token_makes_only_its_output_row_nan():
    x_bad = x.copy()
    x_bad[1, 2, 5] = np.nan
    with np.errstate(invalid="ignore"):
        out, _ = an.mha_forward(x_bad, x_kv, P_CROSS, n_heads=3, causal=True)
    expected = np.zeros(out.shape[:-1], bool)
    expected[1, 2] = True
    np.testing.assert_array_equal(rows_with_nan(out), expected)
    assert np.isnan(out[1, 2]).all()


def test_mha_nan_in_a_key_value_token_reaches_its_whole_sequence_only():
    kv_bad = x_kv.copy()
    kv_bad[1, 4, 0] = np.nan  # last key of sequence 1: causally masked for all queries
    with np.errstate(invalid="ignore"):
        out, _ = an.mha_forward(x, kv_bad, P_CROSS, n_heads=3, causal=True)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


def test_cached_attention_nan_in_a_cached_value_reaches_every_later_query():
    cache = KVCache(2, 1, 6, 6)
    v_bad = v1.copy()
    v_bad[0, 0, 0, 2] = np.nan
    with np.errstate(invalid="ignore"):
        cached_attention(q1, k1, v_bad, cache, causal=True)
        out = cached_attention(q1, k1, v1, cache, causal=True)
    assert np.isnan(out[0, :, 0, 2]).all() and np.isfinite(out[1]).all()


BIG = 1e4  # inputs of this size: scores of ~1e8, exp would overflow without a shift


def big(a):
    return BIG * a


FINITE_CALLS = {
    "softmax": lambda m: an.softmax_forward(big(scores), m(scores.shape))[0],
    "attention": lambda m: an.attention_forward(
        big(q), k, v, m((2, 3, 4, 5)), causal=True, align="bottom_right"
    )[0],
    "attention_weights": lambda m: an.attention_weights(
        big(q), big(k), m((2, 3, 4, 5)), causal=True
    ),
    "gqa": lambda m: gqa_attention_forward(
        big(q), k[:, :1], v[:, :1], m((2, 3, 4, 5)), causal=True
    )[0],
    "additive": lambda m: additive_attention_forward(
        big(q), big(k), v, ADD_P, m((2, 3, 4, 5)), causal=True
    )[0],
    "luong": lambda m: luong_attention_forward(
        big(q), k, v, W_A, m((2, 3, 4, 5)), causal=False
    )[0],
    "mha": lambda m: an.mha_forward(
        big(x), big(x_kv), P_CROSS, m((2, 3, 4, 5)), n_heads=3, causal=True
    )[0],
    "cached_attention": lambda m: cached_attention(
        big(q1), k1, v1, KVCache(2, 1, 6, 2), m((2, 3, 1, 1)), causal=True
    ),
    "rope": lambda m: rope_forward(big(ROPE_X), big(np.arange(4.0)))[0],
    "layernorm": lambda m: an.layernorm_forward(big(x), GAMMA, BETA)[0],
}
MASKINGS = {
    "no mask": lambda shape: None,
    "all masked": lambda shape: np.zeros(shape, bool),
    "random": lambda shape: np.random.default_rng(3).random(shape) > 0.5,
}


@pytest.mark.parametrize("masking", MASKINGS)
@pytest.mark.parametrize("name", FINITE_CALLS)
def test_finite_inputs_of_magnitude_1e4_never_give_nan_under_any_mask(name, masking):
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # not underflow
        out = FINITE_CALLS[name](MASKINGS[masking])
    assert np.all(np.isfinite(out))

"""The bad-input catalogue: each misuse raises ValueError/TypeError with a message that
names the argument and the offending shape or value, and leaves the caller's arrays
untouched. The core package's cases (and its NaN/inf policy tests) are in
test_bad_inputs_core.py."""

import re

import numpy as np
import pytest

from attention_np import efficient as eff
from attention_np import memory as mem
from attention_np import parallel as par
from attention_np import transformer as tf
from attention_np.efficient.banded import band_blocks
from attention_np.train import TrainConfig, default_model_config, train

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 6))
k = R.standard_normal((2, 3, 5, 6))
v = R.standard_normal((2, 3, 5, 7))
scores = R.standard_normal((2, 5))

# sub-packages: caches for the dout checks, inputs for the boolean options
MQ, MK = R.standard_normal((2, 2, 4, 3))  # (B, N, d_k) delta-rule queries, keys
MV = R.standard_normal((2, 4, 5))
MBETA = R.uniform(0.1, 0.9, (2, 4))
NTM_W, NTM_M = R.uniform(0.0, 1.0, (2, 5)), R.standard_normal((2, 5, 3))
_, DELTA_CACHE = mem.delta_rule_forward(MQ, MK, MV, MBETA)
_, NTM_READ_CACHE = mem.ntm_read_forward(NTM_W, NTM_M)
TTT_P = mem.init_ttt_linear_params(3, rng=np.random.default_rng(2))
TTT_X = R.standard_normal((2, 5, 3))
STORY, QUESTION = R.integers(0, 6, (2, 4, 3)), R.integers(1, 6, (2, 2))
MEMNET_P = mem.init_memnet_params(6, 4, n_hops=2, n_memories=4, rng=R)
LOGITS, TARGETS = R.standard_normal((2, 4, 6)), R.integers(0, 6, (2, 4))
_, CE_CACHE = tf.cross_entropy_forward(LOGITS, TARGETS)
TRAIN_CFG = TrainConfig(length=3, n_symbols=4, steps=1, batch_size=2)
MODEL_CFG = default_model_config(TRAIN_CFG, d_model=4, n_heads=2, n_layers=1)
MODEL_P = tf.init_params(MODEL_CFG, rng=np.random.default_rng(3))
_, MODEL_CACHE = tf.model_forward(R.integers(0, 5, (2, 3)), MODEL_P, MODEL_CFG)
OMEGA = eff.favor_omega(6, 8, rng=np.random.default_rng(5))
_, FAVOR_CACHE = eff.favor_forward(q, OMEGA)
RQ = R.standard_normal((2, 8, 3))  # (B, N, d) ring attention over 2 ranks
RING_OUT, RING_CACHE = par.ring_attention_forward(RQ, RQ, RQ, n_ranks=2)
O_A, LSE_A = R.standard_normal((2, 3, 4, 7)), R.standard_normal((2, 3, 4))


class OneRankComm:
    """An mpi4py-like communicator of size 1: Alltoall is a copy (no MPI needed)."""

    def Get_size(self):
        return 1

    def Get_rank(self):
        return 0

    def Alltoall(self, send, recv):
        recv[...] = send


_, ULYSSES_CACHE, _ = par.ulysses_mpi_forward(q, q, q, OneRankComm())

ARRAYS = [q, k, v, scores]
ARRAYS += [MQ, MK, MV, MBETA, NTM_W, NTM_M, *TTT_P.values(), TTT_X, STORY, QUESTION]
ARRAYS += [*MEMNET_P.values(), LOGITS, TARGETS, *MODEL_P.values()]
ARRAYS += [OMEGA, RQ, RING_OUT, O_A, LSE_A]


def lit(text):
    """Regex matching ``text`` literally (messages are full of brackets)."""
    return re.escape(text)


# (id, callable, exception type, regex the message must match)
CATALOGUE = [
    # --- backward functions of the sub-packages: dout of a broadcastable wrong shape --
    (
        "delta_rule_backward dout with a last axis of 1",
        lambda: mem.delta_rule_backward(np.ones((2, 4, 1)), DELTA_CACHE),
        ValueError,
        lit("dout(2, 4, 1) must have the shape of the forward's output (2, 4, 5)"),
    ),
    (
        "ntm_read_backward dr with an extra axis",
        lambda: mem.ntm_read_backward(np.ones((1, 2, 3)), NTM_READ_CACHE),
        ValueError,
        lit("dr(1, 2, 3) must have the shape of the forward's output (2, 3)"),
    ),
    (
        "cross_entropy_backward dout that is not a scalar",
        lambda: tf.cross_entropy_backward(np.ones(1), CE_CACHE),
        ValueError,
        lit("dout(1,) must have the shape of the forward's output ()"),
    ),
    (
        "model_backward dlogits with a last axis of 1",
        lambda: tf.model_backward(np.ones((2, 3, 1)), MODEL_CACHE),
        ValueError,
        lit("dlogits(2, 3, 1) must have the shape of the forward's output (2, 3, 5)"),
    ),
    (
        "favor_backward dphi with a last axis of 1",
        lambda: eff.favor_backward(np.ones((2, 3, 4, 1)), FAVOR_CACHE),
        ValueError,
        lit(
            "dphi(2, 3, 4, 1) must have the shape of the forward's output (2, 3, 4, 8)"
        ),
    ),
    (
        "ring_backward_trace dout with a last axis of 1",
        lambda: par.ring_backward_trace(np.ones((2, 8, 1)), RING_CACHE),
        ValueError,
        lit("dout(2, 8, 1) must have the shape of the forward's output (2, 8, 3)"),
    ),
    (
        "ring_attention_mpi_backward dout of one sequence (before any MPI call)",
        lambda: par.ring_attention_mpi_backward(
            np.ones((8, 3)), RQ, RQ, RQ, RING_OUT, RING_CACHE.lse, None
        ),
        ValueError,
        lit("dout(8, 3) must have the shape of the forward's output (2, 8, 3)"),
    ),
    (
        "ulysses_mpi_backward dout with a last axis of 1",
        lambda: par.ulysses_mpi_backward(
            np.ones((2, 3, 4, 1)), ULYSSES_CACHE, OneRankComm()
        ),
        ValueError,
        lit(
            "dout(2, 3, 4, 1) must have the shape of the forward's output (2, 3, 4, 6)"
        ),
    ),
    (
        "merge_partials_backward dlse with a last axis of 1",
        lambda: par.merge_partials_backward(
            np.ones((2, 3, 4, 7)), np.ones((2, 3, 1)), O_A, LSE_A, O_A, LSE_A
        ),
        ValueError,
        lit("dlse(2, 3, 1) must have the shape of the forward's output (2, 3, 4)"),
    ),
    # --- boolean options: True or False only (a truthy "no" would switch them on) ---
    (
        "flash causal='no'",
        lambda: eff.flash_attention_forward(q, k, v, causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "sliding-window attention causal=1",
        lambda: eff.sliding_window_attention_forward(
            q, q, v[..., :4, :], window=2, causal=1
        ),
        TypeError,
        lit("causal must be True or False, got 1"),
    ),
    (
        "band_blocks causal=None",
        lambda: band_blocks(8, 3, causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "linear attention causal='False'",
        lambda: eff.linear_attention_forward(q, k, v, causal="False"),
        TypeError,
        lit("causal must be True or False, got 'False'"),
    ),
    (
        "linear_attention_weights causal=0",
        lambda: eff.linear_attention_weights(q, k, causal=0),
        TypeError,
        lit("causal must be True or False, got 0"),
    ),
    (
        "sliding_window_mask causal='yes'",
        lambda: eff.sliding_window_mask(6, 2, causal="yes"),
        TypeError,
        lit("causal must be True or False, got 'yes'"),
    ),
    (
        "dilated_mask causal=np.int64(1)",
        lambda: eff.dilated_mask(6, 2, 2, causal=np.int64(1)),
        TypeError,
        lit("causal must be True or False, got np.int64(1)"),
    ),
    (
        "strided_mask causal=[]",
        lambda: eff.strided_mask(6, 2, causal=[]),
        TypeError,
        lit("causal must be True or False, got []"),
    ),
    (
        "online_logsumexp trace='yes'",
        lambda: eff.online_logsumexp(scores, block=2, trace="yes"),
        TypeError,
        lit("trace must be True or False, got 'yes'"),
    ),
    (
        "favor_forward x of width 5 with omega of d 6",
        lambda: eff.favor_forward(np.ones((2, 4, 5)), OMEGA),
        ValueError,
        lit("x(2, 4, 5) and omega(6, 8) must share d = x.shape[-1]"),
    ),
    (
        "favor_forward integer x",
        lambda: eff.favor_forward(np.ones((2, 4, 6), int), OMEGA),
        TypeError,
        lit("x must be a float16/float32/float64 array, got dtype int64"),
    ),
    (
        "favor_forward one vector x with one max over all positions",
        lambda: eff.favor_forward(np.ones(6), OMEGA, stabilize="all"),
        ValueError,
        lit("x must have at least 2 dimensions, got shape (6,)"),
    ),
    (
        "favor_omega orthogonal=1",
        lambda: eff.favor_omega(6, 8, rng=np.random.default_rng(0), orthogonal=1),
        TypeError,
        lit("orthogonal must be True or False, got 1"),
    ),
    (
        "ring attention causal=1",
        lambda: par.ring_attention_forward(RQ, RQ, RQ, n_ranks=2, causal=1),
        TypeError,
        lit("causal must be True or False, got 1"),
    ),
    (
        "ulysses causal='no'",
        lambda: par.ulysses_attention_forward(q, q, q, n_ranks=1, causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "ulysses over MPI causal=None",
        lambda: par.ulysses_mpi_forward(q, q, q, OneRankComm(), causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "step_tiles causal='no'",
        lambda: par.step_tiles("zigzag", 0, 1, 2, 4, causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "work_formula causal=None",
        lambda: par.work_formula("zigzag", 8, 2, causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "ring_elements backward=1",
        lambda: par.ring_elements(8, 2, 4, backward=1),
        TypeError,
        lit("backward must be True or False, got 1"),
    ),
    (
        "ulysses_elements exact='yes'",
        lambda: par.ulysses_elements(8, 2, 4, exact="yes"),
        TypeError,
        lit("exact must be True or False, got 'yes'"),
    ),
    (
        "ttt_linear_forward position_scale=1",
        lambda: mem.ttt_linear_forward(
            TTT_X, TTT_X, TTT_X, 0.1, TTT_P, mini_batch=2, position_scale=1
        ),
        TypeError,
        lit("position_scale must be True or False, got 1"),
    ),
    (
        "ttt_linear_decode_step position_scale='yes'",
        lambda: mem.ttt_linear_decode_step(
            mem.ttt_linear_decode_init(TTT_P, 2),
            *TTT_X[:, :3].transpose(1, 0, 2),
            0.1,
            TTT_P,
            position_scale="yes",
        ),
        TypeError,
        lit("position_scale must be True or False, got 'yes'"),
    ),
    (
        "memnet_forward position_enc='no'",
        lambda: mem.memnet_forward(STORY, QUESTION, MEMNET_P, position_enc="no"),
        TypeError,
        lit("position_enc must be True or False, got 'no'"),
    ),
    (
        "train progress='no'",
        lambda: train(
            MODEL_CFG, TRAIN_CFG, rng=np.random.default_rng(0), progress="no"
        ),
        TypeError,
        lit("progress must be True or False, got 'no'"),
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = [a.copy() for a in ARRAYS]
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) in (ValueError, TypeError)
    for a, b in zip(ARRAYS, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 30
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)

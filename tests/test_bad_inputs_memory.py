"""Bad inputs to every public function of attention_np.memory and its MPI check.

Each misuse raises ValueError/TypeError whose message names the argument; a failed
call leaves every array it was given unchanged. Then: forward and backward never
modify their inputs, never touch the global NumPy RNG, and give no NaN from finite
inputs of magnitude 1e4.
"""

import re
import subprocess
import sys

import numpy as np
import pytest

from attention_np import memory as mem
from attention_np.gradcheck import LayerCase, case_functions
from attention_np.memory import tasks
from attention_np.memory.gradcheck_cases import CASES

R = np.random.default_rng(0)
# delta and sum rules: (B, N, d_k), (B, N, d_v), (B, N), (B, d_k, d_v)
Q, K = R.standard_normal((2, 2, 4, 3))
K /= np.linalg.norm(K, axis=-1, keepdims=True)
V = R.standard_normal((2, 4, 5))
BETA = R.uniform(0.1, 0.9, (2, 4))
S0 = R.standard_normal((2, 3, 5))
_, SUM_CACHE = mem.sum_rule_forward(Q, K, V)
_, DELTA_CACHE = mem.delta_rule_forward(Q, K, V, BETA)
_, CHUNK_CACHE = mem.delta_rule_chunkwise_forward(Q, K, V, BETA, chunk_size=3)
# fast weights: x (B, T, D_in), memory A (B, D_h, D_h), state h (B, D_h)
FW_X = R.standard_normal((2, 5, 3))
FW_P = mem.init_fast_weights_params(3, 4, rng=np.random.default_rng(1))
FW_A, FW_H = R.standard_normal((2, 4, 4)), R.standard_normal((2, 4))
_, FW_CACHE = mem.fast_weights_forward(FW_X, FW_P)
# TTT-Linear: views (B, N, F), eta (B, N); the inner loss on Z (B, N, F)
XQ, XK, XV = R.standard_normal((3, 2, 5, 3))
ETA = R.uniform(0.1, 0.5, (2, 5))
TTT_P = mem.init_ttt_linear_params(3, rng=np.random.default_rng(2), std=0.5)
_, TTT_CACHE = mem.ttt_linear_forward(XQ, XK, XV, ETA, TTT_P, mini_batch=2)
STATE = mem.ttt_linear_decode_init(TTT_P, batch=2)
Z, TGT = R.standard_normal((2, 2, 5, 3))
GAMMA, SHIFT = np.ones(3), np.zeros(3)
_, LN_CACHE = mem.ln_l2_grad_forward(Z, TGT, GAMMA, SHIFT)
# In-Place TTT: x (B, T, D)
IX = R.standard_normal((2, 7, 3))
IP = mem.init_inplace_ttt_params(3, 4, rng=np.random.default_rng(3))
_, IP_CACHE = mem.inplace_ttt_forward(IX, IP, chunk_size=3, lr=0.5)
# memory network: ids (B, n, J) and (B, J_q) in [0, 6)
STORY, QUESTION = R.integers(0, 6, (2, 4, 3)), R.integers(1, 6, (2, 2))
MN_P = mem.init_memnet_params(
    6, 4, n_hops=2, n_memories=4, rng=np.random.default_rng(4)
)
_, MN_CACHE = mem.memnet_forward(STORY, QUESTION, MN_P)
# NTM: B = 2 heads over n = 5 rows of width W = 3
HEAD = {
    "k": R.standard_normal((2, 3)),
    "beta": np.array([1.0, 2.0]),
    "g": np.array([0.3, 0.8]),
    "s": np.array([[0.1, 0.8, 0.1], [0.2, 0.5, 0.3]]),
    "gamma": np.array([1.0, 2.5]),
    "M": R.standard_normal((2, 5, 3)),
    "w_prev": np.full((2, 5), 0.2),
}
NTM_W, NTM_E, NTM_A = np.full((2, 5), 0.2), R.uniform(0, 1, (2, 3)), np.ones((2, 3))
_, ADDR_CACHE = mem.ntm_address_forward(**HEAD)
_, READ_CACHE = mem.ntm_read_forward(NTM_W, HEAD["M"])
_, WRITE_CACHE = mem.ntm_write_forward(NTM_W, NTM_E, NTM_A, HEAD["M"])

ARRAYS = [Q, K, V, BETA, S0, FW_X, *FW_P.values(), FW_A, FW_H, XQ, XK, XV, ETA]
ARRAYS += [*TTT_P.values(), Z, TGT, GAMMA, SHIFT, IX, *IP.values(), STORY, QUESTION]
ARRAYS += [*MN_P.values(), *HEAD.values(), NTM_W, NTM_E, NTM_A]
ARRAYS += [a for a in STATE.values() if isinstance(a, np.ndarray)]


def lit(text):
    """Regex matching ``text`` literally (messages are full of brackets)."""
    return re.escape(text)


def with_(d, key, value):
    return {**d, key: value}


def head(**changes):
    return {**HEAD, **changes}


def f32(params):
    return {k: v.astype(np.float32) for k, v in params.items()}


def ttt(*args, **kw):
    """ttt_linear_forward with the module's views, eta and params unless replaced."""
    base = [XQ, XK, XV, ETA, TTT_P]
    base[: len(args)] = args
    return mem.ttt_linear_forward(*base, **kw)


def decode(state=STATE, eta=0.1, **kw):
    return mem.ttt_linear_decode_step(
        XQ[:, 0], XK[:, 0], XV[:, 0], eta, TTT_P, state, **kw
    )


def inplace(x=IX, params=IP, target=None, lengths=None, **kw):
    kw = {"chunk_size": 3, "lr": 0.5, **kw}
    return mem.inplace_ttt_forward(x, params, target, lengths, **kw)


def memnet(story=STORY, question=QUESTION, params=MN_P, mask=None, **kw):
    return mem.memnet_forward(story, question, params, mask, **kw)


BAD_DOUT = "must have the shape of the forward's output"
# (id "function: what is wrong", callable, exception type, regex naming the argument)
CATALOGUE = [
    # --- sum rule, delta rule, chunkwise, UT transform ---------------------------
    (
        "sum_rule_forward: int q",
        lambda: mem.sum_rule_forward(Q.astype(int), K, V),
        TypeError,
        "q must be a float16/float32/float64 array",
    ),
    (
        "sum_rule_forward: k of another width",
        lambda: mem.sum_rule_forward(Q, K[..., :2], V),
        ValueError,
        lit("q(2, 4, 3) and k(2, 4, 2) must have the same shape"),
    ),
    (
        "sum_rule_forward: v of another length",
        lambda: mem.sum_rule_forward(Q, K, V[:, :3]),
        ValueError,
        r"^v\(2, 3, 5\) must be",
    ),
    (
        "sum_rule_forward: v of width 0",
        lambda: mem.sum_rule_forward(Q, K, V[..., :0]),
        ValueError,
        "d_v >= 1",
    ),
    (
        "sum_rule_forward: initial_state transposed",
        lambda: mem.sum_rule_forward(Q, K, V, S0.transpose(0, 2, 1)),
        ValueError,
        lit("initial_state(2, 5, 3) must have shape (2, 3, 5)"),
    ),
    (
        "sum_rule_forward: float32 initial_state",
        lambda: mem.sum_rule_forward(Q, K, V, S0.astype(np.float32)),
        TypeError,
        "initial_state float32",
    ),
    (
        "sum_rule_backward: dout of one width too many",
        lambda: mem.sum_rule_backward(np.ones((2, 4, 6)), SUM_CACHE),
        ValueError,
        lit(f"dout(2, 4, 6) {BAD_DOUT} (2, 4, 5)"),
    ),
    (
        "delta_rule_forward: beta of the wrong length",
        lambda: mem.delta_rule_forward(Q, K, V, BETA[:, :3]),
        ValueError,
        lit("beta(2, 3) must have shape (2, 4) (..., N)"),
    ),
    (
        "delta_rule_forward: beta a list of strings",
        lambda: mem.delta_rule_forward(Q, K, V, ["a", "b"]),
        TypeError,
        "beta",
    ),
    (
        "delta_rule_forward: float32 beta",
        lambda: mem.delta_rule_forward(Q, K, V, BETA.astype(np.float32)),
        TypeError,
        "beta float32",
    ),
    (
        "delta_rule_forward: q of rank 1",
        lambda: mem.delta_rule_forward(Q[0, 0], K, V, BETA),
        ValueError,
        "q must have at least 2 dimensions",
    ),
    (
        "delta_rule_forward: initial_state without batch",
        lambda: mem.delta_rule_forward(Q, K, V, BETA, S0[0]),
        ValueError,
        "initial_state",
    ),
    (
        "delta_rule_backward: dout with a last axis of 1",
        lambda: mem.delta_rule_backward(np.ones((2, 4, 1)), DELTA_CACHE),
        ValueError,
        lit(f"dout(2, 4, 1) {BAD_DOUT} (2, 4, 5)"),
    ),
    (
        "delta_rule_chunkwise_forward: chunk_size 0",
        lambda: mem.delta_rule_chunkwise_forward(Q, K, V, BETA, chunk_size=0),
        ValueError,
        "chunk_size must be >= 1",
    ),
    (
        "delta_rule_chunkwise_forward: chunk_size 2.0",
        lambda: mem.delta_rule_chunkwise_forward(Q, K, V, BETA, chunk_size=2.0),
        TypeError,
        "chunk_size must be an int",
    ),
    (
        "delta_rule_chunkwise_forward: chunk_size True",
        lambda: mem.delta_rule_chunkwise_forward(Q, K, V, BETA, chunk_size=True),
        TypeError,
        "chunk_size must be an int",
    ),
    (
        "delta_rule_chunkwise_forward: initial_state of d_k x d_k",
        lambda: mem.delta_rule_chunkwise_forward(
            Q, K, V, BETA, S0[..., :3], chunk_size=2
        ),
        ValueError,
        "initial_state",
    ),
    (
        "delta_rule_chunkwise_backward: dout of the padded length",
        lambda: mem.delta_rule_chunkwise_backward(np.ones((2, 6, 5)), CHUNK_CACHE),
        ValueError,
        lit(f"dout(2, 6, 5) {BAD_DOUT} (2, 4, 5)"),
    ),
    (
        "ut_transform: beta of another length",
        lambda: mem.ut_transform(K, V, BETA[:, :2]),
        ValueError,
        "beta",
    ),
    (
        "ut_transform: int k",
        lambda: mem.ut_transform(K.astype(int), V, BETA),
        TypeError,
        "k must be a float",
    ),
    # --- fast weights ----------------------------------------------------------------
    (
        "fast_weights_forward: lam 1.5",
        lambda: mem.fast_weights_forward(FW_X, FW_P, lam=1.5),
        ValueError,
        r"lam must be finite and lie in \[0.0, 1.0\]",
    ),
    (
        "fast_weights_forward: eta -0.1",
        lambda: mem.fast_weights_forward(FW_X, FW_P, eta=-0.1),
        ValueError,
        "eta",
    ),
    (
        "fast_weights_forward: eta nan",
        lambda: mem.fast_weights_forward(FW_X, FW_P, eta=np.nan),
        ValueError,
        "eta",
    ),
    (
        "fast_weights_forward: n_inner -1",
        lambda: mem.fast_weights_forward(FW_X, FW_P, n_inner=-1),
        ValueError,
        "n_inner",
    ),
    (
        "fast_weights_forward: form 'dense'",
        lambda: mem.fast_weights_forward(FW_X, FW_P, form="dense"),
        ValueError,
        "form",
    ),
    (
        "fast_weights_forward: activation 'gelu'",
        lambda: mem.fast_weights_forward(FW_X, FW_P, activation="gelu"),
        ValueError,
        "activation",
    ),
    (
        "fast_weights_forward: eps 0",
        lambda: mem.fast_weights_forward(FW_X, FW_P, eps=0.0),
        ValueError,
        "eps",
    ),
    (
        "fast_weights_forward: x of rank 2",
        lambda: mem.fast_weights_forward(FW_X[0], FW_P),
        ValueError,
        "x must have 3 dimensions",
    ),
    (
        "fast_weights_forward: C of the wrong input width",
        lambda: mem.fast_weights_forward(FW_X, with_(FW_P, "C", np.zeros((4, 4)))),
        ValueError,
        r"params\['C'\] must have shape \(3, 4\)",
    ),
    (
        "fast_weights_forward: float32 params",
        lambda: mem.fast_weights_forward(FW_X, f32(FW_P)),
        TypeError,
        r"params\['W'\]",
    ),
    (
        "fast_weights_forward: params without gamma",
        lambda: mem.fast_weights_forward(
            FW_X, {k: FW_P[k] for k in "W C b beta".split()}
        ),
        ValueError,
        r"params: missing keys \['gamma'\]",
    ),
    (
        "fast_weights_backward: dout of one step",
        lambda: mem.fast_weights_backward(np.ones((2, 1, 4)), FW_CACHE),
        ValueError,
        lit(f"dout(2, 1, 4) {BAD_DOUT} (2, 5, 4)"),
    ),
    (
        "init_fast_weights_params: d_hidden 0",
        lambda: mem.init_fast_weights_params(3, 0, rng=R),
        ValueError,
        "d_hidden",
    ),
    (
        "init_fast_weights_params: int dtype",
        lambda: mem.init_fast_weights_params(3, 4, rng=R, dtype=int),
        TypeError,
        "dtype",
    ),
    (
        "init_fast_weights_params: seed instead of rng",
        lambda: mem.init_fast_weights_params(3, 4, rng=0),
        TypeError,
        "rng",
    ),
    (
        "fast_weight_update: h of another width",
        lambda: mem.fast_weight_update(FW_A, FW_H[:, :3], lam=0.9, eta=0.5),
        ValueError,
        lit("h(2, 3) must be (B, D_h) = (2, 4) for A(2, 4, 4)"),
    ),
    (
        "fast_weight_update: A not square",
        lambda: mem.fast_weight_update(FW_A[:, :3], FW_H, lam=0.9, eta=0.5),
        ValueError,
        "A",
    ),
    (
        "fast_weight_update: lam -1",
        lambda: mem.fast_weight_update(FW_A, FW_H, lam=-1, eta=0.5),
        ValueError,
        "lam",
    ),
    (
        "fast_weight_read: h of rank 1",
        lambda: mem.fast_weight_read(FW_H[0], FW_A),
        ValueError,
        "h must have 2 dimensions",
    ),
    (
        "fast_weight_read_attention: past of another batch",
        lambda: mem.fast_weight_read_attention(FW_H, FW_A[:1], lam=0.9, eta=0.5),
        ValueError,
        r"h\(2, 4\) must be \(B, D_h\)",
    ),
    (
        "fast_weight_read_attention: eta 'big'",
        lambda: mem.fast_weight_read_attention(FW_H, FW_A, lam=0.9, eta="big"),
        TypeError,
        "eta must be a number",
    ),
    (
        "fast_weight_attention_matrix: H of rank 2",
        lambda: mem.fast_weight_attention_matrix(FW_H, lam=0.9, eta=0.5),
        ValueError,
        "H must have 3 dimensions",
    ),
    # --- TTT-Linear, its inner loss and decoding -----------------------------------
    (
        "ttt_linear_forward: eta -0.1",
        lambda: ttt(XQ, XK, XV, -0.1),
        ValueError,
        "eta must be finite and lie in",
    ),
    (
        "ttt_linear_forward: eta with an inf",
        lambda: ttt(XQ, XK, XV, ETA * np.inf),
        ValueError,
        "eta must be finite",
    ),
    (
        "ttt_linear_forward: eta of the wrong length",
        lambda: ttt(XQ, XK, XV, ETA[:, :-1]),
        ValueError,
        lit("eta(2, 4) must broadcast to (2, 5)"),
    ),
    (
        "ttt_linear_forward: eta True",
        lambda: ttt(XQ, XK, XV, True),
        TypeError,
        "eta must be a number or a float array",
    ),
    (
        "ttt_linear_forward: float32 eta array",
        lambda: ttt(XQ, XK, XV, ETA.astype(np.float32)),
        TypeError,
        "eta float32",
    ),
    (
        "ttt_linear_forward: x_v shorter",
        lambda: ttt(XQ, XK, XV[:, :-1]),
        ValueError,
        lit("x_v(2, 4, 3)"),
    ),
    (
        "ttt_linear_forward: x_k of rank 2",
        lambda: ttt(XQ, XK[0]),
        ValueError,
        "x_k must have 3 dimensions",
    ),
    (
        "ttt_linear_forward: no positions",
        lambda: ttt(XQ[:, :0], XK[:, :0], XV[:, :0]),
        ValueError,
        "x_q",
    ),
    (
        "ttt_linear_forward: mini_batch 0",
        lambda: ttt(mini_batch=0),
        ValueError,
        "mini_batch must be >= 1",
    ),
    (
        "ttt_linear_forward: mini_batch 2.5",
        lambda: ttt(mini_batch=2.5),
        TypeError,
        "mini_batch must be an int",
    ),
    ("ttt_linear_forward: form 'both'", lambda: ttt(form="both"), ValueError, "form"),
    (
        "ttt_linear_forward: position_scale=1",
        lambda: ttt(position_scale=1),
        TypeError,
        lit("position_scale must be True or False, got 1"),
    ),
    ("ttt_linear_forward: eps -1", lambda: ttt(eps=-1.0), ValueError, "eps"),
    (
        "ttt_linear_forward: float32 params",
        lambda: ttt(XQ, XK, XV, ETA, f32(TTT_P)),
        TypeError,
        r"params\['W'\] has dtype float32",
    ),
    (
        "ttt_linear_forward: W of another width",
        lambda: ttt(XQ, XK, XV, ETA, with_(TTT_P, "W", np.eye(4))),
        ValueError,
        r"params\['W'\] must have shape \(3, 3\)",
    ),
    (
        "ttt_linear_backward: dout of another width",
        lambda: mem.ttt_linear_backward(np.ones((2, 5, 4)), TTT_CACHE),
        ValueError,
        lit(f"dout(2, 5, 4) {BAD_DOUT} (2, 5, 3)"),
    ),
    (
        "init_ttt_linear_params: width 0",
        lambda: mem.init_ttt_linear_params(0, rng=R),
        ValueError,
        "width",
    ),
    (
        "init_ttt_linear_params: std -1",
        lambda: mem.init_ttt_linear_params(3, rng=R, std=-1),
        ValueError,
        "std",
    ),
    (
        "init_ttt_linear_params: dtype 'int8'",
        lambda: mem.init_ttt_linear_params(3, rng=R, dtype="int8"),
        TypeError,
        "dtype",
    ),
    (
        "ttt_linear_decode_init: batch 0",
        lambda: mem.ttt_linear_decode_init(TTT_P, batch=0),
        ValueError,
        "batch",
    ),
    (
        "ttt_linear_decode_init: params without b",
        lambda: mem.ttt_linear_decode_init({"W": np.eye(3)}, batch=2),
        ValueError,
        "missing keys",
    ),
    (
        "ttt_linear_decode_step: position_scale='yes'",
        lambda: decode(position_scale="yes"),
        TypeError,
        lit("position_scale must be True or False, got 'yes'"),
    ),
    ("ttt_linear_decode_step: eta -1", lambda: decode(eta=-1.0), ValueError, "eta"),
    (
        "ttt_linear_decode_step: state pos past the mini-batch",
        lambda: decode(state=with_(STATE, "pos", 5), mini_batch=4),
        ValueError,
        lit("state['pos'] = 5 must be < mini_batch = 4"),
    ),
    (
        "ttt_linear_decode_step: state without acc_b",
        lambda: decode(state={k: v for k, v in STATE.items() if k != "acc_b"}),
        ValueError,
        "state: missing keys",
    ),
    (
        "ttt_linear_decode_step: views of a sequence, not a token",
        lambda: mem.ttt_linear_decode_step(XQ, XK, XV, 0.1, TTT_P, STATE),
        ValueError,
        "x_q must have 2 dimensions",
    ),
    (
        "ttt_linear_decode_step: mini_batch 0",
        lambda: decode(mini_batch=0),
        ValueError,
        "mini_batch",
    ),
    (
        "ln_l2_grad_forward: target of another shape",
        lambda: mem.ln_l2_grad_forward(Z, TGT[:, :1], GAMMA, SHIFT),
        ValueError,
        lit("target(2, 1, 3) must have the shape of Z(2, 5, 3)"),
    ),
    (
        "ln_l2_grad_forward: gamma of another width",
        lambda: mem.ln_l2_grad_forward(Z, TGT, np.ones(4), SHIFT),
        ValueError,
        lit("gamma(4,) must have shape (3,)"),
    ),
    (
        "ln_l2_grad_forward: eps 0",
        lambda: mem.ln_l2_grad_forward(Z, TGT, GAMMA, SHIFT, eps=0),
        ValueError,
        "eps",
    ),
    (
        "ln_l2_grad_forward: float32 beta",
        lambda: mem.ln_l2_grad_forward(Z, TGT, GAMMA, SHIFT.astype(np.float32)),
        TypeError,
        "beta float32",
    ),
    (
        "ln_l2_grad_backward: dout of one row",
        lambda: mem.ln_l2_grad_backward(np.ones(3), LN_CACHE),
        ValueError,
        lit(f"dout(3,) {BAD_DOUT} (2, 5, 3)"),
    ),
    (
        "ln_l2_loss: int Z",
        lambda: mem.ln_l2_loss(Z.astype(int), TGT, GAMMA, SHIFT),
        TypeError,
        "Z must be a float",
    ),
    # --- In-Place TTT ---------------------------------------------------------------
    (
        "inplace_ttt_forward: lengths past T",
        lambda: inplace(lengths=np.array([8, 1])),
        ValueError,
        lit("lengths must lie in [0, 8), got 8"),
    ),
    (
        "inplace_ttt_forward: negative lengths",
        lambda: inplace(lengths=np.array([7, -1])),
        ValueError,
        "lengths must lie in",
    ),
    (
        "inplace_ttt_forward: float lengths",
        lambda: inplace(lengths=np.array([7.0, 5.0])),
        TypeError,
        "lengths must be an integer array",
    ),
    (
        "inplace_ttt_forward: one length for two sequences",
        lambda: inplace(lengths=np.array([7])),
        ValueError,
        lit("lengths(1,) must have shape (B,)"),
    ),
    (
        "inplace_ttt_forward: target of another length",
        lambda: inplace(target=IX[:, :5]),
        ValueError,
        r"target\(2, 5, 3\)",
    ),
    (
        "inplace_ttt_forward: float32 target",
        lambda: inplace(target=IX.astype(np.float32)),
        TypeError,
        "target float32",
    ),
    (
        "inplace_ttt_forward: chunk_size 0",
        lambda: inplace(chunk_size=0),
        ValueError,
        "chunk_size must be >= 1",
    ),
    ("inplace_ttt_forward: lr nan", lambda: inplace(lr=np.nan), ValueError, "lr"),
    ("inplace_ttt_forward: lr -0.5", lambda: inplace(lr=-0.5), ValueError, "lr"),
    (
        "inplace_ttt_forward: form 'ring'",
        lambda: inplace(form="ring"),
        ValueError,
        "form",
    ),
    (
        "inplace_ttt_forward: even conv kernel",
        lambda: inplace(params=with_(IP, "conv", np.zeros((4, 3)))),
        ValueError,
        r"odd kernel size \(conv\(4, 3\)\)",
    ),
    (
        "inplace_ttt_forward: float32 params",
        lambda: inplace(params=f32(IP)),
        TypeError,
        r"params\['W_gate'\] has dtype float32",
    ),
    (
        "inplace_ttt_forward: x without positions",
        lambda: inplace(x=IX[:, :0]),
        ValueError,
        "x",
    ),
    (
        "inplace_ttt_backward: dout of the chunk-padded length",
        lambda: mem.inplace_ttt_backward(np.ones((2, 9, 3)), IP_CACHE),
        ValueError,
        lit(f"dout(2, 9, 3) {BAD_DOUT} (2, 7, 3)"),
    ),
    (
        "init_inplace_ttt_params: even kernel_size",
        lambda: mem.init_inplace_ttt_params(3, 4, rng=R, kernel_size=4),
        ValueError,
        "kernel_size must be odd",
    ),
    (
        "init_inplace_ttt_params: kernel_size 0",
        lambda: mem.init_inplace_ttt_params(3, 4, rng=R, kernel_size=0),
        ValueError,
        "kernel_size",
    ),
    (
        "inplace_ttt_context_parallel: n_ranks 0",
        lambda: mem.inplace_ttt_context_parallel(
            IX, IP, chunk_size=3, lr=0.5, n_ranks=0
        ),
        ValueError,
        "n_ranks",
    ),
    (
        "inplace_ttt_context_parallel: more ranks than chunks",
        lambda: mem.inplace_ttt_context_parallel(
            IX, IP, chunk_size=3, lr=0.5, n_ranks=4
        ),
        ValueError,
        lit("n_ranks=4 must lie in [1, 3 chunks]"),
    ),
    (
        "inplace_ttt_context_parallel: n_ranks '2'",
        lambda: mem.inplace_ttt_context_parallel(
            IX, IP, chunk_size=3, lr=0.5, n_ranks="2"
        ),
        TypeError,
        "n_ranks must be an int",
    ),
    (
        "inplace_ttt_mpi_forward: comm that is not a communicator",
        lambda: mem.inplace_ttt_mpi_forward(IX, IP, comm=None, chunk_size=3, lr=0.5),
        TypeError,
        "comm must be an mpi4py communicator",
    ),
    (
        "inplace_ttt_mpi_forward: lr inf",
        lambda: mem.inplace_ttt_mpi_forward(IX, IP, comm=None, chunk_size=3, lr=np.inf),
        ValueError,
        "lr",
    ),
    (
        "shard_positions: chunk_size 0",
        lambda: mem.shard_positions(8, chunk_size=0, n_ranks=2),
        ValueError,
        "chunk_size",
    ),
    (
        "shard_positions: T 0",
        lambda: mem.shard_positions(0, chunk_size=2, n_ranks=1),
        ValueError,
        "T must be >= 1",
    ),
    # --- memory network ---------------------------------------------------------------
    (
        "memnet_forward: a negative word id",
        lambda: memnet(story=np.where(STORY == STORY[0, 0, 0], -1, STORY)),
        ValueError,
        lit("story must lie in [0, 6), got -1"),
    ),
    (
        "memnet_forward: a question id past the vocabulary",
        lambda: memnet(question=QUESTION + 6),
        ValueError,
        "question must lie in",
    ),
    (
        "memnet_forward: float story",
        lambda: memnet(story=STORY.astype(float)),
        TypeError,
        "story must be an integer array",
    ),
    (
        "memnet_forward: bool question",
        lambda: memnet(question=QUESTION > 2),
        TypeError,
        "question must be an integer array",
    ),
    (
        "memnet_forward: story of rank 2",
        lambda: memnet(story=STORY[0]),
        ValueError,
        "story must have 3 dimensions",
    ),
    (
        "memnet_forward: question of another batch",
        lambda: memnet(question=QUESTION[:1]),
        ValueError,
        r"story\(2, 4, 3\) and question\(1, 2\)",
    ),
    (
        "memnet_forward: more sentences than temporal rows",
        lambda: memnet(story=np.ones((2, 9, 3), dtype=int)),
        ValueError,
        "T_k",
    ),
    (
        "memnet_forward: empty sentences",
        lambda: memnet(story=STORY[:, :, :0]),
        ValueError,
        "story",
    ),
    (
        "memnet_forward: float mask",
        lambda: memnet(mask=np.ones((2, 4))),
        TypeError,
        "mask must be a boolean array",
    ),
    (
        "memnet_forward: mask of another length",
        lambda: memnet(mask=np.ones((2, 3), bool)),
        ValueError,
        r"mask\(2, 3\)",
    ),
    (
        "memnet_forward: position_enc='no'",
        lambda: memnet(position_enc="no"),
        TypeError,
        lit("position_enc must be True or False, got 'no'"),
    ),
    (
        "memnet_forward: params without T_2",
        lambda: memnet(params={k: v for k, v in MN_P.items() if k != "T_2"}),
        ValueError,
        r"missing keys \['T_2'\]",
    ),
    (
        "memnet_forward: mixed-dtype params",
        lambda: memnet(params=with_(MN_P, "E_1", MN_P["E_1"].astype(np.float32))),
        TypeError,
        r"params\['E_1'\] has dtype float32",
    ),
    (
        "memnet_backward: dout of the story's shape",
        lambda: mem.memnet_backward(np.ones((2, 4)), MN_CACHE),
        ValueError,
        lit(f"dout(2, 4) {BAD_DOUT} (2, 6)"),
    ),
    (
        "init_memnet_params: n_hops 0",
        lambda: mem.init_memnet_params(6, 4, n_hops=0, n_memories=4, rng=R),
        ValueError,
        "n_hops",
    ),
    (
        "init_memnet_params: int dtype",
        lambda: mem.init_memnet_params(6, 4, n_hops=1, n_memories=4, rng=R, dtype=int),
        TypeError,
        "dtype",
    ),
    ("position_encoding: J 0", lambda: mem.position_encoding(0, 4), ValueError, "J"),
    ("position_encoding: d '4'", lambda: mem.position_encoding(3, "4"), TypeError, "d"),
    # --- NTM -----------------------------------------------------------------------
    (
        "ntm_address_forward: even shift",
        lambda: mem.ntm_address_forward(**head(s=np.full((2, 2), 0.5))),
        ValueError,
        r"s\(2, 2\) must be \(B, S\)",
    ),
    (
        "ntm_address_forward: shift wider than the memory",
        lambda: mem.ntm_address_forward(**head(s=np.full((2, 7), 1 / 7))),
        ValueError,
        r"s\(2, 7\)",
    ),
    (
        "ntm_address_forward: shift rows that do not sum to 1",
        lambda: mem.ntm_address_forward(**head(s=np.full((2, 3), 0.5))),
        ValueError,
        r"the rows of s\(2, 3\) must sum to 1",
    ),
    (
        "ntm_address_forward: a negative shift weight",
        lambda: mem.ntm_address_forward(**head(s=np.array([[-0.2, 1.0, 0.2]] * 2))),
        ValueError,
        "s must be finite",
    ),
    (
        "ntm_address_forward: gamma 0.5",
        lambda: mem.ntm_address_forward(**head(gamma=np.full(2, 0.5))),
        ValueError,
        r"gamma must be finite and lie in \[1.0, inf\]",
    ),
    (
        "ntm_address_forward: gamma inf",
        lambda: mem.ntm_address_forward(**head(gamma=np.full(2, np.inf))),
        ValueError,
        "gamma",
    ),
    (
        "ntm_address_forward: negative beta",
        lambda: mem.ntm_address_forward(**head(beta=np.array([1.0, -1.0]))),
        ValueError,
        "beta must be finite",
    ),
    (
        "ntm_address_forward: gate above 1",
        lambda: mem.ntm_address_forward(**head(g=np.array([0.5, 1.5]))),
        ValueError,
        r"g must be finite and lie in \[0.0, 1.0\]",
    ),
    (
        "ntm_address_forward: w_prev of all zeros",
        lambda: mem.ntm_address_forward(**head(w_prev=np.zeros((2, 5)))),
        ValueError,
        "w_prev",
    ),
    (
        "ntm_address_forward: w_prev of another length",
        lambda: mem.ntm_address_forward(**head(w_prev=np.full((2, 6), 1 / 6))),
        ValueError,
        lit("w_prev(2, 6) must have shape (2, 5)"),
    ),
    (
        "ntm_address_forward: beta per row instead of per head",
        lambda: mem.ntm_address_forward(**head(beta=np.ones((2, 5)))),
        ValueError,
        lit("beta(2, 5) must have shape (2,)"),
    ),
    (
        "ntm_address_forward: float32 key",
        lambda: mem.ntm_address_forward(**head(k=HEAD["k"].astype(np.float32))),
        TypeError,
        "k float32",
    ),
    (
        "ntm_address_backward: dout of the memory's shape",
        lambda: mem.ntm_address_backward(np.ones((2, 5, 3)), ADDR_CACHE),
        ValueError,
        lit(f"dout(2, 5, 3) {BAD_DOUT} (2, 5)"),
    ),
    (
        "ntm_read_forward: w of another length",
        lambda: mem.ntm_read_forward(NTM_W[:, :4], HEAD["M"]),
        ValueError,
        lit("w(2, 4) must be (B, n) = (2, 5) for M(2, 5, 3)"),
    ),
    (
        "ntm_read_forward: int memory",
        lambda: mem.ntm_read_forward(NTM_W, np.ones((2, 5, 3), int)),
        TypeError,
        "M must be a float",
    ),
    (
        "ntm_read_backward: dout with an extra axis",
        lambda: mem.ntm_read_backward(np.ones((1, 2, 3)), READ_CACHE),
        ValueError,
        lit(f"dout(1, 2, 3) {BAD_DOUT} (2, 3)"),
    ),
    (
        "ntm_write_forward: erase above 1",
        lambda: mem.ntm_write_forward(NTM_W, NTM_E + 1, NTM_A, HEAD["M"]),
        ValueError,
        r"e must be finite and lie in \[0.0, 1.0\]",
    ),
    (
        "ntm_write_forward: e without batch",
        lambda: mem.ntm_write_forward(NTM_W, NTM_E[0], NTM_A, HEAD["M"]),
        ValueError,
        lit("e(3,) must be (B, W) for M(2, 5, 3)"),
    ),
    (
        "ntm_write_forward: a of another width",
        lambda: mem.ntm_write_forward(NTM_W, NTM_E, NTM_A[:, :2], HEAD["M"]),
        ValueError,
        lit("a(2, 2) must be (B, W)"),
    ),
    (
        "ntm_write_backward: dout of the read's shape",
        lambda: mem.ntm_write_backward(np.ones((2, 3)), WRITE_CACHE),
        ValueError,
        lit(f"dout(2, 3) {BAD_DOUT} (2, 5, 3)"),
    ),
]
# the notebooks' synthetic tasks (memory.tasks, not re-exported)
CATALOGUE += [
    (
        "tasks.associative_recall: batch 0",
        lambda: tasks.associative_recall(3, n_keys=5, n_values=4, batch=0, rng=R),
        ValueError,
        "batch must be >= 1",
    ),
    (
        "tasks.associative_recall: more pairs than keys",
        lambda: tasks.associative_recall(6, n_keys=5, n_values=4, batch=2, rng=R),
        ValueError,
        "n_keys >= n_pairs",
    ),
    (
        "tasks.shifting_regression: shift_at past the end",
        lambda: tasks.shifting_regression(8, 3, rng=R, shift_at=9),
        ValueError,
        "shift_at must lie in",
    ),
    (
        "tasks.permutation_tokens: p_jump 2",
        lambda: tasks.permutation_tokens(8, 5, batch=2, rng=R, p_jump=2.0),
        ValueError,
        "p_jump",
    ),
    (
        "tasks.toy_stories: min_sentences above max_sentences",
        lambda: tasks.toy_stories(3, rng=R, min_sentences=5, max_sentences=4),
        ValueError,
        "min_sentences=5 must be <= max_sentences=4",
    ),
    (
        "tasks.toy_stories: global seed instead of a Generator",
        lambda: tasks.toy_stories(3, rng=None),
        TypeError,
        "rng",
    ),
]


@pytest.mark.parametrize(
    "fn, exc, pattern", [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE]
)
def test_bad_input_is_named_and_changes_nothing(fn, exc, pattern):
    before = [a.copy() for a in ARRAYS]
    state = np.random.get_state()[1].copy()
    with pytest.raises(exc, match=pattern):
        fn()
    for a, b in zip(ARRAYS, before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_the_catalogue_covers_every_public_function_of_memory():
    tested = {c[0].split(":")[0] for c in CATALOGUE}
    public = {n for n in mem.__all__ if callable(getattr(mem, n))}
    assert public - tested == set()
    assert len(CATALOGUE) >= 40
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


# --- the MPI check's command line --------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [["--nope"], ["--chunk-size", "0"], ["--lr", "inf"], ["--seed", "x"], ["extra"]],
)
def test_the_inplace_ttt_cp_command_line_rejects_garbage(flags):
    result = subprocess.run(
        [sys.executable, "-m", "attention_np.memory.inplace_ttt_cp", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr


# --- every layer: inputs and the global RNG untouched, no NaN from finite inputs ---

# arrays that are probabilities, gates or rates keep their range when scaled up
BOUNDED = {"g", "s", "w_prev", "e", "w", "eta"}


def _layer(name):
    return CASES[name](np.random.default_rng(5))


def _run(case):
    forward, backward, inputs = case_functions(case)
    out, cache = forward(inputs)
    grads = backward(np.random.default_rng(6).standard_normal(np.shape(out)), cache)
    return out, grads


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_leave_inputs_params_and_the_global_rng_alone(name):
    case = _layer(name)
    arrays = {n: None if a is None else a.copy() for n, a in case.arrays.items()}
    params = {k: v.copy() for k, v in (case.params or {}).items()}
    state = np.random.get_state()[1].copy()
    _run(case)
    for n, a in case.arrays.items():
        if a is not None:
            np.testing.assert_array_equal(a, arrays[n], err_msg=n)
    for k, v in (case.params or {}).items():
        np.testing.assert_array_equal(v, params[k], err_msg=k)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def _scaled(case, scale):
    def up(n, a):
        bounded = n in BOUNDED or (n == "beta" and "delta" in case.forward.__name__)
        if a is None or a.dtype.kind != "f" or bounded:
            return a
        return a * scale

    arrays = {n: up(n, a) for n, a in case.arrays.items()}
    params = (
        None if case.params is None else {k: up(k, v) for k, v in case.params.items()}
    )
    return case._replace(arrays=arrays, params=params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_inputs_and_params_of_magnitude_1e4_give_no_nan(name):
    out, grads = _run(_scaled(_layer(name), 1e4))
    assert np.all(np.isfinite(out))
    for key, g in grads.items():
        assert np.all(np.isfinite(g)), key


def test_ntm_sharpening_with_a_huge_gamma_is_one_hot_not_nan():
    gamma = np.full(2, 1e4)  # w^gamma underflows to 0 for every w < 1
    w, cache = mem.ntm_address_forward(**head(gamma=gamma))
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w.sum(axis=-1), 1.0)
    grads = mem.ntm_address_backward(np.ones_like(w), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_ntm_content_read_with_scores_of_1e4_is_finite():
    w, cache = mem.ntm_address_forward(**head(beta=np.full(2, 1e4), k=HEAD["k"] * 1e4))
    assert np.all(np.isfinite(w))
    assert all(np.all(np.isfinite(g)) for g in mem.ntm_address_backward(w, cache))


def test_memnet_with_every_slot_masked_reads_nothing_and_gives_no_nan():
    mask = np.zeros((2, 4), dtype=bool)
    logits, cache = memnet(mask=mask)
    assert np.all(np.isfinite(logits))
    grads = mem.memnet_backward(np.ones_like(logits), cache)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_decode_step_leaves_its_state_alone():
    before = {k: np.copy(v) for k, v in STATE.items()}
    for _ in range(3):
        decode(mini_batch=2)
    for key, value in STATE.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_a_layer_case_is_used_for_every_memory_layer():
    assert all(isinstance(_layer(name), LayerCase) for name in CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_inputs_and_params_give_float32_outputs_and_gradients(name):
    case = _layer(name)
    down = lambda a: a if a is None or a.dtype.kind != "f" else a.astype(np.float32)
    params = (
        None if case.params is None else {k: down(v) for k, v in case.params.items()}
    )
    case = case._replace(
        arrays={n: down(a) for n, a in case.arrays.items()}, params=params
    )
    extra = [] if params is None else [params]
    out, cache = case.forward(*case.arrays.values(), *extra, **case.options)
    grads = case.backward(np.ones_like(out), cache)
    parts = list(grads) if isinstance(grads, tuple) else [grads]
    if isinstance(parts[-1], dict):
        parts += list(parts.pop().values())
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in parts if g is not None)

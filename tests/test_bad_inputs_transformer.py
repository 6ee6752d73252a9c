"""Bad inputs to transformer/ and train/: a clear TypeError/ValueError naming the
argument, and nothing the call was given changes (arrays, params, KV caches, the Adam
state) nor the global NumPy random state. Then crafted checkpoint files (never
unpickled) and the command line (``error: ...``, exit status 2, no traceback)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attention_np import init_mha_params
from attention_np import train as tr
from attention_np import transformer as tf
from attention_np.train.__main__ import main as train_main

HERE = Path(__file__).resolve().parent
R = np.random.default_rng(0)
CFG = tf.TransformerConfig(
    vocab_size=7, max_len=8, d_model=12, n_heads=3, n_layers=2, d_mlp=7
)
P = tf.init_params(CFG, rng=np.random.default_rng(1))
IDS = R.integers(0, 7, (2, 5))
X = R.standard_normal((2, 5, 12))
BLOCK_P = tf.init_block_params(12, 3, 7, rng=np.random.default_rng(2))
ATTN_P = init_mha_params(12, 3, rng=np.random.default_rng(3))
MLP_P = tf.init_mlp_params(12, 7, rng=np.random.default_rng(4))
LOGITS, TARGETS = R.standard_normal((2, 5, 7)), R.integers(0, 7, (2, 5))
_, MODEL_CACHE = tf.model_forward(IDS, P, CFG)
_, BLOCK_CACHE = tf.block_forward(X, BLOCK_P, n_heads=3, causal=True)
_, ATTN_CACHE = tf.self_attention_forward(X, ATTN_P, n_heads=3, causal=True)
_, MLP_CACHE = tf.mlp_forward(X, MLP_P)
_, CE_CACHE = tf.cross_entropy_forward(LOGITS, TARGETS)
_, EMB_CACHE = tf.embedding_forward(IDS, P["embed.W"])
_, GELU_CACHE = tf.gelu_forward(X)
_, LN_CACHE = tf.layernorm_forward(X, np.ones(12), np.zeros(12))
CACHES = tf.new_kv_caches(CFG, batch=2)  # holding 3 tokens
tf.model_forward(IDS[:, :3], P, CFG, kv_caches=CACHES)
SMALL = tf.new_kv_caches(CFG, batch=2, capacity=4)  # holding 3 of 4 tokens
tf.model_forward(IDS[:, :3], P, CFG, kv_caches=SMALL)
F32 = tf.new_kv_caches(CFG, batch=2, dtype=np.float32)

OPT_P = {"w": R.standard_normal(3), "b": R.standard_normal(2)}
OPT_G = {"w": R.standard_normal(3), "b": R.standard_normal(2)}
STATE = tf.adam_init(OPT_P)
tf.adam_step(OPT_P, OPT_G, STATE, lr=0.1)  # non-zero moments, t = 1
FROZEN = {"w": np.ones(3)}
FROZEN["w"].flags.writeable = False

TRAIN_CFG = tr.TrainConfig(length=3, n_symbols=4, steps=1, batch_size=2)
MODEL_CFG = tr.default_model_config(TRAIN_CFG, d_model=4, n_heads=2, n_layers=1)
MODEL_P = tf.init_params(MODEL_CFG, rng=np.random.default_rng(5), dtype=np.float32)
BATCH = TRAIN_CFG.batch(np.random.default_rng(6))

PARAMS = [P, BLOCK_P, ATTN_P, MLP_P, OPT_P, OPT_G, MODEL_P, STATE["m"], STATE["v"]]
ARRAYS = [IDS, X, LOGITS, TARGETS, *BATCH]


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def with_(d, key, value):
    return {**d, key: value}


def lit(text):
    """Regex matching ``text`` literally (messages are full of brackets)."""
    return re.escape(text)


def config(**kw):
    sizes = dict(vocab_size=7, max_len=8, d_model=12, n_heads=3)
    return tf.TransformerConfig(**{**sizes, **kw})


def train_config(**kw):
    return tr.TrainConfig(**kw)


def model(ids=IDS, params=P, **kw):
    return tf.model_forward(ids, params, CFG, **kw)


def attn(x=X, params=ATTN_P, mask=None, **kw):
    return tf.self_attention_forward(x, params, mask, **{"n_heads": 3, **kw})


def block(x=X, params=BLOCK_P, **kw):
    return tf.block_forward(x, params, **{"n_heads": 3, "causal": True, **kw})


def adam(grads=OPT_G, state=STATE, **kw):
    return tf.adam_step(OPT_P, grads, state, **{"lr": 0.1, **kw})


def train(**kw):
    args = {"rng": np.random.default_rng(0), "progress": False, **kw}
    return tr.train(args.pop("model_config", MODEL_CFG), TRAIN_CFG, **args)


P32 = with_(P, "block0.ln1.gamma", P["block0.ln1.gamma"].astype(np.float32))
HALF_BIAS = without(without(BLOCK_P, "attn.b_q"), "attn.b_k")
RNG = np.random.default_rng(7)

# (id, callable, exception type, regex the message must match)
CATALOGUE = [
    # TransformerConfig, init functions, param_shapes
    (
        "TransformerConfig vocab_size=0",
        lambda: config(vocab_size=0),
        ValueError,
        "vocab_size",
    ),
    (
        "TransformerConfig d_model=12.0",
        lambda: config(d_model=12.0),
        TypeError,
        "d_model",
    ),
    (
        "TransformerConfig n_layers=True",
        lambda: config(n_layers=True),
        TypeError,
        "n_layers",
    ),
    ("TransformerConfig d_mlp=-4", lambda: config(d_mlp=-4), ValueError, "d_mlp"),
    (
        "TransformerConfig n_kv_heads=2 of 3",
        lambda: config(n_kv_heads=2),
        ValueError,
        "n_kv",
    ),
    ("TransformerConfig n_heads=5", lambda: config(n_heads=5), ValueError, "n_heads=5"),
    ("TransformerConfig pos='alibi'", lambda: config(pos="alibi"), ValueError, "pos"),
    ("TransformerConfig bias='no'", lambda: config(bias="no"), TypeError, "bias"),
    (
        "TransformerConfig rope with odd head width",
        lambda: config(d_model=9, pos="rope"),
        ValueError,
        "rope",
    ),
    (
        "TransformerConfig JSON that is a list",
        lambda: tf.TransformerConfig.from_json("[7, 8]"),
        TypeError,
        "JSON must be an object",
    ),
    (
        "TransformerConfig JSON with an unknown field",
        lambda: tf.TransformerConfig.from_json(
            '{"vocab_size": 7, "max_len": 8, "x": 1}'
        ),
        TypeError,
        "'x'",
    ),
    (
        "init_params rng=0",
        lambda: tf.init_params(CFG, rng=0),
        TypeError,
        "rng must be a np.random.Generator",
    ),
    (
        "init_params dtype=int32",
        lambda: tf.init_params(CFG, rng=RNG, dtype=np.int32),
        TypeError,
        "dtype",
    ),
    (
        "init_params of a dict",
        lambda: tf.init_params({"vocab_size": 7}, rng=RNG),
        TypeError,
        "config must be a TransformerConfig",
    ),
    ("param_shapes of a str", lambda: tf.param_shapes("c"), TypeError, "config"),
    (
        "init_block_params dtype='int64'",
        lambda: tf.init_block_params(12, 3, 7, rng=RNG, dtype="int64"),
        TypeError,
        "dtype",
    ),
    (
        "init_block_params n_heads=5",
        lambda: tf.init_block_params(12, 5, 7, rng=RNG),
        ValueError,
        "n_heads=5",
    ),
    (
        "init_block_params bias=1",
        lambda: tf.init_block_params(12, 3, 7, rng=RNG, bias=1),
        TypeError,
        "bias",
    ),
    (
        "init_block_params d_mlp=0",
        lambda: tf.init_block_params(12, 3, 0, rng=RNG),
        ValueError,
        "d_mlp",
    ),
    (
        "init_mlp_params d_hidden=0",
        lambda: tf.init_mlp_params(12, 0, rng=RNG),
        ValueError,
        "d_hidden",
    ),
    (
        "init_mlp_params dtype=object",
        lambda: tf.init_mlp_params(12, 7, rng=RNG, dtype=object),
        TypeError,
        "dtype",
    ),
    # MLP
    ("mlp_forward int x", lambda: tf.mlp_forward(IDS, MLP_P), TypeError, "x must"),
    (
        "mlp_forward with one bias",
        lambda: tf.mlp_forward(X, without(MLP_P, "b_2")),
        ValueError,
        lit("missing keys ['b_2']"),
    ),
    (
        "mlp_forward float32 W_1",
        lambda: tf.mlp_forward(X, with_(MLP_P, "W_1", MLP_P["W_1"].astype("f4"))),
        TypeError,
        lit("params['W_1'] has dtype float32"),
    ),
    (
        "mlp_forward narrower x",
        lambda: tf.mlp_forward(X[..., :5], MLP_P),
        ValueError,
        lit("params['W_1'] must have shape (5, 7)"),
    ),
    (
        "mlp_forward params a list",
        lambda: tf.mlp_forward(X, list(MLP_P.values())),
        TypeError,
        "params must be a dict",
    ),
    (
        "mlp_backward dout with an extra axis",
        lambda: tf.mlp_backward(np.ones((1, 2, 5, 12)), MLP_CACHE),
        ValueError,
        "dout",
    ),
    # self-attention
    (
        "self_attention_forward 2-D x",
        lambda: attn(X[0], causal=True),
        ValueError,
        "x must have 3",
    ),
    ("self_attention causal='yes'", lambda: attn(causal="yes"), TypeError, "causal"),
    (
        "self_attention n_heads=5",
        lambda: attn(n_heads=5, causal=True),
        ValueError,
        lit("n_heads=5 must divide the width of x(2, 5, 12)"),
    ),
    (
        "self_attention x narrower than the params",
        lambda: attn(X[..., :6], causal=True),
        ValueError,
        lit("x(2, 5, 6) has width 6 but params['W_q'](12, 12)"),
    ),
    (
        "cross_attention_forward x_q narrower than the params",
        lambda: tf.cross_attention_forward(X[..., :6], X, ATTN_P, n_heads=3),
        ValueError,
        lit("x_q(2, 5, 6) has width 6 but params['W_q'](12, 12)"),
    ),
    (
        "cross_attention_forward x_kv narrower than the params",
        lambda: tf.cross_attention_forward(X, X[..., :6], ATTN_P, n_heads=3),
        ValueError,
        lit("x_kv(2, 5, 6) has width 6 but params['W_k'](12, 12)"),
    ),
    (
        "self_attention float mask",
        lambda: attn(mask=np.ones((5, 5)), causal=True),
        TypeError,
        "mask",
    ),
    (
        "self_attention align='center'",
        lambda: attn(causal=True, align="center"),
        ValueError,
        "align",
    ),
    (
        "self_attention params without W_o",
        lambda: attn(params=without(ATTN_P, "W_o"), causal=True),
        ValueError,
        lit("missing keys ['W_o']"),
    ),
    (
        "self_attention_backward dout with a last axis of 1",
        lambda: tf.self_attention_backward(np.ones((2, 5, 1)), ATTN_CACHE),
        ValueError,
        "dout",
    ),
    # block
    (
        "block_forward unexpected key",
        lambda: block(params=with_(BLOCK_P, "attn.extra", np.ones(3))),
        ValueError,
        lit("unexpected keys ['attn.extra']"),
    ),
    (
        "block_forward ln1.gamma of the wrong width",
        lambda: block(params=with_(BLOCK_P, "ln1.gamma", np.ones(5))),
        ValueError,
        lit("params['ln1.gamma'] must have shape (12,)"),
    ),
    (
        "block_forward with half of the biases",
        lambda: block(params=HALF_BIAS),
        ValueError,
        lit("missing keys ['attn.b_k', 'attn.b_q']"),
    ),
    (
        "block_forward n_kv_heads=2 of 3",
        lambda: block(n_kv_heads=2),
        ValueError,
        "n_kv_heads=2",
    ),
    ("block_forward causal=None", lambda: block(causal=None), TypeError, "causal"),
    (
        "block_backward dout of one position",
        lambda: tf.block_backward(np.ones(12), BLOCK_CACHE),
        ValueError,
        "dout",
    ),
    # model_forward: ids, start, params, config, KV caches
    (
        "model_forward ids negative",
        lambda: model(IDS - 1),
        ValueError,
        lit("ids must lie"),
    ),
    ("model_forward ids >= vocab", lambda: model(IDS + 3), ValueError, lit("[0, 7)")),
    (
        "model_forward float ids",
        lambda: model(IDS * 1.0),
        TypeError,
        "ids must be an integer",
    ),
    ("model_forward bool ids", lambda: model(IDS > 2), TypeError, "ids"),
    ("model_forward 1-D ids", lambda: model(IDS[0]), ValueError, "ids must have 2"),
    ("model_forward no tokens", lambda: model(IDS[:, :0]), ValueError, "ids"),
    (
        "model_forward start=-2",
        lambda: model(start=-2),
        ValueError,
        "start must be >= 0",
    ),
    (
        "model_forward start=1.5",
        lambda: model(start=1.5),
        TypeError,
        "start must be an int",
    ),
    ("model_forward start=True", lambda: model(start=True), TypeError, "start"),
    ("model_forward past max_len", lambda: model(start=4), ValueError, "max_len=8"),
    (
        "model_forward int embed.W",
        lambda: model(params=with_(P, "embed.W", IDS)),
        TypeError,
        lit("params['embed.W']"),
    ),
    (
        "model_forward params of two dtypes",
        lambda: model(params=P32),
        TypeError,
        lit("params['block0.ln1.gamma'] has dtype float32"),
    ),
    (
        "model_forward params without head.b",
        lambda: model(params=without(P, "head.b")),
        ValueError,
        lit("missing keys ['head.b']"),
    ),
    (
        "model_forward config a dict",
        lambda: tf.model_forward(IDS, P, {"vocab_size": 7}),
        TypeError,
        "config must be a TransformerConfig",
    ),
    (
        "model_forward caches holding 3 tokens, start=0",
        lambda: model(IDS[:, :1], kv_caches=CACHES),
        ValueError,
        lit("start=0 tokens each, got lengths [3, 3]"),
    ),
    (
        "model_forward caches that are full",
        lambda: model(IDS[:, :2], kv_caches=SMALL, start=3),
        ValueError,
        "kv_caches\\[0\\] holds",
    ),
    (
        "model_forward float32 caches, float64 params",
        lambda: model(IDS[:, :1], kv_caches=F32),
        TypeError,
        "kv_caches\\[0\\] stores float32",
    ),
    (
        "model_forward one cache for two layers",
        lambda: model(IDS[:, :1], kv_caches=CACHES[:1], start=3),
        ValueError,
        "kv_caches must be a list of 2",
    ),
    (
        "model_forward the same cache twice",
        lambda: model(IDS[:, :1], kv_caches=[CACHES[0]] * 2, start=3),
        ValueError,
        "distinct",
    ),
    (
        "model_forward a cache that is not a KVCache",
        lambda: model(IDS[:, :1], kv_caches=[CACHES[0], "c"], start=3),
        TypeError,
        lit("kv_caches[1] must be a KVCache"),
    ),
    (
        "check_model_params of another model",
        lambda: tf.check_model_params(MODEL_P, CFG),
        ValueError,
        lit("params: missing keys"),
    ),
    (
        "model_backward dout with a last axis of 1",
        lambda: tf.model_backward(np.ones((2, 5, 1)), MODEL_CACHE),
        ValueError,
        lit("dout(2, 5, 1) must have the shape of the forward's output (2, 5, 7)"),
    ),
    ("new_kv_caches batch=0", lambda: tf.new_kv_caches(CFG, 0), ValueError, "batch"),
    (
        "new_kv_caches capacity=-1",
        lambda: tf.new_kv_caches(CFG, 2, capacity=-1),
        ValueError,
        "capacity",
    ),
    (
        "new_kv_caches dtype=int",
        lambda: tf.new_kv_caches(CFG, 2, dtype=int),
        TypeError,
        "dtype",
    ),
    # loss
    (
        "cross_entropy_forward float targets",
        lambda: tf.cross_entropy_forward(LOGITS, TARGETS * 1.0),
        TypeError,
        "targets",
    ),
    (
        "cross_entropy_forward negative target",
        lambda: tf.cross_entropy_forward(LOGITS, -TARGETS - 1),
        ValueError,
        lit("targets must lie in [0, 7)"),
    ),
    (
        "cross_entropy_forward targets of another shape",
        lambda: tf.cross_entropy_forward(LOGITS, TARGETS[:, :2]),
        ValueError,
        lit("targets(2, 2)"),
    ),
    (
        "cross_entropy_forward int mask",
        lambda: tf.cross_entropy_forward(LOGITS, TARGETS, np.ones((2, 5), int)),
        TypeError,
        "mask",
    ),
    (
        "cross_entropy_forward int logits",
        lambda: tf.cross_entropy_forward(IDS, TARGETS),
        TypeError,
        "logits",
    ),
    (
        "cross_entropy_forward empty vocabulary",
        lambda: tf.cross_entropy_forward(LOGITS[..., :0], TARGETS),
        ValueError,
        "logits",
    ),
    (
        "cross_entropy_backward dout that is not a scalar",
        lambda: tf.cross_entropy_backward(np.ones(1), CE_CACHE),
        ValueError,
        lit("dout(1,) must have the shape of the forward's output ()"),
    ),
    # embedding, layer norm, GELU (attention_np.layers, re-exported here)
    (
        "embedding_forward negative id",
        lambda: tf.embedding_forward(IDS - 1, P["embed.W"]),
        ValueError,
        "ids must lie",
    ),
    (
        "layernorm_forward gamma of the wrong width",
        lambda: tf.layernorm_forward(X, np.ones(5), np.zeros(12)),
        ValueError,
        "gamma",
    ),
    (
        "layernorm_backward dout of one position",
        lambda: tf.layernorm_backward(np.ones(12), LN_CACHE),
        ValueError,
        lit("dout(12,) must have the shape of the forward's output (2, 5, 12)"),
    ),
    (
        "embedding_backward dout of another length",
        lambda: tf.embedding_backward(np.ones((2, 4, 12)), EMB_CACHE),
        ValueError,
        "dout",
    ),
    (
        "gelu_backward dout with an extra axis",
        lambda: tf.gelu_backward(np.ones((1, 2, 5, 12)), GELU_CACHE),
        ValueError,
        "dout",
    ),
    ("gelu_forward int x", lambda: tf.gelu_forward(IDS), TypeError, "x must"),
    # optimisers
    (
        "sgd_step (1,) grad for a (3,) param",
        lambda: tf.sgd_step(OPT_P, with_(OPT_G, "w", np.ones(1)), lr=0.1),
        ValueError,
        lit("grads['w'](1,) must have the shape of params['w'](3,)"),
    ),
    (
        "sgd_step float32 grad for a float64 param",
        lambda: tf.sgd_step(OPT_P, with_(OPT_G, "w", np.ones(3, np.float32)), lr=0.1),
        TypeError,
        lit("grads['w'] has dtype float32 but params['w'] is float64"),
    ),
    ("sgd_step lr=nan", lambda: tf.sgd_step(OPT_P, OPT_G, lr=np.nan), ValueError, "lr"),
    ("sgd_step lr=0", lambda: tf.sgd_step(OPT_P, OPT_G, lr=0), ValueError, "lr"),
    ("sgd_step lr='0.1'", lambda: tf.sgd_step(OPT_P, OPT_G, lr="0.1"), TypeError, "lr"),
    (
        "sgd_step NaN gradient",
        lambda: tf.sgd_step(OPT_P, with_(OPT_G, "b", np.array([0.0, np.nan])), lr=0.1),
        ValueError,
        lit("grads['b'] contains NaN"),
    ),
    (
        "sgd_step missing gradient",
        lambda: tf.sgd_step(OPT_P, without(OPT_G, "b"), lr=0.1),
        ValueError,
        lit("grads: missing keys ['b']"),
    ),
    (
        "sgd_step read-only param",
        lambda: tf.sgd_step(FROZEN, {"w": np.ones(3)}, lr=0.1),
        ValueError,
        lit("params['w'] is read-only"),
    ),
    (
        "sgd_step a list param",
        lambda: tf.sgd_step({"w": [1.0]}, {"w": np.ones(1)}, lr=0.1),
        TypeError,
        lit("params['w'] must be a NumPy array"),
    ),
    ("adam_step beta1=1", lambda: adam(beta1=1.0), ValueError, "beta1"),
    ("adam_step beta2=-0.1", lambda: adam(beta2=-0.1), ValueError, "beta2"),
    ("adam_step eps=0", lambda: adam(eps=0.0), ValueError, "eps"),
    ("adam_step weight_decay=-1", lambda: adam(weight_decay=-1), ValueError, "weight"),
    ("adam_step lr=inf", lambda: adam(lr=np.inf), ValueError, "lr"),
    (
        "adam_step (1,) grad for a (3,) param",
        lambda: adam(grads=with_(OPT_G, "w", np.ones(1))),
        ValueError,
        lit("grads['w'](1,)"),
    ),
    (
        "adam_step float32 grad for a float64 param",
        lambda: adam(grads=with_(OPT_G, "b", OPT_G["b"].astype(np.float32))),
        TypeError,
        lit("grads['b'] has dtype float32 but params['b'] is float64"),
    ),
    (
        "adam_step float16 grad for a float64 param",
        lambda: adam(grads=with_(OPT_G, "w", np.ones(3, np.float16))),
        TypeError,
        lit("grads['w'] has dtype float16"),
    ),
    (
        "adam_step float32 state for float64 params",
        lambda: adam(
            state=with_(STATE, "v", with_(STATE["v"], "w", np.zeros(3, np.float32)))
        ),
        TypeError,
        lit("state['v']['w'] has dtype float32"),
    ),
    (
        "adam_step inf gradient",
        lambda: adam(grads=with_(OPT_G, "w", np.full(3, np.inf))),
        ValueError,
        lit("grads['w'] contains inf"),
    ),
    (
        "adam_step state without v",
        lambda: adam(state=without(STATE, "v")),
        ValueError,
        lit("state: missing keys ['v']"),
    ),
    (
        "adam_step state m of another shape",
        lambda: adam(state=with_(STATE, "m", with_(STATE["m"], "w", np.zeros(2)))),
        ValueError,
        lit("state['m']['w'](2,)"),
    ),
    (
        "adam_step state t=-1",
        lambda: adam(state=with_(STATE, "t", -1)),
        ValueError,
        "t",
    ),
    ("adam_init of a list", lambda: tf.adam_init([X]), TypeError, "params must be"),
    (
        "adam_init int param",
        lambda: tf.adam_init({"w": IDS}),
        TypeError,
        lit("params['w']"),
    ),
    (
        "clip_grad_norm max_norm=0",
        lambda: tf.clip_grad_norm(OPT_G, 0.0),
        ValueError,
        "max_norm",
    ),
    (
        "clip_grad_norm NaN gradient",
        lambda: tf.clip_grad_norm(with_(OPT_G, "b", np.array([np.nan, 1])), 1.0),
        ValueError,
        lit("grads['b'] contains NaN"),
    ),
    (
        "clip_grad_norm inf gradient",
        lambda: tf.clip_grad_norm(with_(OPT_G, "w", np.array([1, np.inf, 0])), 1.0),
        ValueError,
        lit("grads['w'] contains inf"),
    ),
    ("global_norm of a list", lambda: tf.global_norm([X]), TypeError, "grads"),
    (
        "global_norm int gradient",
        lambda: tf.global_norm({"w": IDS}),
        TypeError,
        lit("grads['w']"),
    ),
    # TrainConfig
    ("TrainConfig steps=-3", lambda: train_config(steps=-3), ValueError, "steps"),
    ("TrainConfig steps=0", lambda: train_config(steps=0), ValueError, "steps"),
    (
        "TrainConfig batch_size=2.5",
        lambda: train_config(batch_size=2.5),
        TypeError,
        "batch",
    ),
    ("TrainConfig lr=nan", lambda: train_config(lr=np.nan), ValueError, "lr"),
    ("TrainConfig lr=0", lambda: train_config(lr=0), ValueError, "lr"),
    ("TrainConfig lr='fast'", lambda: train_config(lr="fast"), TypeError, "lr"),
    ("TrainConfig beta1=1", lambda: train_config(beta1=1), ValueError, "beta1"),
    ("TrainConfig beta2=1.5", lambda: train_config(beta2=1.5), ValueError, "beta2"),
    ("TrainConfig task='sort'", lambda: train_config(task="sort"), ValueError, "task"),
    (
        "TrainConfig dtype=float16",
        lambda: train_config(dtype="float16"),
        ValueError,
        "dt",
    ),
    ("TrainConfig length=True", lambda: train_config(length=True), TypeError, "length"),
    ("TrainConfig clip=0", lambda: train_config(clip=0.0), ValueError, "clip"),
    (
        "TrainConfig final_lr_frac=1.5",
        lambda: train_config(final_lr_frac=1.5),
        ValueError,
        "final_lr_frac",
    ),
    ("TrainConfig warmup=-1", lambda: train_config(warmup=-1), ValueError, "warmup"),
    ("TrainConfig seed=-1", lambda: train_config(seed=-1), ValueError, "seed"),
    (
        "TrainConfig weight_decay=inf",
        lambda: train_config(weight_decay=np.inf),
        ValueError,
        "weight_decay",
    ),
    (
        "TrainConfig copy with too few symbols",
        lambda: train_config(task="copy", length=6, n_symbols=5),
        ValueError,
        "n_symbols",
    ),
    (
        "TrainConfig JSON lr 'fast'",
        lambda: tr.TrainConfig.from_json('{"lr": "fast"}'),
        TypeError,
        "lr must be a number, got 'fast'",
    ),
    # training functions
    (
        "default_model_config of a dict",
        lambda: tr.default_model_config({"n_symbols": 4}),
        TypeError,
        "train_config",
    ),
    (
        "default_model_config d_model=0",
        lambda: tr.default_model_config(TRAIN_CFG, d_model=0),
        ValueError,
        "d_model",
    ),
    (
        "default_model_config unknown field",
        lambda: tr.default_model_config(TRAIN_CFG, width=3),
        TypeError,
        "width",
    ),
    (
        "learning_rate step=-1",
        lambda: tr.learning_rate(-1, TRAIN_CFG),
        ValueError,
        "step",
    ),
    ("learning_rate of a dict", lambda: tr.learning_rate(0, {}), TypeError, "cfg"),
    (
        "token_accuracy logits of another length",
        lambda: tr.token_accuracy(np.zeros((2, 3, 5)), BATCH),
        ValueError,
        "logits",
    ),
    (
        "token_accuracy batch a tuple",
        lambda: tr.token_accuracy(np.zeros((2, 6, 5)), tuple(BATCH)),
        TypeError,
        "batch",
    ),
    (
        "train_step with another model's Adam state",
        lambda: tr.train_step(
            MODEL_P, tf.adam_init(OPT_P), BATCH, MODEL_CFG, TRAIN_CFG, 0
        ),
        ValueError,
        lit("state['m']: missing keys"),
    ),
    ("train rng=0", lambda: train(rng=0), TypeError, "rng"),
    ("train progress='no'", lambda: train(progress="no"), TypeError, "progress"),
    ("train threads=0", lambda: train(threads=0), ValueError, "threads"),
    (
        "train a model that does not fit",
        lambda: train(model_config=config(vocab_size=6)),
        ValueError,
        "does not fit",
    ),
    (
        "train params of another model",
        lambda: train(params=P),
        ValueError,
        lit("params: missing keys"),
    ),
    (
        "evaluate n_examples=0",
        lambda: tr.evaluate(MODEL_P, MODEL_CFG, TRAIN_CFG, rng=RNG, n_examples=0),
        ValueError,
        "n_examples",
    ),
    (
        "make_batch task 'sort'",
        lambda: tr.make_batch("sort", RNG, 2, length=3, n_symbols=4),
        ValueError,
        "task",
    ),
    (
        "make_batch rng=None",
        lambda: tr.make_batch("copy", None, 2, length=3, n_symbols=4),
        TypeError,
        "rng",
    ),
    (
        "make_batch batch_size=0",
        lambda: tr.make_batch("copy", RNG, 0, length=3, n_symbols=4),
        ValueError,
        "batch_size",
    ),
    (
        "make_sequences length=-1",
        lambda: tr.make_sequences("reversal", RNG, 2, length=-1, n_symbols=4),
        ValueError,
        "length",
    ),
    ("vocab_size(0)", lambda: tr.vocab_size(0), ValueError, "n_symbols"),
    (
        "token_labels of floats",
        lambda: tr.token_labels(np.array([1.0]), 4),
        TypeError,
        "tokens",
    ),
    (
        "token_labels past the separator",
        lambda: tr.token_labels(np.array([5]), 4),
        ValueError,
        "tokens",
    ),
    # checkpoints (files: see below)
    (
        "save_checkpoint to a directory",
        lambda: tr.save_checkpoint(HERE, MODEL_P, MODEL_CFG, TRAIN_CFG),
        ValueError,
        "is a directory",
    ),
    (
        "load_checkpoint path an int",
        lambda: tr.load_checkpoint(3),
        TypeError,
        "path must be a str",
    ),
    (
        "load_checkpoint expected_config a dict",
        lambda: tr.load_checkpoint("x.npz", expected_config={}),
        TypeError,
        "expected_config",
    ),
]


def snapshot():
    """Copies of everything the catalogue's calls are given."""
    return (
        [a.copy() for a in ARRAYS],
        [{k: v.copy() for k, v in p.items()} for p in PARAMS],
        [(c.length, c.k.copy(), c.v.copy()) for c in CACHES + SMALL + F32],
        STATE["t"],
        np.random.get_state()[1].copy(),
    )


def assert_same(before, after):
    arrays, params, caches, t, rng_state = before
    for a, b in zip(arrays, after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    for p, q in zip(params, after[1], strict=True):
        assert list(p) == list(q)
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])
    for (n, k, v), (n2, k2, v2) in zip(caches, after[2], strict=True):
        assert n == n2
        np.testing.assert_array_equal(k, k2)
        np.testing.assert_array_equal(v, v2)
    assert t == after[3]
    np.testing.assert_array_equal(rng_state, after[4])


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = snapshot()
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) in (ValueError, TypeError)
    assert_same(before, snapshot())


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 40
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_every_public_function_of_the_area_is_in_the_catalogue():
    import inspect

    from test_bad_inputs_encdec import encdec_public_names

    names = set()
    for package in (tf, tr):
        names |= {n for n in package.__all__ if inspect.isfunction(getattr(package, n))}
    names -= encdec_public_names()  # tests/test_bad_inputs_encdec.py has their cases
    names |= {"TransformerConfig", "TrainConfig"}
    missing = {n for n in names if not any(n in c[0] for c in CATALOGUE)}
    assert not missing, sorted(missing)


# --- crafted checkpoint files: CheckpointError naming the problem, never unpickled --


@pytest.fixture
def good(tmp_path):
    """The entries of a valid checkpoint of the small model."""
    path = tmp_path / "good.npz"
    tr.save_checkpoint(path, MODEL_P, MODEL_CFG, TRAIN_CFG, history={"loss": [1.0]})
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def edit(entries, key, value=None):
    """A copy of ``entries`` with ``key`` replaced by ``value`` (None: removed)."""
    out = {k: v for k, v in entries.items() if k != key}
    if value is not None:
        out[key] = value
    return out


def config_json(cls_config, **changes):
    fields = json.loads(cls_config.to_json())
    return np.array(json.dumps({**fields, **changes}))


HEAD = "param/head.W"
CRAFTED = [
    ("int param", lambda e: edit(e, HEAD, e[HEAD].astype(int)), "params['head.W']"),
    ("text param", lambda e: edit(e, HEAD, np.array("weights")), "params['head.W']"),
    (
        "complex param",
        lambda e: edit(e, HEAD, e[HEAD].astype(complex)),
        "params['head.W']",
    ),
    ("NaN param", lambda e: edit(e, HEAD, e[HEAD] * np.nan), "'head.W'] contains NaN"),
    ("inf param", lambda e: edit(e, HEAD, e[HEAD] + np.inf), "'head.W'] contains inf"),
    ("wrong shape", lambda e: edit(e, HEAD, e[HEAD][:2]), "'head.W'] must have shape"),
    ("missing param", lambda e: edit(e, HEAD), "missing keys ['head.W']"),
    (
        "extra param",
        lambda e: edit(e, "param/foo", np.zeros(2, np.float32)),
        "unexpected keys ['foo']",
    ),
    (
        "a float64 param among float32",
        lambda e: edit(e, HEAD, e[HEAD].astype(np.float64)),
        "has dtype float64",
    ),
    (
        "train_config lr 'fast'",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, lr="fast")),
        "invalid train_config: lr must be a number, got 'fast'",
    ),
    (
        "train_config lr NaN",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, lr=float("nan"))),
        "invalid train_config: lr must be finite",
    ),
    (
        "train_config beta1 = 1",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, beta1=1.0)),
        "invalid train_config: beta1",
    ),
    (
        "train_config steps as text",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, steps="10")),
        "invalid train_config: steps must be an int",
    ),
    (
        "train_config unknown field",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, speed=1)),
        "invalid train_config: .*'speed'",
    ),
    (
        "model_config d_model -4",
        lambda e: edit(e, "model_config", config_json(MODEL_CFG, d_model=-4)),
        "invalid model_config: d_model must be >= 1",
    ),
    (
        "model_config bias 'yes'",
        lambda e: edit(e, "model_config", config_json(MODEL_CFG, bias="yes")),
        "invalid model_config: bias must be True or False",
    ),
    (
        "model_config a JSON list",
        lambda e: edit(e, "model_config", np.array("[1, 2]")),
        "invalid model_config: .*must be an object",
    ),
    (
        "model_config not JSON",
        lambda e: edit(e, "model_config", np.array("{vocab")),
        "invalid model_config",
    ),
    (
        "model_config a float array",
        lambda e: edit(e, "model_config", np.zeros(3)),
        "entry 'model_config' must be text",
    ),
    (
        "configs that do not fit together",
        lambda e: edit(e, "train_config", config_json(TRAIN_CFG, n_symbols=9)),
        "does not fit",
    ),
    ("no train_config", lambda e: edit(e, "train_config"), "missing entry"),
    ("meta a JSON list", lambda e: edit(e, "meta", np.array("[1]")), "meta must be"),
    ("meta not JSON", lambda e: edit(e, "meta", np.array("{")), "good.npz"),
    (
        "history 2-D",
        lambda e: edit(e, "history/loss", np.zeros((2, 2))),
        "history['loss']",
    ),
    (
        "an unexpected entry",
        lambda e: edit(e, "script", np.array("run me")),
        "unexpected entries ['script']",
    ),
    (
        "another format",
        lambda e: edit(e, "format", np.array("other-v9")),
        "not an attention_np checkpoint",
    ),
]


@pytest.mark.parametrize("crafted", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_a_crafted_checkpoint_is_refused_with_a_clear_error(tmp_path, good, crafted):
    _, change, pattern = crafted
    path = tmp_path / "good.npz"
    np.savez(path, **change(good))
    regex = pattern if ".*" in pattern else re.escape(pattern)
    with pytest.raises(tr.CheckpointError, match=regex):
        tr.load_checkpoint(path)


class Exploit:
    """Unpickling this would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("entry", ["param/head.W", "history/loss", "model_config"])
def test_an_object_array_in_a_checkpoint_is_never_unpickled(tmp_path, good, entry):
    marker = tmp_path / "exploited"
    evil = np.array([Exploit(marker)], dtype=object)
    path = tmp_path / "good.npz"
    np.savez(path, **edit(good, entry, evil))  # np.savez pickles object arrays
    with pytest.raises(tr.CheckpointError, match="pickled Python objects"):
        tr.load_checkpoint(path)
    assert not marker.exists()


def test_the_exploit_would_run_if_unpickled(tmp_path):
    """The planted object is a real exploit: allow_pickle=True runs it."""
    marker = tmp_path / "exploited"
    np.save(tmp_path / "evil.npy", np.array([Exploit(marker)], dtype=object))
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    assert marker.exists()


SAVE_REFUSALS = [
    (
        "NaN param",
        dict(params=with_(MODEL_P, "head.W", MODEL_P["head.W"] * np.nan)),
        ValueError,
        "params['head.W'] contains NaN",
    ),
    (
        "int param",
        dict(params=with_(MODEL_P, "head.W", np.zeros((4, 5), int))),
        TypeError,
        "params['head.W']",
    ),
    (
        "missing param",
        dict(params=without(MODEL_P, "head.W")),
        ValueError,
        "missing keys ['head.W']",
    ),
    ("model_config a dict", dict(model_config={}), TypeError, "model_config"),
    ("train_config a dict", dict(train_config={}), TypeError, "train_config"),
    (
        "configs that do not fit",
        dict(model_config=config(vocab_size=6)),
        ValueError,
        "does not fit",
    ),
    (
        "history of objects",
        dict(history={"loss": [1.0, None]}),
        TypeError,
        "history['loss']",
    ),
    ("history of text", dict(history={"loss": ["a"]}), TypeError, "history['loss']"),
    ("meta a list", dict(meta=[1]), TypeError, "meta"),
    ("meta with NaN", dict(meta={"acc": float("nan")}), ValueError, "meta"),
    ("meta with an array", dict(meta={"acc": np.ones(2)}), TypeError, "meta"),
]


@pytest.mark.parametrize("refusal", SAVE_REFUSALS, ids=[c[0] for c in SAVE_REFUSALS])
def test_save_checkpoint_refuses_and_writes_nothing(tmp_path, refusal):
    _, changes, exc, pattern = refusal
    args = dict(params=MODEL_P, model_config=MODEL_CFG, train_config=TRAIN_CFG)
    args.update(changes)
    kw = {k: args.pop(k) for k in ("history", "meta") if k in args}
    before = snapshot()
    with pytest.raises(exc, match=re.escape(pattern)):
        tr.save_checkpoint(tmp_path / "sub" / "c.npz", **args, **kw)
    assert list(tmp_path.iterdir()) == []
    assert_same(before, snapshot())


@pytest.mark.parametrize(
    "where", ["file", "directory"], ids=["under a file", "is a directory"]
)
def test_save_checkpoint_to_an_unwritable_place_is_refused(tmp_path, where):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "c.npz" if where == "file" else tmp_path
    with pytest.raises(ValueError, match="not a directory|is a directory"):
        tr.save_checkpoint(path, MODEL_P, MODEL_CFG, TRAIN_CFG)


# --- the command line: error: ..., exit status 2, nothing trained or written --------

CLI = [
    (["--steps", "-3"], "argument --steps: must be >= 1, got -3"),
    (["--steps", "0"], "argument --steps: must be >= 1"),
    (["--steps", "2.5"], "argument --steps: expected an integer"),
    (["--lr", "nan"], "argument --lr: must be finite and > 0"),
    (["--lr", "inf"], "argument --lr: must be finite and > 0"),
    (["--lr", "0"], "argument --lr: must be finite and > 0"),
    (["--lr", "-0.001"], "argument --lr: must be finite and > 0"),
    (["--lr", "fast"], "argument --lr: expected a number"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["--length", "0"], "argument --length: must be >= 1"),
    (["--n-symbols", "-1"], "argument --n-symbols: must be >= 1"),
    (["--d-model", "0"], "argument --d-model: must be >= 1"),
    (["--n-heads", "5"], "n_heads=5 must divide d_model=64"),
    (["--n-layers", "0"], "argument --n-layers: must be >= 1"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
    (["--length", "1000000000"], "argument --length: must be <= 1024, got 1000000000"),
    (["--steps", "10000000"], "argument --steps: must be <= 1000000"),
    (["--batch-size", "5000"], "argument --batch-size: must be <= 4096"),
    (["--n-symbols", "1000001"], "argument --n-symbols: must be <= 100000"),
    (["--d-model", "8192"], "argument --d-model: must be <= 4096"),
    (
        ["--batch-size", "4096", "--length", "1024"],
        "GiB of arrays, more than the limit of 4 GiB",
    ),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--n-symbols", "3", "--task-is-copy"], "unrecognized arguments"),
]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        train_main(argv)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("flags, message", CLI, ids=[" ".join(c[0]) for c in CLI])
def test_command_line_bad_value_is_an_error_with_exit_status_2(
    tmp_path, capsys, flags, message
):
    out = tmp_path / "c.npz"
    code, err = run_cli(["reversal", "--out", str(out), *flags], capsys)
    assert code == 2 and "error: " in err and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sort", "--out", "{out}"], "argument task: invalid choice: 'sort'"),
        (["reversal"], "the following arguments are required: --out"),
        (["copy", "--out", "{out}", "--n-symbols", "3"], "n_symbols >= length"),
        (["reversal", "--out", "{tmp}"], "is a directory"),
        (["reversal", "--out", "{file}/c.npz"], "is not a directory"),
    ],
    ids=["unknown task", "no --out", "copy too few symbols", "out dir", "out file"],
)
def test_command_line_bad_task_or_out_is_an_error_with_exit_status_2(
    tmp_path, capsys, argv, message
):
    (tmp_path / "f").write_text("x")
    names = {"out": tmp_path / "c.npz", "tmp": tmp_path, "file": tmp_path / "f"}
    code, err = run_cli([a.format(**names) for a in argv], capsys)
    assert code == 2 and "error: " in err and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize(
    "flags",
    [["--steps", "-3"], ["--lr", "nan"], ["--length", "1000000000", "--steps", "1"]],
)
def test_command_line_in_a_real_process_exits_2_without_a_traceback(tmp_path, flags):
    out = tmp_path / "c.npz"
    argv = [sys.executable, "-m", "attention_np.train", "reversal", "--out", str(out)]
    done = subprocess.run(argv + flags, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "error: argument" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["translate", "mlm", "stream"])
def test_run_commands_bound_their_sizes_with_exit_status_2(tmp_path, capsys, command):
    out = tmp_path / "c.npz"
    flags = ["--batch-size", "100000"]
    if command != "translate":
        flags += ["--length", "1000000000"]
    code, err = run_cli([command, "--out", str(out), *flags], capsys)
    assert code == 2 and "error: argument --" in err and "must be <= " in err
    assert not out.exists()


def test_the_help_states_the_size_limits(capsys):
    code, out = None, None
    with pytest.raises(SystemExit) as info:
        train_main(["--help"])
    code, out = info.value.code, capsys.readouterr().out
    assert code == 0 and "1 to 1,024" in out and "4 GiB" in out


# --- no NaN from finite inputs; a refused cached call leaves the cache alone --------


def test_huge_finite_inputs_give_finite_outputs_and_gradients(rng):
    params = {k: v * (1e4 if k == "embed.W" else 1.0) for k, v in P.items()}
    logits, cache = tf.model_forward(IDS, params, CFG)
    grads = tf.model_backward(rng.standard_normal(logits.shape), cache)
    assert np.all(np.isfinite(logits))
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    out, cache = tf.block_forward(1e4 * X, BLOCK_P, n_heads=3, causal=True)
    dx, _ = tf.block_backward(rng.standard_normal(out.shape), cache)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))


def test_a_fully_masked_query_gives_finite_self_attention(rng):
    from attention_np.masks import padding_mask

    mask = padding_mask([0, 3], 5)  # sequence 0: no key may be attended
    out, cache = tf.self_attention_forward(X, ATTN_P, mask, n_heads=3, causal=False)
    dx, _ = tf.self_attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))


def test_a_refused_cached_self_attention_call_leaves_the_cache_alone():
    from attention_np.decoding import KVCache

    cache = KVCache(2, 3, 4, 8)
    with pytest.raises(TypeError, match="mask"):
        tf.self_attention_forward(
            X, ATTN_P, np.ones((5, 5)), n_heads=3, causal=True, kv_cache=cache
        )
    assert cache.length == 0


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"step,loss\n1,2.3\n", "not a checkpoint .*zip archives.*b'step,l'"),
        (b"", "not a checkpoint"),
        (b"PK\x03\x04 truncated", "not a readable .npz checkpoint"),
    ],
    ids=["text file", "empty file", "truncated zip"],
)
def test_a_file_that_is_not_an_npz_archive_is_named_as_such(tmp_path, content, match):
    """Not NumPy's advice to allow pickles, which is wrong and unsafe here."""
    path = tmp_path / "run.npz"
    path.write_bytes(content)
    with pytest.raises(tr.CheckpointError, match=match) as info:
        tr.load_checkpoint(path)
    assert "allow_pickle" not in str(info.value)


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(tr.CheckpointError, match="cannot be read"):
        tr.load_checkpoint(tmp_path)

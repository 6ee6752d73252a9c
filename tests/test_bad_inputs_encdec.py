"""Bad inputs to the encoder-decoder, its decoding, the MLM/stream models and their
training code: a clear TypeError/ValueError naming the argument, and nothing the
call was given changes (arrays, params, KV caches, decoding states) nor the global
NumPy random state. Then the command line: ``error: ...`` and exit status 2."""

import inspect
import re

import numpy as np
import pytest

from attention_np import train as tr
from attention_np import transformer as tf
from attention_np.decoding import KVCache
from attention_np.train.__main__ import main as train_main

R = np.random.default_rng(0)
D, H = 12, 3
CFG = tf.EncDecConfig(
    src_vocab=9,
    tgt_vocab=7,
    max_src_len=6,
    max_tgt_len=5,
    d_model=D,
    n_heads=H,
    n_enc_layers=1,
    n_dec_layers=2,
    d_mlp=10,
)
P = tf.init_encdec_params(CFG, rng=np.random.default_rng(1))
P32 = tf.init_encdec_params(CFG, rng=np.random.default_rng(1), dtype=np.float32)
SRC = R.integers(0, 9, (2, 6))
TGT = R.integers(0, 7, (2, 4))
LENGTHS = np.array([6, 3])
XQ, XKV = R.standard_normal((2, 4, D)), R.standard_normal((2, 6, D))
CROSS = tf.init_cross_attention_params(D, H, rng=np.random.default_rng(2))
ADD = tf.init_cross_attention_params(
    D, H, score="additive", rng=np.random.default_rng(3)
)
BLOCK = tf.init_decoder_block_params(D, H, 10, rng=np.random.default_rng(4))
MEMORY = tf.cross_memory(XKV, CROSS, n_heads=H)
CACHE = KVCache(2, H, D // H, 5)  # one cached token, room for 4 more
tf.decoder_block_step(XQ[:, :1], MEMORY, BLOCK, kv_cache=CACHE, n_heads=H)
FULL = KVCache(2, H, D // H, 1)
tf.decoder_block_step(XQ[:, :1], MEMORY, BLOCK, kv_cache=FULL, n_heads=H)
STATE = tf.start_decoding(SRC, P, CFG, src_lengths=LENGTHS)
tf.decode_step(TGT[:, :2], STATE, P, CFG)  # two tokens decoded
UNEVEN = tf.start_decoding(SRC, P, CFG)
UNEVEN.kv_caches[0].append(*(np.zeros((2, H, 1, D // H)),) * 2)  # layer 0 ahead
_, CACHE_FWD = tf.encdec_forward(SRC, TGT, P, CFG, src_lengths=LENGTHS)
TCFG = tf.TransformerConfig(vocab_size=6, max_len=8, d_model=8, n_heads=2, d_mlp=10)
TP = tf.init_params(TCFG, rng=np.random.default_rng(5))
ROPE = tf.TransformerConfig(
    vocab_size=6, max_len=8, d_model=8, n_heads=2, d_mlp=10, pos="rope"
)
RP = tf.init_params(ROPE, rng=np.random.default_rng(6))
IDS = R.integers(0, 6, (2, 8))
MLM = tr.MLMConfig(steps=1, length=3, n_symbols=4)
MLM_MODEL = tr.mlm_model_config(MLM, d_model=8, n_heads=2, n_layers=1)
MLM_P = tf.init_params(MLM_MODEL, rng=np.random.default_rng(7))
TRANSLATE = tr.TranslateConfig(steps=1, batch_size=2)
TR_MODEL = tr.translation_model_config(d_model=8, n_heads=2, d_mlp=8)
TR_P = tf.init_encdec_params(TR_MODEL, rng=np.random.default_rng(8))
WEIGHTS = R.random((1, 2, H, 4, 6))

ARRAYS = [SRC, TGT, LENGTHS, XQ, XKV, IDS, WEIGHTS, MEMORY.k, MEMORY.v]
PARAMS = [P, P32, CROSS, ADD, BLOCK, TP, RP, MLM_P, TR_P]
CACHES = [CACHE, FULL, *STATE.kv_caches, *UNEVEN.kv_caches]


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def lit(text):
    return re.escape(text)


def config(**kw):
    sizes = dict(src_vocab=9, tgt_vocab=7, max_src_len=6, max_tgt_len=5, d_model=D)
    return tf.EncDecConfig(**{**sizes, "n_heads": H, **kw})


def cross(x_q=XQ, x_kv=XKV, params=CROSS, mask=None, **kw):
    return tf.cross_attention_forward(x_q, x_kv, params, mask, **{"n_heads": H, **kw})


def block(x=XQ, enc=XKV, params=BLOCK, mask=None, **kw):
    kw = {"n_heads": H, "causal": True, **kw}
    return tf.decoder_block_forward(x, enc, params, mask, **kw)


def step(x=XQ[:, :1], memory=MEMORY, params=BLOCK, mask=None, **kw):
    kw = {"n_heads": H, "kv_cache": CACHE, **kw}
    return tf.decoder_block_step(x, memory, params, mask, **kw)


def model(src=SRC, tgt=TGT, params=P, **kw):
    return tf.encdec_forward(src, tgt, params, CFG, **{"src_lengths": LENGTHS, **kw})


def decode(**kw):
    kw = {"bos": 1, "eos": 2, "src_lengths": LENGTHS, **kw}
    return tf.greedy_decode(SRC, P, CFG, **kw)


def beam(**kw):
    kw = {"beam_width": 2, "bos": 1, "eos": 2, **kw}
    return tf.beam_search(SRC, P, CFG, **kw)


CATALOGUE = [
    # configs and initialisers
    (
        "EncDecConfig score='bahdanau'",
        lambda: config(score="bahdanau"),
        ValueError,
        "score",
    ),
    (
        "EncDecConfig n_heads=5",
        lambda: config(n_heads=5),
        ValueError,
        "n_heads=5 must divide d_model=12",
    ),
    ("EncDecConfig pos='rope'", lambda: config(pos="rope"), ValueError, "pos"),
    ("EncDecConfig d_attn=0", lambda: config(d_attn=0), ValueError, "d_attn"),
    (
        "EncDecConfig src_vocab=True",
        lambda: config(src_vocab=True),
        TypeError,
        "src_vocab",
    ),
    ("EncDecConfig bias=1", lambda: config(bias=1), TypeError, "bias"),
    (
        "EncDecConfig.from_json list",
        lambda: tf.EncDecConfig.from_json("[1]"),
        TypeError,
        "JSON must be an object",
    ),
    (
        "encdec_param_shapes config=dict",
        lambda: tf.encdec_param_shapes({}),
        TypeError,
        "config",
    ),
    (
        "init_encdec_params rng=0",
        lambda: tf.init_encdec_params(CFG, rng=0),
        TypeError,
        "rng",
    ),
    (
        "init_encdec_params dtype=int",
        lambda: tf.init_encdec_params(CFG, rng=R, dtype=int),
        TypeError,
        "dtype",
    ),
    (
        "init_encdec_params config=None",
        lambda: tf.init_encdec_params(None, rng=R),
        TypeError,
        "config",
    ),
    (
        "init_cross_attention_params score='x'",
        lambda: tf.init_cross_attention_params(D, H, score="x", rng=R),
        ValueError,
        "score",
    ),
    (
        "init_cross_attention_params d_attn=0",
        lambda: tf.init_cross_attention_params(D, H, score="additive", d_attn=0, rng=R),
        ValueError,
        "d_attn",
    ),
    (
        "init_decoder_block_params d_mlp=0",
        lambda: tf.init_decoder_block_params(D, H, 0, rng=R),
        ValueError,
        "d_mlp",
    ),
    (
        "check_encdec_params missing key",
        lambda: tf.check_encdec_params(without(P, "dec1.cross.W_q"), CFG),
        ValueError,
        lit("missing keys ['dec1.cross.W_q']"),
    ),
    # cross-attention
    ("cross_attention_forward x_q 2-D", lambda: cross(x_q=XQ[0]), ValueError, "x_q"),
    (
        "cross_attention_forward batch mismatch",
        lambda: cross(x_kv=XKV[:1]),
        ValueError,
        lit("x_q(2, 4, 12) and x_kv(1, 6, 12) must share B"),
    ),
    (
        "cross_attention_forward float mask",
        lambda: cross(mask=np.ones((2, 1, 1, 6))),
        TypeError,
        "mask",
    ),
    (
        "cross_attention_forward mask shape",
        lambda: cross(mask=np.ones((2, 1, 1, 5), bool)),
        ValueError,
        "mask",
    ),
    (
        "cross_attention_forward additive score, dot params",
        lambda: cross(score="additive"),
        ValueError,
        "missing keys",
    ),
    (
        "cross_attention_forward dot score, additive params",
        lambda: cross(params=ADD),
        ValueError,
        "additive keys",
    ),
    (
        "cross_attention_forward float32 inputs",
        lambda: cross(x_q=XQ.astype(np.float32), x_kv=XKV.astype(np.float32)),
        TypeError,
        "params",
    ),
    (
        "cross_attention_forward n_heads=0",
        lambda: cross(n_heads=0),
        ValueError,
        "n_heads",
    ),
    (
        "cross_attention_backward dout shape",
        lambda: tf.cross_attention_backward(np.ones((2, 4, 5)), cross()[1]),
        ValueError,
        "dout",
    ),
    (
        "cross_memory x_kv width",
        lambda: tf.cross_memory(XKV[..., :5], CROSS, n_heads=H),
        ValueError,
        "x_kv.* has width 5 but params.'W_k'.",
    ),
    (
        "cross_attention_decode memory=tuple",
        lambda: tf.cross_attention_decode(XQ, (MEMORY.k, MEMORY.v), CROSS, n_heads=H),
        TypeError,
        "memory",
    ),
    (
        "cross_attention_decode memory heads",
        lambda: tf.cross_attention_decode(XQ, MEMORY, CROSS, n_heads=4),
        ValueError,
        "memory.k",
    ),
    # decoder block
    (
        "decoder_block_forward enc width",
        lambda: block(enc=XKV[..., :5]),
        ValueError,
        "enc",
    ),
    (
        "decoder_block_forward causal='yes'",
        lambda: block(causal="yes"),
        TypeError,
        "causal",
    ),
    (
        "decoder_block_forward align='left'",
        lambda: block(align="left"),
        ValueError,
        "align",
    ),
    (
        "decoder_block_forward missing key",
        lambda: block(params=without(BLOCK, "cross.W_v")),
        ValueError,
        lit("missing keys ['cross.W_v']"),
    ),
    (
        "decoder_block_forward score='additive'",
        lambda: block(score="additive"),
        ValueError,
        "missing keys",
    ),
    (
        "decoder_block_backward dout shape",
        lambda: tf.decoder_block_backward(np.ones((2, 4)), block()[1]),
        ValueError,
        "dout",
    ),
    (
        "decoder_block_step kv_cache=None",
        lambda: step(kv_cache=None),
        TypeError,
        "kv_cache",
    ),
    (
        "decoder_block_step cache full",
        lambda: step(kv_cache=FULL),
        ValueError,
        "cache full",
    ),
    (
        "decoder_block_step bad mask",
        lambda: step(mask=np.ones((2, 1, 1, 6))),
        TypeError,
        "mask",
    ),
    (
        "decoder_block_step memory of another batch",
        lambda: step(memory=tf.CrossMemory(MEMORY.k[:1], MEMORY.v[:1])),
        ValueError,
        "memory.k",
    ),
    # whole model
    (
        "encdec_forward src too long",
        lambda: model(src=np.zeros((2, 7), int), src_lengths=None),
        ValueError,
        "src",
    ),
    ("encdec_forward tgt out of range", lambda: model(tgt=TGT + 7), ValueError, "tgt"),
    ("encdec_forward negative src id", lambda: model(src=SRC - 9), ValueError, "src"),
    (
        "encdec_forward float ids",
        lambda: model(src=SRC.astype(float)),
        TypeError,
        "src",
    ),
    (
        "encdec_forward batch mismatch",
        lambda: model(tgt=TGT[:1]),
        ValueError,
        lit("src(2, 6) and tgt(1, 4) must share B"),
    ),
    (
        "encdec_forward src_lengths shape",
        lambda: model(src_lengths=np.array([6])),
        ValueError,
        "src_lengths",
    ),
    (
        "encdec_forward src_lengths > M",
        lambda: model(src_lengths=np.array([7, 3])),
        ValueError,
        "src_lengths",
    ),
    (
        "encdec_forward src_lengths 2.5",
        lambda: model(src_lengths=np.array([2.5, 3])),
        TypeError,
        "src_lengths",
    ),
    (
        "encdec_forward src_lengths bool",
        lambda: model(src_lengths=np.array([True, False])),
        TypeError,
        "src_lengths",
    ),
    (
        "greedy_decode src_lengths < 0",
        lambda: decode(src_lengths=np.array([-1, 3])),
        ValueError,
        "src_lengths",
    ),
    (
        "beam_search src_lengths 2.5",
        lambda: beam(src_lengths=np.array([2.5, 3])),
        TypeError,
        "src_lengths",
    ),
    (
        "encdec_forward mixed dtypes",
        lambda: model(params={**P, "ln_f.beta": P32["ln_f.beta"]}),
        TypeError,
        "ln_f.beta",
    ),
    (
        "encdec_forward extra key",
        lambda: model(params={**P, "extra": np.ones(3)}),
        ValueError,
        "unexpected keys",
    ),
    (
        "encdec_backward dout shape",
        lambda: tf.encdec_backward(np.ones((2, 4, 6)), CACHE_FWD),
        ValueError,
        "dout",
    ),
    # decoding
    (
        "start_decoding capacity=0",
        lambda: tf.start_decoding(SRC, P, CFG, capacity=0),
        ValueError,
        "capacity",
    ),
    (
        "decode_step state=list",
        lambda: tf.decode_step(TGT[:, :1], list(STATE), P, CFG),
        TypeError,
        "state",
    ),
    (
        "decode_step past max_tgt_len",
        lambda: tf.decode_step(TGT, STATE, P, CFG),
        ValueError,
        "max_tgt_len",
    ),
    (
        "decode_step uneven caches",
        lambda: tf.decode_step(TGT[:, :1], UNEVEN, P, CFG),
        ValueError,
        "state caches",
    ),
    (
        "decode_step float32 params, float64 caches",
        lambda: tf.decode_step(TGT[:, :1], STATE, P32, CFG),
        TypeError,
        "cache stores float64",
    ),
    ("greedy_decode bos=7", lambda: decode(bos=7), ValueError, "bos"),
    (
        "greedy_decode config of a decoder-only model",
        lambda: tf.greedy_decode(SRC, P, tf.TransformerConfig(9, 6), bos=1, eos=2),
        TypeError,
        "config",
    ),
    (
        "beam_search config a dict",
        lambda: tf.beam_search(SRC, P, {}, beam_width=2, bos=1, eos=2),
        TypeError,
        "config",
    ),
    ("greedy_decode eos=-1", lambda: decode(eos=-1), ValueError, "eos"),
    ("greedy_decode max_len=6", lambda: decode(max_len=6), ValueError, "max_len"),
    ("beam_search beam_width=0", lambda: beam(beam_width=0), ValueError, "beam_width"),
    (
        "beam_search beam_width=1.5",
        lambda: beam(beam_width=1.5),
        TypeError,
        "beam_width",
    ),
    ("beam_search pad=0.5", lambda: beam(pad=0.5), TypeError, "pad"),
    # encoder model and streaming
    (
        "encoder_model_forward causal='no'",
        lambda: tf.encoder_model_forward(IDS, TP, TCFG, causal="no"),
        TypeError,
        "causal",
    ),
    (
        "encoder_model_forward without causal",
        lambda: tf.encoder_model_forward(IDS, TP, TCFG),
        TypeError,
        "causal",
    ),
    (
        "encoder_model_forward ids too long",
        lambda: tf.encoder_model_forward(np.zeros((1, 9), int), TP, TCFG, causal=False),
        ValueError,
        "max_len",
    ),
    (
        "encoder_model_backward dout shape",
        lambda: tf.encoder_model_backward(
            np.ones((2, 8, 5)), tf.encoder_model_forward(IDS, TP, TCFG, causal=False)[1]
        ),
        ValueError,
        "dout",
    ),
    (
        "read_stream learned positions",
        lambda: tf.read_stream(IDS, TP, TCFG, n_sink=0, window=4),
        ValueError,
        "pos='rope'",
    ),
    (
        "read_stream window=0",
        lambda: tf.read_stream(IDS, RP, ROPE, n_sink=0, window=0),
        ValueError,
        "window",
    ),
    (
        "read_stream n_sink=-1",
        lambda: tf.read_stream(IDS, RP, ROPE, n_sink=-1, window=4),
        ValueError,
        "n_sink",
    ),
    (
        "EvictingCache window=2.0",
        lambda: tf.EvictingCache(n_sink=1, window=2.0),
        TypeError,
        "window",
    ),
    # training code
    (
        "TranslateConfig lr=nan",
        lambda: tr.TranslateConfig(lr=float("nan")),
        ValueError,
        "lr",
    ),
    (
        "TranslateConfig steps=0",
        lambda: tr.TranslateConfig(steps=0),
        ValueError,
        "steps",
    ),
    (
        "OptimConfig dtype='float16'",
        lambda: tr.OptimConfig(dtype="float16"),
        ValueError,
        "dtype",
    ),
    ("OptimConfig beta2=1", lambda: tr.OptimConfig(beta2=1.0), ValueError, "beta2"),
    (
        "MLMConfig mask_prob=0",
        lambda: tr.MLMConfig(mask_prob=0.0),
        ValueError,
        "mask_prob",
    ),
    ("StreamConfig length=3", lambda: tr.StreamConfig(length=3), ValueError, "length"),
    (
        "warmup_cosine step=-1",
        lambda: tr.warmup_cosine(-1, lr=1.0, warmup=1, steps=2, final_lr_frac=0.1),
        ValueError,
        "step",
    ),
    (
        "warmup_cosine lr=nan",
        lambda: tr.warmup_cosine(1, lr=np.nan, warmup=1, steps=2, final_lr_frac=0.1),
        ValueError,
        "lr",
    ),
    (
        "warmup_cosine lr='fast'",
        lambda: tr.warmup_cosine(1, lr="fast", warmup=1, steps=2, final_lr_frac=0.1),
        TypeError,
        "lr",
    ),
    (
        "warmup_cosine warmup=-1",
        lambda: tr.warmup_cosine(1, lr=1.0, warmup=-1, steps=2, final_lr_frac=0.1),
        ValueError,
        "warmup",
    ),
    (
        "warmup_cosine steps=0",
        lambda: tr.warmup_cosine(1, lr=1.0, warmup=0, steps=0, final_lr_frac=0.1),
        ValueError,
        "steps",
    ),
    (
        "warmup_cosine final_lr_frac=2",
        lambda: tr.warmup_cosine(1, lr=1.0, warmup=1, steps=2, final_lr_frac=2.0),
        ValueError,
        "final_lr_frac",
    ),
    (
        "optimizer_update cfg=None",
        lambda: tr.optimizer_update({}, {}, {}, None, 0),
        TypeError,
        "cfg",
    ),
    (
        "translation_batch rng=None",
        lambda: tr.translation_batch(None, 2),
        TypeError,
        "rng",
    ),
    (
        "translation_batch batch_size=0",
        lambda: tr.translation_batch(R, 0),
        ValueError,
        "batch_size",
    ),
    (
        "translation_model_config score='x'",
        lambda: tr.translation_model_config(score="x"),
        ValueError,
        "score",
    ),
    (
        "train_translation model does not fit",
        lambda: tr.train_translation(CFG, TRANSLATE, rng=R, progress=False),
        ValueError,
        "model_config",
    ),
    (
        "train_translation every=0",
        lambda: tr.train_translation(
            tr.translation_model_config(), TRANSLATE, rng=R, every=0
        ),
        ValueError,
        "every",
    ),
    (
        "train_translation_probed probe=None",
        lambda: tr.train_translation_probed(TR_MODEL, TRANSLATE, None, rng=R),
        TypeError,
        "probe",
    ),
    (
        "train_translation_probed show=5",
        lambda: tr.train_translation_probed(
            TR_MODEL, TRANSLATE, tr.translation_batch(R, 2), rng=R, show=5
        ),
        ValueError,
        "show=5",
    ),
    (
        "translation_step batch=tuple",
        lambda: tr.translation_step(P, {}, (1, 2), CFG, TRANSLATE, 0),
        TypeError,
        "batch",
    ),
    (
        "translate_batch beam_width=0",
        lambda: tr.translate_batch(P, CFG, tr.translation_batch(R, 2), beam_width=0),
        ValueError,
        "beam_width",
    ),
    (
        "evaluate_translation n_examples=0",
        lambda: tr.evaluate_translation(TR_P, TR_MODEL, rng=R, n_examples=0),
        ValueError,
        "n_examples",
    ),
    (
        "evaluate_translation model does not fit",
        lambda: tr.evaluate_translation(P, CFG, rng=R),
        ValueError,
        "model_config",
    ),
    (
        "alignment_scores gold shape",
        lambda: tr.alignment_scores(WEIGHTS, np.zeros((2, 3), int)),
        ValueError,
        "gold",
    ),
    (
        "alignment_scores weights 4-D",
        lambda: tr.alignment_scores(WEIGHTS[0], np.zeros((2, 4), int)),
        ValueError,
        "cross_weights",
    ),
    ("is_held_out float ids", lambda: tr.is_held_out(np.ones(3)), TypeError, "src"),
    (
        "src_labels out of range",
        lambda: tr.src_labels(np.array([99])),
        ValueError,
        "ids",
    ),
    ("tgt_labels 2-D", lambda: tr.tgt_labels(np.zeros((2, 2), int)), ValueError, "ids"),
    ("mlm_batch cfg=None", lambda: tr.mlm_batch(R, None), TypeError, "cfg"),
    (
        "palindromes n_symbols=0",
        lambda: tr.palindromes(R, 2, length=3, n_symbols=0),
        ValueError,
        "n_symbols",
    ),
    ("mlm_model_config cfg=None", lambda: tr.mlm_model_config(None), TypeError, "cfg"),
    (
        "train_mlm causal='yes'",
        lambda: tr.train_mlm(MLM_MODEL, MLM, causal="yes", rng=R),
        TypeError,
        "causal",
    ),
    (
        "train_mlm align='left'",
        lambda: tr.train_mlm(MLM_MODEL, MLM, causal=True, align="left", rng=R),
        ValueError,
        "align",
    ),
    (
        "train_mlm model does not fit",
        lambda: tr.train_mlm(TCFG, MLM, causal=False, rng=R),
        ValueError,
        "model_config",
    ),
    (
        "accuracy_per_position params of another model",
        lambda: tr.accuracy_per_position(TP, MLM_MODEL, MLM, causal=False, rng=R),
        ValueError,
        "params",
    ),
    (
        "fibonacci_streams length=2",
        lambda: tr.fibonacci_streams(R, 2, length=2, n_symbols=5),
        ValueError,
        "length",
    ),
    (
        "stream_model_config cfg=MLMConfig",
        lambda: tr.stream_model_config(MLM),
        TypeError,
        "cfg",
    ),
    (
        "train_stream cfg=None",
        lambda: tr.train_stream(ROPE, None, rng=R),
        TypeError,
        "cfg",
    ),
    (
        "evaluate_stream cfg=None",
        lambda: tr.evaluate_stream(RP, ROPE, None, length=8, n_sink=0, window=4, rng=R),
        TypeError,
        "cfg",
    ),
    (
        "save_run model_config=dict",
        lambda: tr.save_run("/tmp/never.npz", P, {}, TRANSLATE),
        TypeError,
        "model_config",
    ),
    (
        "save_run NaN params",
        lambda: tr.save_run(
            "/tmp/never.npz", {**MLM_P, "head.b": np.full(5, np.nan)}, MLM_MODEL, MLM
        ),
        ValueError,
        "head.b",
    ),
    ("load_run path=3", lambda: tr.load_run(3), TypeError, "path"),
    (
        "load_run missing file",
        lambda: tr.load_run("/nonexistent/run.npz"),
        ValueError,
        "no such",
    ),
]


def snapshot():
    """Copies of everything the catalogue's calls are given."""
    return (
        [a.copy() for a in ARRAYS],
        [{k: v.copy() for k, v in p.items()} for p in PARAMS],
        [(c.length, c.k.copy(), c.v.copy()) for c in CACHES],
        np.random.get_state()[1].copy(),
    )


def assert_same(before, after):
    for a, b in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    for p, q in zip(before[1], after[1], strict=True):
        assert list(p) == list(q)
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])
    for (n, k, v), (n2, k2, v2) in zip(before[2], after[2], strict=True):
        assert n == n2
        np.testing.assert_array_equal(k, k2)
        np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(before[3], after[3])


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = snapshot()
    with pytest.raises(exc, match=pattern):
        call()
    assert_same(before, snapshot())


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 20
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


ENCDEC_MODULES = (
    "cross_attention",
    "cross_memory",
    "decoder_block",
    "encdec",
    "encdec_config",
    "encdec_decode",
    "encoder",
    "streaming",
    "translate",
    "seq2seq",
    "mlm",
    "stream",
    "schedule",
    "run_checkpoint",
)


def encdec_public_names():
    """Public functions and classes of the encoder-decoder modules."""
    names = set()
    for package in (tf, tr):
        for name in package.__all__:
            obj = getattr(package, name)
            module = getattr(obj, "__module__", "").rsplit(".", 1)[-1]
            if module in ENCDEC_MODULES and (
                inspect.isfunction(obj) or inspect.isclass(obj)
            ):
                names.add(name)
    return names


def test_every_public_function_and_config_is_in_the_catalogue():
    skip = {"CrossMemory", "DecodeState", "Decoded", "TranslationBatch", "MLMBatch"}
    missing = {
        n
        for n in encdec_public_names() - skip
        if not any(
            c[0].startswith(n + " ") or c[0].startswith(n + ".") for c in CATALOGUE
        )
    }
    assert not missing, sorted(missing)


# --- the command line: error: ..., exit status 2, nothing written --------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "--score", "cosine"], "argument --score: invalid choice"),
        (["translate", "--steps", "0"], "argument --steps: must be >= 1"),
        (["translate", "--lr", "inf"], "argument --lr: must be finite"),
        (["translate", "--d-model", "10", "--n-heads", "4"], "n_heads=4 must divide"),
        (
            ["translate", "--beam-width", "x"],
            "argument --beam-width: expected an integer",
        ),
        (["mlm", "--length", "0"], "argument --length: must be >= 1"),
        (["mlm", "--window", "3"], "unrecognized arguments: --window"),
        (["stream", "--length", "3"], "length must be >= 4"),
        (["stream", "--n-layers", "-1"], "argument --n-layers: must be >= 1"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_command_line_bad_value_is_an_error_with_exit_status_2(
    tmp_path, capsys, argv, message
):
    out = tmp_path / "run.npz"
    with pytest.raises(SystemExit) as info:
        train_main([*argv, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "error: " in err and message in err
    assert not out.exists()


def test_command_line_without_out_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        train_main(["translate"])
    assert info.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


# --- refused calls that would otherwise write into a cache ----------------------------


def test_a_refused_decoder_step_leaves_its_cache_alone():
    cache = KVCache(2, H, D // H, 4)
    with pytest.raises(TypeError, match="mask"):  # the mask is checked first
        tf.decoder_block_step(
            XQ[:, :1], MEMORY, BLOCK, np.ones((2, 1, 1, 6)), n_heads=H, kv_cache=cache
        )
    with pytest.raises(ValueError, match="memory.k"):
        step(memory=tf.CrossMemory(MEMORY.k[:, :2], MEMORY.v[:, :2]), kv_cache=cache)
    assert cache.length == 0 and not cache.k.any()


def test_a_refused_decode_step_leaves_every_layer_alone():
    state = tf.start_decoding(SRC, P, CFG)
    tf.decode_step(TGT[:, :1], state, P, CFG)
    with pytest.raises(ValueError, match="tgt"):
        tf.decode_step(TGT[:, :1] + 7, state, P, CFG)
    with pytest.raises(ValueError, match="max_tgt_len"):
        tf.decode_step(np.ones((2, 5), int), state, P, CFG)
    assert [c.length for c in state.kv_caches] == [1, 1]

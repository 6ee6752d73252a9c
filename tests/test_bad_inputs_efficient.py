"""Bad inputs to ``attention_np.efficient`` (block attention aside): each misuse raises
ValueError/TypeError with a message that names the argument, and leaves every array
it was given untouched. The second half checks that finite inputs never give NaN
(huge inputs through every feature map, fully masked rows and tiles), that forward
and backward never write into their inputs, and that the global RNG is never used."""

import re
import warnings

import numpy as np
import pytest

from attention_np import efficient as eff
from attention_np.efficient.banded import band_blocks
from attention_np.efficient.gradcheck_cases import CASES
from attention_np.gradcheck import case_functions

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 6))  # (B, H, N, d)
k = R.standard_normal((2, 3, 5, 6))  # (B, H, M, d)
v = R.standard_normal((2, 3, 5, 7))  # (B, H, M, d_v)
x = R.standard_normal((2, 3, 5, 6))  # self-attention: N = M = 5
x_v = R.standard_normal((2, 3, 5, 7))
mask = R.random((2, 1, 4, 5)) > 0.3
scores = R.standard_normal((2, 5))
OMEGA = eff.favor_omega(6, 8, rng=np.random.default_rng(5))
M0, L0 = scores.max(-1), np.ones(2)  # a running max and sum for online_softmax_step
_, FLASH_CACHE = eff.flash_attention_forward(q, k, v, causal=True)
_, LINEAR_CACHE = eff.linear_attention_forward(q, k, v, causal=False)
_, BANDED_CACHE = eff.sliding_window_attention_forward(x, x, x_v, window=3, causal=True)
_, FAVOR_CACHE = eff.favor_forward(q, OMEGA)
ARRAYS = [q, k, v, x, x_v, mask, scores, OMEGA, M0, L0]
GEN = np.random.default_rng(1)


def lit(text):
    """Regex matching ``text`` literally (messages are full of brackets)."""
    return re.escape(text)


def flash(*args, **options):
    return eff.flash_attention_forward(*(args or (q, k, v)), **options)


def reference(*args, **options):
    return eff.flash_attention_reference(*(args or (q, k, v)), **options)


def linear(*args, **options):
    return eff.linear_attention_forward(*(args or (q, k, v)), **options)


def sliding(*args, **options):
    return eff.sliding_window_attention_forward(*(args or (x, x, x_v)), **options)


def dout_of(shape):
    return np.ones(shape)


# (id, callable, exception type, regex the message must match); each id starts with
# the public function it calls
CATALOGUE = [
    # --- flash_attention_forward / backward ---
    ("flash_attention_forward without causal", lambda: flash(), TypeError, "causal"),
    (
        "flash_attention_forward causal='no'",
        lambda: flash(causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "flash_attention_forward align='middle'",
        lambda: flash(causal=True, align="middle"),
        ValueError,
        "align must be one of",
    ),
    (
        "flash_attention_forward block_q=0",
        lambda: flash(causal=True, block_q=0),
        ValueError,
        lit("block_q must be >= 1, got 0"),
    ),
    (
        "flash_attention_forward block_k=-3",
        lambda: flash(causal=False, block_k=-3),
        ValueError,
        "block_k",
    ),
    (
        "flash_attention_forward block_q=2.5",
        lambda: flash(causal=False, block_q=2.5),
        TypeError,
        "block_q must be an int",
    ),
    (
        "flash_attention_forward workers=0",
        lambda: flash(causal=False, workers=0),
        ValueError,
        lit("workers must be >= 1, got 0"),
    ),
    (
        "flash_attention_forward workers=True",
        lambda: flash(causal=False, workers=True),
        TypeError,
        "workers must be an int",
    ),
    (
        "flash_attention_forward integer q",
        lambda: flash(q.astype(int), k, v, causal=False),
        TypeError,
        "q must be a float16/float32/float64 array",
    ),
    (
        "flash_attention_forward float mask",
        lambda: flash(q, k, v, mask.astype(float), causal=False),
        TypeError,
        "mask must be a boolean array",
    ),
    (
        "flash_attention_forward mask of the wrong shape",
        lambda: flash(q, k, v, np.ones((4, 4), bool), causal=False),
        ValueError,
        lit("mask(4, 4) does not broadcast"),
    ),
    (
        "flash_attention_forward k and v of different lengths",
        lambda: flash(q, k, v[..., :4, :], causal=False),
        ValueError,
        "must share the length M",
    ),
    (
        "flash_attention_forward scale=nan",
        lambda: flash(causal=False, scale=float("nan")),
        ValueError,
        "scale must be finite",
    ),
    (
        "flash_attention_forward one-dimensional q",
        lambda: flash(q[0, 0, 0], k, v, causal=False),
        ValueError,
        "q must have at least 2 dimensions",
    ),
    (
        "flash_attention_forward q and k with d = 0",
        lambda: flash(q[..., :0], k[..., :0], v, causal=True),
        ValueError,
        "head width d >= 1",
    ),
    (
        "flash_attention_backward dout with a last axis of 1",
        lambda: eff.flash_attention_backward(dout_of((2, 3, 4, 1)), FLASH_CACHE),
        ValueError,
        lit("dout(2, 3, 4, 1) must have the shape of the forward's output"),
    ),
    # --- flash_attention_reference ---
    ("flash_attention_reference without causal", reference, TypeError, "causal"),
    (
        "flash_attention_reference block_k=0",
        lambda: reference(causal=True, block_k=0),
        ValueError,
        "block_k",
    ),
    (
        "flash_attention_reference integer mask",
        lambda: reference(q, k, v, mask.astype(int), causal=True),
        TypeError,
        "mask must be a boolean array",
    ),
    (
        "flash_attention_reference align=None",
        lambda: reference(causal=True, align=None),
        ValueError,
        "align must be one of",
    ),
    (
        "flash_attention_reference q and k of different widths",
        lambda: reference(q, v, v, causal=False),
        ValueError,
        "must share the last axis d",
    ),
    # --- linear_attention_forward / backward / weights ---
    ("linear_attention_forward without causal", linear, TypeError, "causal"),
    (
        "linear_attention_forward causal='False'",
        lambda: linear(causal="False"),
        TypeError,
        lit("causal must be True or False, got 'False'"),
    ),
    (
        "linear_attention_forward feature_map='tanh'",
        lambda: linear(causal=False, feature_map="tanh"),
        ValueError,
        "feature_map must be one of",
    ),
    (
        "linear_attention_forward form='fast'",
        lambda: linear(causal=True, form="fast"),
        ValueError,
        "form must be one of",
    ),
    (
        "linear_attention_forward recurrent form without causal",
        lambda: linear(causal=False, form="recurrent"),
        ValueError,
        lit("form='recurrent' is the causal RNN: pass causal=True"),
    ),
    (
        "linear_attention_forward chunkwise form without causal",
        lambda: linear(causal=False, form="chunkwise"),
        ValueError,
        "form='chunkwise'",
    ),
    (
        "linear_attention_forward eps=0",
        lambda: linear(causal=False, eps=0.0),
        ValueError,
        "eps must be finite and lie in",
    ),
    (
        "linear_attention_forward eps=nan",
        lambda: linear(causal=False, eps=float("nan")),
        ValueError,
        "eps",
    ),
    (
        "linear_attention_forward eps=-1",
        lambda: linear(causal=True, eps=-1.0),
        ValueError,
        "eps",
    ),
    (
        "linear_attention_forward eps='1e-6'",
        lambda: linear(causal=False, eps="1e-6"),
        TypeError,
        "eps must be a number",
    ),
    (
        "linear_attention_forward chunk_size=0",
        lambda: linear(causal=True, form="chunkwise", chunk_size=0),
        ValueError,
        "chunk_size",
    ),
    (
        "linear_attention_forward chunk_size=1.5",
        lambda: linear(causal=True, form="chunkwise", chunk_size=1.5),
        TypeError,
        "chunk_size",
    ),
    (
        "linear_attention_forward omega without favor+",
        lambda: linear(causal=False, omega=OMEGA),
        ValueError,
        "omega",
    ),
    (
        "linear_attention_forward favor+ without omega",
        lambda: linear(causal=False, feature_map="favor+"),
        ValueError,
        "omega",
    ),
    (
        "linear_attention_forward omega of the wrong width",
        lambda: linear(causal=False, feature_map="favor+", omega=OMEGA[:5]),
        ValueError,
        lit("omega(5, 8) must be (d, m), d = 6"),
    ),
    (
        "linear_attention_forward one-dimensional omega",
        lambda: linear(causal=False, feature_map="favor+", omega=OMEGA[:, 0]),
        ValueError,
        "omega must have 2 dimensions",
    ),
    (
        "linear_attention_forward integer omega",
        lambda: linear(causal=False, feature_map="favor+", omega=OMEGA.astype(int)),
        TypeError,
        "omega must be a float",
    ),
    (
        "linear_attention_forward integer v",
        lambda: linear(q, k, v.astype(np.int32), causal=False),
        TypeError,
        "v must be a float",
    ),
    (
        "linear_attention_forward q and k with d = 0",
        lambda: linear(q[..., :0], k[..., :0], v, causal=False),
        ValueError,
        "head width d >= 1",
    ),
    (
        "linear_attention_forward align='bottom'",
        lambda: linear(causal=True, align="bottom"),
        ValueError,
        "align must be one of",
    ),
    (
        "linear_attention_backward dout of one head",
        lambda: eff.linear_attention_backward(dout_of((4, 7)), LINEAR_CACHE),
        ValueError,
        lit("dout(4, 7) must have the shape of the forward's output (2, 3, 4, 7)"),
    ),
    (
        "linear_attention_weights causal=0",
        lambda: eff.linear_attention_weights(q, k, causal=0),
        TypeError,
        lit("causal must be True or False, got 0"),
    ),
    (
        "linear_attention_weights eps=inf",
        lambda: eff.linear_attention_weights(q, k, causal=False, eps=float("inf")),
        ValueError,
        "eps",
    ),
    (
        "linear_attention_weights feature_map=None",
        lambda: eff.linear_attention_weights(q, k, causal=False, feature_map=None),
        ValueError,
        "feature_map",
    ),
    # --- sliding window: attention, mask, blocks ---
    (
        "sliding_window_attention_forward window=0",
        lambda: sliding(window=0, causal=True),
        ValueError,
        lit("window must be >= 1, got 0"),
    ),
    (
        "sliding_window_attention_forward window=2.0",
        lambda: sliding(window=2.0, causal=True),
        TypeError,
        "window must be an int",
    ),
    (
        "sliding_window_attention_forward N != M",
        lambda: sliding(q, k, v, window=2, causal=True),
        ValueError,
        "sliding-window attention needs N == M",
    ),
    (
        "sliding_window_attention_forward causal=1",
        lambda: sliding(window=2, causal=1),
        TypeError,
        lit("causal must be True or False, got 1"),
    ),
    (
        "sliding_window_attention_forward without causal",
        lambda: sliding(window=2),
        TypeError,
        "causal",
    ),
    (
        "sliding_window_attention_forward mask of the wrong shape",
        lambda: sliding(x, x, x_v, mask, window=2, causal=False),
        ValueError,
        lit("mask(2, 1, 4, 5) does not broadcast"),
    ),
    (
        "sliding_window_attention_forward align='x'",
        lambda: sliding(window=2, causal=True, align="x"),
        ValueError,
        "align must be one of",
    ),
    (
        "sliding_window_attention_forward integer k",
        lambda: sliding(x, x.astype(np.int64), x_v, window=2, causal=True),
        TypeError,
        "k must be a float",
    ),
    (
        "sliding_window_attention_backward dout with an extra axis",
        lambda: eff.sliding_window_attention_backward(
            dout_of((1, 2, 3, 5, 7)), BANDED_CACHE
        ),
        ValueError,
        lit("dout(1, 2, 3, 5, 7) must have the shape of the forward's output"),
    ),
    (
        "sliding_window_mask causal='yes'",
        lambda: eff.sliding_window_mask(6, 2, causal="yes"),
        TypeError,
        lit("causal must be True or False, got 'yes'"),
    ),
    (
        "sliding_window_mask window=0",
        lambda: eff.sliding_window_mask(6, 0, causal=True),
        ValueError,
        "window",
    ),
    (
        "sliding_window_mask N=-1",
        lambda: eff.sliding_window_mask(-1, 2, causal=True),
        ValueError,
        lit("N must be >= 0, got -1"),
    ),
    (
        "sliding_window_mask align='diagonal'",
        lambda: eff.sliding_window_mask(6, 2, causal=True, align="diagonal"),
        ValueError,
        "align must be one of",
    ),
    (
        "band_blocks causal=None",
        lambda: band_blocks(8, 3, causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "band_blocks window=-1",
        lambda: band_blocks(8, -1, causal=True),
        ValueError,
        "window",
    ),
    # --- dilated and strided masks ---
    (
        "dilated_mask dilation=0",
        lambda: eff.dilated_mask(6, 2, 0, causal=True),
        ValueError,
        "dilation",
    ),
    (
        "dilated_mask dilation=1.5",
        lambda: eff.dilated_mask(6, 2, 1.5, causal=True),
        TypeError,
        "dilation",
    ),
    (
        "dilated_mask causal=np.int64(1)",
        lambda: eff.dilated_mask(6, 2, 2, causal=np.int64(1)),
        TypeError,
        lit("causal must be True or False, got np.int64(1)"),
    ),
    (
        "strided_mask stride=0",
        lambda: eff.strided_mask(6, 0, causal=False),
        ValueError,
        "stride",
    ),
    (
        "strided_mask causal=[]",
        lambda: eff.strided_mask(6, 2, causal=[]),
        TypeError,
        lit("causal must be True or False, got []"),
    ),
    # --- BigBird ---
    (
        "bigbird_layout rng=1",
        lambda: eff.bigbird_layout(4, rng=1),
        TypeError,
        "rng must be a np.random.Generator",
    ),
    (
        "bigbird_layout n_window=2",
        lambda: eff.bigbird_layout(8, rng=GEN, n_window=2),
        ValueError,
        "n_window must be odd",
    ),
    (
        "bigbird_layout n_window=0",
        lambda: eff.bigbird_layout(8, rng=GEN, n_window=0),
        ValueError,
        "n_window",
    ),
    (
        "bigbird_layout n_random=-1",
        lambda: eff.bigbird_layout(8, rng=GEN, n_random=-1),
        ValueError,
        "n_random",
    ),
    (
        "bigbird_layout global block out of range",
        lambda: eff.bigbird_layout(4, rng=GEN, global_blocks=(0, 12)),
        ValueError,
        lit("global_blocks: block 12 does not exist (4 blocks)"),
    ),
    (
        "bigbird_layout global_blocks=0",
        lambda: eff.bigbird_layout(4, rng=GEN, global_blocks=0),
        TypeError,
        "global_blocks must be a sequence of ints",
    ),
    (
        "bigbird_layout global_blocks=(0.5,)",
        lambda: eff.bigbird_layout(4, rng=GEN, global_blocks=(0.5,)),
        TypeError,
        "global_blocks must hold ints",
    ),
    (
        "bigbird_layout n_blocks=0",
        lambda: eff.bigbird_layout(0, rng=GEN),
        ValueError,
        "n_blocks",
    ),
    (
        "bigbird_mask block_size=0",
        lambda: eff.bigbird_mask(16, 0, rng=GEN),
        ValueError,
        "block_size",
    ),
    (
        "bigbird_mask N=0",
        lambda: eff.bigbird_mask(0, 4, rng=GEN),
        ValueError,
        lit("N must be >= 1, got 0"),
    ),
    (
        "bigbird_mask rng=None",
        lambda: eff.bigbird_mask(16, 4, rng=None),
        TypeError,
        "rng",
    ),
    # --- online softmax ---
    (
        "online_softmax block=0",
        lambda: eff.online_softmax(scores, block=0),
        ValueError,
        "block",
    ),
    (
        "online_softmax integer x",
        lambda: eff.online_softmax(scores.astype(int), block=2),
        TypeError,
        "x must be a float",
    ),
    (
        "online_softmax 0-d x",
        lambda: eff.online_softmax(scores[0, 0], block=2),
        ValueError,
        "x must have at least 1 dimension",
    ),
    (
        "online_logsumexp trace='yes'",
        lambda: eff.online_logsumexp(scores, block=2, trace="yes"),
        TypeError,
        lit("trace must be True or False, got 'yes'"),
    ),
    (
        "online_logsumexp block=1.5",
        lambda: eff.online_logsumexp(scores, block=1.5),
        TypeError,
        "block must be an int",
    ),
    (
        "online_softmax_step m of the wrong shape",
        lambda: eff.online_softmax_step(M0[:1], L0, scores),
        ValueError,
        lit("m(1,) must have the shape of block(2, 5) without its last axis"),
    ),
    (
        "online_softmax_step l of the wrong shape",
        lambda: eff.online_softmax_step(M0, np.ones(3), scores),
        ValueError,
        lit("l(3,)"),
    ),
    (
        "online_softmax_step integer block",
        lambda: eff.online_softmax_step(M0, L0, scores.astype(int)),
        TypeError,
        "block must be a float",
    ),
    (
        "online_softmax_step m given as a string",
        lambda: eff.online_softmax_step("0", L0, scores),
        TypeError,
        "m must be a NumPy array",
    ),
    # --- peak memory ---
    (
        "peak_bytes of a result instead of a function",
        lambda: eff.peak_bytes(None),
        TypeError,
        "fn must be callable",
    ),
    # --- FAVOR+ ---
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
        "favor_forward stabilize='col'",
        lambda: eff.favor_forward(q, OMEGA, stabilize="col"),
        ValueError,
        "stabilize must be one of",
    ),
    (
        "favor_forward float32 x with float64 omega",
        lambda: eff.favor_forward(q.astype(np.float32), OMEGA),
        TypeError,
        "x float32, omega float64",
    ),
    (
        "favor_forward omega with no features",
        lambda: eff.favor_forward(q, OMEGA[:, :0]),
        ValueError,
        lit("omega(6, 0) needs d >= 1 and m >= 1"),
    ),
    (
        "favor_backward dout with a last axis of 1",
        lambda: eff.favor_backward(dout_of((2, 3, 4, 1)), FAVOR_CACHE),
        ValueError,
        lit(
            "dout(2, 3, 4, 1) must have the shape of the forward's output (2, 3, 4, 8)"
        ),
    ),
    (
        "favor_omega orthogonal=1",
        lambda: eff.favor_omega(6, 8, rng=GEN, orthogonal=1),
        TypeError,
        lit("orthogonal must be True or False, got 1"),
    ),
    (
        "favor_omega rng=0",
        lambda: eff.favor_omega(6, 8, rng=0),
        TypeError,
        "rng must be a np.random.Generator",
    ),
    (
        "favor_omega m=0",
        lambda: eff.favor_omega(6, 0, rng=GEN),
        ValueError,
        lit("m must be >= 1, got 0"),
    ),
    (
        "favor_omega d=2.0",
        lambda: eff.favor_omega(2.0, 8, rng=GEN),
        TypeError,
        "d must be an int",
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = [a.copy() for a in ARRAYS]
    rng_state = GEN.bit_generator.state
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) in (ValueError, TypeError)
    for a, b in zip(ARRAYS, before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert GEN.bit_generator.state == rng_state  # a refused call draws nothing


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 40
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_catalogue_covers_every_public_function():
    names = {
        n
        for n in eff.__all__
        if callable(getattr(eff, n))
        and not isinstance(getattr(eff, n), type)
        and not n.startswith("block_attention")  # block attention: its own file
    }
    names.add("band_blocks")
    covered = {c[0].split(" ")[0] for c in CATALOGUE}
    assert names <= covered, sorted(names - covered)


# --- finite inputs never give NaN --------------------------------------------------


FEATURE_MAPS = ("elu+1", "relu", "dpfp", "favor+")
FORMS = [
    (False, "top_left", "parallel"),
    (True, "top_left", "parallel"),
    (True, "bottom_right", "recurrent"),
    (True, "top_left", "chunkwise"),
    (True, "bottom_right", "chunkwise"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal, align, form", FORMS)
@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
def test_linear_attention_of_huge_inputs_is_finite(
    feature_map, causal, align, form, dtype
):
    rng = np.random.default_rng(3)
    shapes = (2, 3, 6, 4), (2, 3, 9, 4), (2, 3, 9, 5)  # N = 6 queries, M = 9 keys
    qh, kh, vh = ((1e4 * rng.standard_normal(s)).astype(dtype) for s in shapes)
    omega = (
        eff.favor_omega(4, 6, rng=rng).astype(dtype)
        if feature_map == "favor+"
        else None
    )
    options = dict(feature_map=feature_map, causal=causal, align=align, omega=omega)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid value anywhere
        out, cache = eff.linear_attention_forward(qh, kh, vh, form=form, **options)
        grads = eff.linear_attention_backward(rng.standard_normal(out.shape), cache)
        weights = eff.linear_attention_weights(qh, kh, **options)
    for a in (out, *grads, weights):
        assert np.isfinite(a).all()


@pytest.mark.parametrize("feature_map", ["relu", "dpfp"])
@pytest.mark.parametrize("causal", [False, True])
def test_all_zero_features_give_a_zero_output_not_nan(feature_map, causal):
    # relu(-1) = 0 and dpfp's products vanish when one of the pair is 0: no mass at
    # all, so the denominator is eps and the output 0 (documented in the module)
    qz = -np.ones((2, 4, 3)) if feature_map == "relu" else np.zeros((2, 4, 3))
    kz, vz = qz[:, :3].copy(), np.ones((2, 3, 2))
    out, cache = eff.linear_attention_forward(
        qz, kz, vz, feature_map=feature_map, causal=causal
    )
    grads = eff.linear_attention_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(out, 0.0)
    assert all(np.isfinite(g).all() for g in grads)


def huge_masked_inputs(rng):
    qh, kh, vh = (1e4 * rng.standard_normal((2, 3, 9, n)) for n in (4, 4, 5))
    m = rng.random((2, 3, 9, 9)) > 0.5
    m[0, 1, 3] = False  # a fully masked row
    m[1, :, :, 4:8] = False  # a band of keys nobody sees: whole tiles masked
    m[1, 2, :5] = False  # a block of fully masked rows: whole tiles masked
    return qh, kh, vh, m


@pytest.mark.parametrize("causal, align", [(False, "top_left"), (True, "bottom_right")])
def test_flash_with_fully_masked_rows_and_tiles_of_huge_inputs_is_finite(causal, align):
    rng = np.random.default_rng(4)
    qh, kh, vh, m = huge_masked_inputs(rng)
    options = dict(causal=causal, align=align, block_q=2, block_k=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = eff.flash_attention_forward(qh, kh, vh, m, **options)
        grads = eff.flash_attention_backward(rng.standard_normal(out.shape), cache)
        ref, ref_cache = eff.flash_attention_reference(qh, kh, vh, m, **options)
    assert all(np.isfinite(a).all() for a in (out, *grads, ref))
    np.testing.assert_array_equal(out[0, 1, 3], 0.0)
    np.testing.assert_array_equal(out[1, 2, :5], 0.0)
    np.testing.assert_array_equal(grads[0][1, 2, :5], 0.0)
    assert np.isneginf(cache.lse[1, 2, :5]).all()
    assert np.isneginf(ref_cache.lse[1, 2, :5]).all()


def test_sliding_window_with_fully_masked_rows_of_huge_inputs_is_finite():
    rng = np.random.default_rng(5)
    qh, kh, vh, m = huge_masked_inputs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = eff.sliding_window_attention_forward(
            qh, kh, vh, m, window=3, causal=False
        )
        grads = eff.sliding_window_attention_backward(
            rng.standard_normal(out.shape), cache
        )
    assert all(np.isfinite(a).all() for a in (out, *grads))
    np.testing.assert_array_equal(out[1, 2, :5], 0.0)


def test_online_softmax_of_huge_and_fully_masked_rows_is_finite():
    xh = 1e4 * np.random.default_rng(6).standard_normal((3, 11))
    xh[1] = -np.inf  # a fully masked row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, lse = eff.online_softmax(xh, block=4)
    assert np.isfinite(y).all() and np.isneginf(lse[1]) and np.all(y[1] == 0)
    np.testing.assert_allclose(y[[0, 2]].sum(-1), 1.0)


@pytest.mark.parametrize("n, m", [(0, 5), (4, 0), (0, 0)])
def test_empty_sequences_give_empty_or_zero_outputs(n, m):
    qe, ke, ve = np.ones((2, n, 3)), np.ones((2, m, 3)), np.ones((2, m, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for causal in (False, True):
            out, cache = eff.flash_attention_forward(qe, ke, ve, causal=causal)
            grads = eff.flash_attention_backward(out, cache)
            ref, _ = eff.flash_attention_reference(qe, ke, ve, causal=causal)
            lin, lin_cache = eff.linear_attention_forward(qe, ke, ve, causal=causal)
            eff.linear_attention_backward(lin, lin_cache)
            for a in (out, ref, lin):
                assert a.shape == (2, n, 2) and np.all(a == 0)  # no key: output 0
            assert [g.shape for g in grads] == [(2, n, 3), (2, m, 3), (2, m, 2)]
            assert np.isneginf(cache.lse).all()


# --- inputs are never written, the global RNG never used ---------------------------


def read_only(a):
    if a is None:
        return None
    a = np.array(a)
    a.flags.writeable = False  # any write into it raises
    return a


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_never_write_into_their_inputs(name):
    case = CASES[name](np.random.default_rng(0))
    arrays = {n: read_only(a) for n, a in case.arrays.items()}
    options = {
        n: read_only(o) if isinstance(o, np.ndarray) else o
        for n, o in case.options.items()
    }
    case = case._replace(arrays=arrays, options=options)
    forward, backward, inputs = case_functions(case)
    out, cache = forward(inputs)
    backward(read_only(np.random.default_rng(1).standard_normal(np.shape(out))), cache)


def test_online_softmax_step_returns_new_arrays():
    m, l, block = np.zeros(2), np.ones(2), np.ones((2, 3))
    m_new, l_new = eff.online_softmax_step(m, l, block)
    assert m_new is not m and l_new is not l
    np.testing.assert_array_equal(m, 0.0)
    np.testing.assert_array_equal(l, 1.0)


def test_the_global_numpy_rng_is_never_used():
    state = np.random.get_state()[1].copy()
    rng = np.random.default_rng(0)
    omega = eff.favor_omega(6, 8, rng=rng)
    eff.bigbird_mask(32, 4, rng=rng)
    eff.linear_attention_forward(
        q, k, v, feature_map="favor+", omega=omega, causal=False
    )
    eff.flash_attention_forward(q, k, v, causal=True, workers=2)
    np.testing.assert_array_equal(np.random.get_state()[1], state)

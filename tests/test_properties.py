"""Property-based tests: softmax, attention and multi-head attention on random shapes,
masks and dtypes (hypothesis + hypothesis.extra.numpy).

Sizes B, H, N, M, d, d_v are drawn independently (N = 1, M = 1 and N != M included,
plus explicit @example edge cases); masks are random boolean arrays of any shape that
broadcasts to the scores, often with a fully masked row forced in; dtypes are float32
and float64 (finite differences in float64 only).

Reproducibility: every test uses the "attention_np-ci" profile by default:
``derandomize=True`` (examples come from a seed derived from the test's name, so each
run, on every machine, tries the same inputs) and ``database=None`` (nothing is read
or written to .hypothesis/). For a local hunt for new counterexamples, run with
``ATTENTION_NP_HYPOTHESIS=explore``: random seeds, the example database, and 10x more
examples. Neither profile is loaded globally, so other test modules are unaffected.
"""

import os
import warnings
from contextlib import contextmanager
from unittest import mock

import numpy as np
from conftest import fd_check
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attention_np import attention as attention_module
from attention_np import (
    attention_backward,
    attention_forward,
    attention_weights,
    mha_backward,
    mha_forward,
    softmax_backward,
    softmax_forward,
)
from attention_np.masks import attention_mask
from attention_np.multihead import BIAS_KEYS, WEIGHT_KEYS
from attention_np.naive import attention_naive, mha_naive, softmax_naive

settings.register_profile(
    "attention_np-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "attention_np-explore",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("ATTENTION_NP_HYPOTHESIS", "ci")
_PARENT = settings.get_profile(f"attention_np-{PROFILE}")
_FACTOR = 10 if PROFILE == "explore" else 1


def budget(n):
    """Settings for a test that tries ``n`` examples (x10 in the explore profile)."""
    return settings(_PARENT, max_examples=n * _FACTOR, deadline=None)


DTYPES = [np.float32, np.float64]
# (causal, align): every test of attention draws one; bottom-right with N > M hides
# whole rows, so it also covers fully masked rows without a mask
CAUSALITY = [(False, "top_left"), (True, "top_left"), (True, "bottom_right")]
causalities = st.sampled_from(CAUSALITY)
ORACLE_TOL = {np.float32: 2e-5, np.float64: 1e-12}


@contextmanager
def strict_numerics():
    """Any RuntimeWarning, overflow, invalid operation or division by 0 is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield


def finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


def dropped_rows(mask, shape, causality=(False, "top_left")):
    """(..., N) True where a query may attend no key (all-False row of the mask,
    ANDed with the causal rule)."""
    causal, align = causality
    if causal:
        N, M = shape[-2:]
        mask = attention_mask(mask, causal=True, align=align, N=N, M=M)
    if mask is None:
        return np.zeros(shape[:-1], bool)
    return ~np.broadcast_to(mask, shape).any(axis=-1)


def allowed(mask, shape, causality):
    """The boolean (..., N, M) pattern a call means: mask AND the causal rule."""
    causal, align = causality
    full = attention_mask(mask, causal=causal, align=align, N=shape[-2], M=shape[-1])
    return np.ones(shape, bool) if full is None else np.broadcast_to(full, shape)


# --- strategies -------------------------------------------------------------------


def floats(dtype, bound):
    width = 32 if dtype == np.float32 else 64
    return st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False)


def arrays(draw, dtype, shape, bound=3.0):
    return draw(hnp.arrays(dtype, shape, elements=floats(dtype, bound)))


@st.composite
def masks(draw, scores_shape, allow_none=True):
    """None or a boolean mask broadcastable to scores_shape, maybe with a dead row."""
    if allow_none and draw(st.booleans()):
        return None
    shape = draw(hnp.broadcastable_shapes(scores_shape, max_dims=len(scores_shape)))
    # broadcastable_shapes may stretch a size-1 target axis; the mask must not
    tail = scores_shape[len(scores_shape) - len(shape) :]
    shape = tuple(1 if t == 1 else s for s, t in zip(shape, tail, strict=True))
    mask = draw(hnp.arrays(np.bool_, shape))
    if draw(st.booleans()):  # force one fully masked query row
        mask = np.broadcast_to(mask, scores_shape).copy()
        rows = mask.reshape(-1, scores_shape[-1])
        rows[draw(st.integers(0, rows.shape[0] - 1))] = False
    return mask


@st.composite
def attention_cases(draw, dtypes=DTYPES, max_n=5, max_m=6, max_d=4, bound=3.0):
    """(q, k, v, mask) with k and v shared by all heads half of the time."""
    dtype = draw(st.sampled_from(dtypes))
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    N, M = draw(st.integers(1, max_n)), draw(st.integers(1, max_m))
    d, d_v = draw(st.integers(1, max_d)), draw(st.integers(1, max_d))
    kv_heads = draw(st.sampled_from([H, 1]))
    q = arrays(draw, dtype, (B, H, N, d), bound)
    k = arrays(draw, dtype, (B, kv_heads, M, d), bound)
    v = arrays(draw, dtype, (B, kv_heads, M, d_v), bound)
    return q, k, v, draw(masks((B, H, N, M)))


def fixed_case(B, H, N, M, d, d_v, dtype=np.float64, dead_row=False):
    """A concrete case for @example: the edge sizes every run must cover."""
    rng = np.random.default_rng(N * 100 + M)
    q, k, v = (
        rng.standard_normal(s).astype(dtype)
        for s in ((B, H, N, d), (B, H, M, d), (B, H, M, d_v))
    )
    mask = None
    if dead_row:
        mask = rng.random((B, H, N, M)) > 0.3
        mask[0, 0, N - 1] = False
    return q, k, v, mask


EDGE_CASES = [
    fixed_case(1, 1, 1, 1, 1, 1),  # N = M = d = 1
    fixed_case(2, 1, 1, 5, 3, 2),  # one query, many keys (a decoding step)
    fixed_case(1, 2, 5, 1, 2, 3, np.float32),  # many queries, one key
    fixed_case(2, 2, 3, 4, 2, 2, dead_row=True),  # a fully masked row
    fixed_case(1, 1, 1, 3, 2, 2, dead_row=True),  # the only row is fully masked
]


def with_edge_cases(dtypes=DTYPES):
    """Decorator: run the test on every EDGE_CASES entry of the given dtypes too,
    under every (causal, align)."""

    def decorate(test):
        for case in EDGE_CASES:
            for causality in CAUSALITY:
                if case[0].dtype.type in dtypes:
                    test = example(case=case, causality=causality)(test)
        return test

    return decorate


@st.composite
def mha_cases(draw, cross, dtypes=(np.float64,), max_h=3, max_d=3, max_n=4):
    """(x_q, x_kv, params, mask, kw): kw holds n_heads, causal and align;
    self-attention passes the same array."""
    dtype = draw(st.sampled_from(dtypes))
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, max_h))
    D = H * draw(st.integers(1, max_d))
    N = draw(st.integers(1, max_n))
    M = draw(st.integers(1, max_n + 1)) if cross else N
    D_kv = draw(st.integers(1, 5)) if cross else D
    x_q = arrays(draw, dtype, (B, N, D), 2.0)
    x_kv = arrays(draw, dtype, (B, M, D_kv), 2.0) if cross else x_q
    shapes = {"W_q": (D, D), "W_k": (D_kv, D), "W_v": (D_kv, D), "W_o": (D, D)}
    if draw(st.booleans()):
        shapes.update({name: (D,) for name in BIAS_KEYS})
    params = {name: arrays(draw, dtype, s, 1.0) for name, s in shapes.items()}
    causal, align = draw(causalities)
    kw = {"n_heads": H, "causal": causal, "align": align}
    return x_q, x_kv, params, draw(masks((B, H, N, M))), kw


# --- softmax ----------------------------------------------------------------------


@st.composite
def softmax_cases(draw, dtypes=DTYPES, bound=30.0):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    x = arrays(draw, dtype, shape, bound)
    return x, draw(masks(shape))


@budget(100)
@given(case=softmax_cases())
def test_softmax_rows_sum_to_one_or_zero_and_masked_weights_are_exactly_zero(case):
    x, mask = case
    with strict_numerics():
        y, _ = softmax_forward(x, mask)
    dead = dropped_rows(mask, x.shape)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.sum(axis=-1), np.where(dead, 0.0, 1.0), atol=tol)
    if mask is not None:
        assert np.all(y[~np.broadcast_to(mask, x.shape)] == 0.0)
    assert np.all(y[dead] == 0.0) and np.all(y >= 0)


@budget(80)
@given(case=softmax_cases(), data=st.data())
def test_softmax_is_invariant_to_a_per_row_shift(case, data):
    x, mask = case
    c = arrays(data.draw, x.dtype, x.shape[:-1] + (1,), 50.0)  # one shift per row
    with strict_numerics():
        y, _ = softmax_forward(x, mask)
        y_shifted, _ = softmax_forward(x + c, mask)
    tol = 3e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y_shifted, y, atol=tol)


@budget(80)
@given(case=softmax_cases())
def test_softmax_matches_naive_oracle(case):
    x, mask = case
    y, _ = softmax_forward(x, mask)
    expected = softmax_naive(x, mask)
    np.testing.assert_allclose(y, expected, atol=ORACLE_TOL[x.dtype.type])


@budget(50)
@given(case=softmax_cases(dtypes=[np.float64], bound=5.0), seed=st.integers(0, 99))
def test_softmax_backward_matches_finite_differences(case, seed):
    x, mask = case
    fd_check(
        lambda p: softmax_forward(p["x"], mask),
        lambda dout, cache: {"x": softmax_backward(dout, cache)},
        {"x": x},
        np.random.default_rng(seed),
    )


@budget(60)
@given(case=softmax_cases(dtypes=[np.float32], bound=1e4), seed=st.integers(0, 99))
def test_softmax_float32_scores_of_magnitude_1e4_stay_finite(case, seed):
    x, mask = case
    dout = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    with strict_numerics():
        y, cache = softmax_forward(x, mask)
        dx = softmax_backward(dout, cache)
    assert finite(y, dx)


# --- attention --------------------------------------------------------------------


@budget(100)
@with_edge_cases()
@given(case=attention_cases(), causality=causalities)
def test_attention_matches_naive_oracle(case, causality):
    q, k, v, mask = case
    kw = dict(zip(("causal", "align"), causality, strict=True))
    with strict_numerics():
        out, cache = attention_forward(q, k, v, mask, **kw)
    ref_out, ref_w = attention_naive(q, k, v, mask, **kw)
    tol = ORACLE_TOL[q.dtype.type]
    np.testing.assert_allclose(out, ref_out, atol=tol, rtol=tol)
    np.testing.assert_allclose(cache.weights, ref_w, atol=tol)
    np.testing.assert_allclose(attention_weights(q, k, mask, **kw), ref_w, atol=tol)


@budget(100)
@with_edge_cases()
@given(case=attention_cases(), causality=causalities)
def test_attention_weights_sum_to_one_masked_are_zero_dead_rows_give_zero(
    case, causality
):
    q, k, v, mask = case
    causal, align = causality
    with strict_numerics():
        out, cache = attention_forward(q, k, v, mask, causal=causal, align=align)
    w = cache.weights
    dead = dropped_rows(mask, w.shape, causality)
    tol = 1e-5 if q.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w.sum(axis=-1), np.where(dead, 0.0, 1.0), atol=tol)
    assert np.all(w[~allowed(mask, w.shape, causality)] == 0.0)
    assert np.all(out[dead] == 0.0)


@budget(60)
@with_edge_cases([np.float64])
@given(
    case=attention_cases(dtypes=[np.float64], max_n=4, max_m=4, max_d=3),
    causality=causalities,
)
def test_attention_backward_matches_finite_differences(case, causality):
    q, k, v, mask = case
    causal, align = causality
    fd_check(
        lambda p: attention_forward(
            p["q"], p["k"], p["v"], mask, causal=causal, align=align
        ),
        lambda dout, cache: dict(
            zip("qkv", attention_backward(dout, cache), strict=True)
        ),
        {"q": q, "k": k, "v": v},
        np.random.default_rng(q.size + k.size),
    )


@budget(60)
@given(
    case=attention_cases(dtypes=[np.float32]),
    magnitude=st.sampled_from([1.0, 1e2, 1e4]),
    seed=st.integers(0, 99),
    causality=causalities,
)
def test_attention_never_nan_or_inf_even_with_float32_scores_of_1e4(
    case, magnitude, seed, causality
):
    q, k, v, mask = case
    causal, align = causality
    q64 = q.astype(np.float64)
    top = np.abs(q64 @ np.swapaxes(k, -1, -2)).max()  # largest |q . k|
    if top > 1e-3:  # rescale q so that the largest score has the drawn magnitude
        q = (q64 * (magnitude * np.sqrt(q.shape[-1]) / top)).astype(np.float32)
    dout = np.random.default_rng(seed).standard_normal(q.shape[:-1] + v.shape[-1:])
    with strict_numerics():
        out, cache = attention_forward(q, k, v, mask, causal=causal, align=align)
        grads = attention_backward(dout.astype(np.float32), cache)
    assert finite(out, cache.weights, *grads)
    dead = dropped_rows(mask, cache.weights.shape, causality)
    assert np.all(out[dead] == 0.0) and np.all(grads[0][dead] == 0.0)


@budget(60)
@given(
    case=attention_cases(dtypes=[np.float64]),
    data=st.data(),
    block_bytes=st.sampled_from([1, 8, 64, 256, 4096, 1 << 18]),
    causality=causalities,
)
def test_per_row_score_shifts_change_nothing_in_any_row_block_layout(
    case, data, block_bytes, causality
):
    # Appending c_i / scale to q_i and 1 to every key adds c_i to row i of the
    # scores, which softmax ignores. Shifts drawn far apart make neighbouring rows'
    # maxima differ by more than _SHARED_SHIFT, so both the shared-shift and the
    # per-row-shift branch of _exp_shifted run, in blocks of every size.
    q, k, v, mask = case
    scale = 1.0 / np.sqrt(q.shape[-1])
    c = data.draw(
        hnp.arrays(np.float64, q.shape[:-1] + (1,), elements=floats(np.float64, 1e3))
    )
    q_shift = np.concatenate([q, c / scale], axis=-1)
    k_shift = np.concatenate([k, np.ones(k.shape[:-1] + (1,))], axis=-1)
    kw = dict(zip(("causal", "align"), causality, strict=True))
    ref_out, ref_w = attention_naive(q, k, v, mask, **kw)
    out0, cache0 = attention_forward(q, k, v, mask, **kw)
    dout = np.random.default_rng(0).standard_normal(out0.shape)
    grads0 = attention_backward(dout, cache0)
    with mock.patch.object(attention_module, "_BLOCK_BYTES", block_bytes):
        with strict_numerics():
            out, cache = attention_forward(q_shift, k_shift, v, mask, scale=scale, **kw)
            dq, dk, dv = attention_backward(dout, cache)
    np.testing.assert_allclose(out, ref_out, atol=1e-9)
    np.testing.assert_allclose(cache.weights, ref_w, atol=1e-9)
    for got, want in zip((dq[..., :-1], dk[..., :-1], dv), grads0, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-8)


@st.composite
def dropout_cases(draw, dtypes=DTYPES, **sizes):
    """(q, k, v, mask, p, seed, kw) with kw the drawn causal= and align=."""
    q, k, v, mask = draw(attention_cases(dtypes=dtypes, **sizes))
    p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    kw = dict(zip(("causal", "align"), draw(causalities), strict=True))
    return q, k, v, mask, p, draw(st.integers(0, 2**32 - 1)), kw


@budget(60)
@given(case=dropout_cases())
def test_dropout_output_is_the_kept_weights_rescaled_times_v(case):
    q, k, v, mask, p, seed, kw = case
    with strict_numerics():
        out, cache = attention_forward(
            q, k, v, mask, dropout_p=p, rng=np.random.default_rng(seed), **kw
        )
    kept = cache.weights if cache.keep is None else cache.weights * cache.keep
    tol = ORACLE_TOL[q.dtype.type] * 10
    np.testing.assert_allclose(out, kept / (1 - p) @ v, atol=tol, rtol=tol)
    causality = (kw["causal"], kw["align"])
    assert np.all(out[dropped_rows(mask, cache.weights.shape, causality)] == 0.0)
    again, _ = attention_forward(
        q, k, v, mask, dropout_p=p, rng=np.random.default_rng(seed), **kw
    )
    np.testing.assert_array_equal(again, out)  # same seed, same bits


@budget(40)
@given(case=dropout_cases(dtypes=[np.float64], max_n=4, max_m=4, max_d=3))
def test_dropout_backward_matches_finite_differences(case):
    q, k, v, mask, p, seed, kw = case
    fd_check(  # a fresh Generator per call: every forward draws the same keep-mask
        lambda a: attention_forward(
            a["q"],
            a["k"],
            a["v"],
            mask,
            dropout_p=p,
            rng=np.random.default_rng(seed),
            **kw,
        ),
        lambda dout, cache: dict(
            zip("qkv", attention_backward(dout, cache), strict=True)
        ),
        {"q": q, "k": k, "v": v},
        np.random.default_rng(seed + 1),
    )


# --- multi-head attention ----------------------------------------------------------


def mha_grads(dout, cache, self_attention):
    dx_q, dx_kv, grads = mha_backward(dout, cache)
    if self_attention:  # x feeds queries, keys and values
        return {"x": dx_q + dx_kv, **grads}
    return {"x_q": dx_q, "x_kv": dx_kv, **grads}


@budget(60)
@given(case=mha_cases(cross=False, dtypes=DTYPES))
def test_mha_self_attention_matches_naive_loop_over_heads(case):
    x, _, params, mask, kw = case
    with strict_numerics():
        out, cache = mha_forward(x, x, params, mask, **kw)
    ref_out, ref_w = mha_naive(x, x, params, mask, **kw)
    tol = 1e-4 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, atol=tol, rtol=tol)
    np.testing.assert_allclose(cache.weights, ref_w, atol=tol)


@budget(60)
@given(case=mha_cases(cross=True, dtypes=DTYPES))
def test_mha_cross_attention_matches_naive_loop_over_heads(case):
    x_q, x_kv, params, mask, kw = case
    with strict_numerics():
        out, cache = mha_forward(x_q, x_kv, params, mask, **kw)
    ref_out, ref_w = mha_naive(x_q, x_kv, params, mask, **kw)
    tol = 1e-4 if x_q.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, atol=tol, rtol=tol)
    np.testing.assert_allclose(cache.weights, ref_w, atol=tol)


@budget(30)
@given(case=mha_cases(cross=False, max_h=2, max_d=2, max_n=3))
def test_mha_self_attention_backward_matches_finite_differences(case):
    x, _, params, mask, kw = case
    fd_check(
        lambda p: mha_forward(p["x"], p["x"], {n: p[n] for n in params}, mask, **kw),
        lambda dout, cache: mha_grads(dout, cache, self_attention=True),
        {"x": x, **params},
        np.random.default_rng(x.size),
    )


@budget(30)
@given(case=mha_cases(cross=True, max_h=2, max_d=2, max_n=3))
def test_mha_cross_attention_backward_matches_finite_differences(case):
    x_q, x_kv, params, mask, kw = case
    fd_check(
        lambda p: mha_forward(
            p["x_q"], p["x_kv"], {n: p[n] for n in params}, mask, **kw
        ),
        lambda dout, cache: mha_grads(dout, cache, self_attention=False),
        {"x_q": x_q, "x_kv": x_kv, **params},
        np.random.default_rng(x_kv.size),
    )


@budget(40)
@given(case=mha_cases(cross=True, dtypes=(np.float32,)), seed=st.integers(0, 99))
def test_mha_float32_with_huge_projections_stays_finite(case, seed):
    x_q, x_kv, params, mask, kw = case
    big = {
        n: a * np.float32(30.0) if n in WEIGHT_KEYS else a for n, a in params.items()
    }
    with strict_numerics():
        out, cache = mha_forward(x_q, x_kv, big, mask, **kw)
        dout = np.random.default_rng(seed).standard_normal(out.shape)
        dx_q, dx_kv, grads = mha_backward(dout.astype(np.float32), cache)
    assert finite(out, dx_q, dx_kv, *grads.values())

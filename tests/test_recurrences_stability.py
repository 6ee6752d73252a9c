"""Numerically stable gates: at N = 16384 with strong decays (cumulative log-decays
down to -1e5, where exp(-b) overflows in any float type), every model runs forward
and backward without overflow, NaN or inf, in float32 and float64, and the forms
agree. The recurrent and chunkwise forms run for every model; the O(N^2) parallel
form (seconds at this length) for one model of each code path: per-channel gates
(GLA) and the delta rule with a scalar gate (Gated DeltaNet), in float32. A product
of the decays themselves would underflow to 0 and then be divided by; the package
only ever exponentiates differences <= 0."""

import numpy as np
import pytest

from attention_np import recurrences as R

N = 16384
FORMS = ("recurrent", "parallel", "chunkwise")


def _inputs(dtype, rng):
    shape = (1, 1, N)
    k = rng.standard_normal(shape + (4,))
    strong = -rng.uniform(2.0, 12.0, shape)  # cumulative sum reaches about -1.1e5
    strong[..., ::97] = -1e-4  # and some nearly-1 decays in between
    arrays = {
        "q": rng.standard_normal(shape + (4,)),
        "k": k / np.linalg.norm(k, axis=-1, keepdims=True),
        "v": rng.standard_normal(shape + (3,)),
        "log_alpha": strong,
        "log_alpha_channels": np.repeat(strong[..., None], 4, axis=-1)
        * rng.uniform(0.5, 1.0, 4),
        "beta": rng.uniform(0.0, 1.0, shape),
        "initial_state": rng.standard_normal((1, 1, 4, 3)),
    }
    return {name: a.astype(dtype) for name, a in arrays.items()}


MODELS = {
    "retention": (R.retention_forward, R.retention_backward, ()),
    "gla": (R.gla_forward, R.gla_backward, ("log_alpha_channels",)),
    "mamba2": (R.mamba2_forward, R.mamba2_backward, ("log_alpha",)),
    "deltanet": (R.deltanet_forward, R.deltanet_backward, ("beta",)),
    "gated_deltanet": (
        R.gated_deltanet_forward,
        R.gated_deltanet_backward,
        ("log_alpha", "beta"),
    ),
}


def _run(model, form, x):
    forward, backward, gates = MODELS[model]
    arrays = [x[n] for n in ("q", "k", "v") + gates + ("initial_state",)]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, cache = forward(*arrays, form=form)
        up = np.random.default_rng(
            1
        )  # the same random upstream gradients for every form
        dout = up.standard_normal(out.shape).astype(out.dtype)
        dfinal = up.standard_normal(cache.final_state.shape).astype(out.dtype)
        grads = backward(dout, R.with_final_state_grad(cache, dfinal))
    return out, cache.final_state, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model", MODELS)
def test_no_overflow_or_nan_at_16k_tokens(model, dtype):
    x = _inputs(dtype, np.random.default_rng(0))
    assert np.cumsum(x["log_alpha"].astype(np.float64)).min() < -5e4
    results = {form: _run(model, form, x) for form in ("recurrent", "chunkwise")}
    for form, (out, state, grads) in results.items():
        for a in (out, state, *grads):
            assert a.dtype == dtype and np.all(np.isfinite(a)), (model, form)
    tol = 1e-9 if dtype == np.float64 else 2e-3
    _agree(results["chunkwise"], results["recurrent"], tol)


def _agree(result, reference, tol):
    for a, b in zip(result[:2] + tuple(result[2]), reference[:2] + tuple(reference[2]),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("model", ["gla", "gated_deltanet"])
def test_the_parallel_form_too(model):
    x = _inputs(np.float32, np.random.default_rng(2))
    out, state, grads = result = _run(model, "parallel", x)
    for a in (out, state, *grads):
        assert a.dtype == np.float32 and np.all(np.isfinite(a))
    _agree(result, _run(model, "chunkwise", x), 2e-3)


def test_linear_attention_has_no_gate_and_grows_but_stays_finite():
    x = _inputs(np.float32, np.random.default_rng(1))
    q, k, v, S0 = (x[n] for n in ("q", "k", "v", "initial_state"))
    for form in FORMS:
        with np.errstate(over="raise", invalid="raise"):
            out, cache = R.linear_attn_forward(q, k, v, S0, form=form)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(cache.final_state))


def test_the_naive_product_of_decays_overflows_where_log_space_does_not():
    """exp(b_i) * exp(-b_j), the tempting factorisation, gives inf * 0 = NaN."""
    b = np.cumsum(np.full(2000, -1.0))  # cumulative log-decay after 2000 tokens
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(b[-1]) * np.exp(-b[-2])  # the true value is e^-1
    assert not np.isfinite(naive)
    stable = np.exp(b[-1] - b[-2])
    np.testing.assert_allclose(stable, np.exp(-1.0))

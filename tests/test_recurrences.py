"""attention_np.recurrences: the three forms of every model agree with a token loop,
with each other and with finite differences; state carries across segments with
gradients; special cases reduce to each other and to attention_np.memory."""

import numpy as np
import pytest

from attention_np import recurrences as R
from attention_np.gradcheck import numerical_grads
from attention_np.memory import delta_rule_forward, sum_rule_forward
from attention_np.recurrences import chunkwise, decay, parallel, triangular

B, H, N, d_k, d_v = 2, 3, 11, 4, 5
FORMS = ("recurrent", "parallel", "chunkwise")
MODELS = {  # name: (forward, backward, gate names between v and the initial state)
    "linear_attn": (R.linear_attn_forward, R.linear_attn_backward, ()),
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


def make_inputs(rng, n=N, lead=(B, H), dtype=np.float64):
    k = rng.standard_normal(lead + (n, d_k))
    arrays = {
        "q": rng.standard_normal(lead + (n, d_k)),
        "k": k / np.linalg.norm(k, axis=-1, keepdims=True),
        "v": rng.standard_normal(lead + (n, d_v)),
        "log_alpha_channels": -rng.uniform(0.02, 1.5, lead + (n, d_k)),
        "log_alpha": -rng.uniform(0.02, 1.5, lead + (n,)),
        "beta": rng.uniform(0.1, 1.0, lead + (n,)),
        "initial_state": rng.standard_normal(lead + (d_k, d_v)),
    }
    return {name: a.astype(dtype) for name, a in arrays.items()}


def arrays_of(model, inputs):
    """The positional arrays of ``model``: q, k, v, its gates, the initial state."""
    names = ("q", "k", "v") + MODELS[model][2] + ("initial_state",)
    return [inputs[n] for n in names]


def token_loop(q, k, v, g, beta, S0, scale):
    """The oracle: S = alpha S; u = v or beta (v - k S); S += k^T u; o = scale q S."""
    S, out = S0.copy(), np.zeros(q.shape[:-1] + v.shape[-1:])
    for t in range(q.shape[-2]):
        S = np.exp(g[..., t, :])[..., :, None] * S
        u = v[..., t, :]
        if beta is not None:
            u = beta[..., t, None] * (
                u - np.einsum("...k,...kv->...v", k[..., t, :], S)
            )
        S = S + k[..., t, :, None] * u[..., None, :]
        out[..., t, :] = scale * np.einsum("...k,...kv->...v", q[..., t, :], S)
    return out, S


def oracle(model, inputs, scale):
    x = inputs
    zero = np.zeros(x["q"].shape[:-1] + (1,))
    gamma = np.log(R.retention_decays(x["q"].shape[-3]))[:, None, None]
    g = {
        "linear_attn": zero,
        "retention": zero + gamma,
        "gla": x["log_alpha_channels"],
        "mamba2": x["log_alpha"][..., None],
        "deltanet": zero,
        "gated_deltanet": x["log_alpha"][..., None],
    }[model]
    beta = x["beta"] if "deltanet" in model else None
    return token_loop(x["q"], x["k"], x["v"], g, beta, x["initial_state"], scale)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("form", FORMS)
def test_every_form_matches_a_token_loop(model, form):
    inputs = make_inputs(np.random.default_rng(0))
    expected, S_expected = oracle(model, inputs, 0.6)
    forward = MODELS[model][0]
    out, cache = forward(*arrays_of(model, inputs), form=form, chunk_size=4, scale=0.6)
    np.testing.assert_allclose(out, expected, atol=1e-10, rtol=0)
    np.testing.assert_allclose(cache.final_state, S_expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_every_chunk_size_gives_the_recurrent_output_and_final_state(model):
    inputs = make_inputs(np.random.default_rng(1))
    forward = MODELS[model][0]
    ref, ref_cache = forward(*arrays_of(model, inputs), form="recurrent")
    for C in (1, 2, 3, 5, N - 1, N, N + 7, 64):
        out, cache = forward(*arrays_of(model, inputs), form="chunkwise", chunk_size=C)
        np.testing.assert_allclose(out, ref, atol=1e-10, rtol=0, err_msg=f"C={C}")
        np.testing.assert_allclose(cache.final_state, ref_cache.final_state, atol=1e-10)


def _grads(model, form, inputs, dout, dfinal=None, chunk_size=4):
    forward, backward, _ = MODELS[model]
    _, cache = forward(*arrays_of(model, inputs), form=form, chunk_size=chunk_size)
    if dfinal is not None:
        cache = R.with_final_state_grad(cache, dfinal)
    return backward(dout, cache)


@pytest.mark.parametrize("model", MODELS)
def test_backward_of_every_form_is_the_same(model):
    rng = np.random.default_rng(2)
    inputs = make_inputs(rng)
    dout, dfinal = (
        rng.standard_normal((B, H, N, d_v)),
        rng.standard_normal((B, H, d_k, d_v)),
    )
    ref = _grads(model, "recurrent", inputs, dout, dfinal)
    for form, C in (
        ("parallel", 4),
        ("chunkwise", 1),
        ("chunkwise", 4),
        ("chunkwise", 64),
    ):
        got = _grads(model, form, inputs, dout, dfinal, chunk_size=C)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-10, rtol=0, err_msg=f"{form} {C}")


@pytest.mark.parametrize("model", ["retention", "gla", "mamba2", "gated_deltanet"])
@pytest.mark.parametrize("short", [True, False])
def test_chunkwise_scores_through_the_last_row_or_not_agree(model, short, monkeypatch):
    """The chunkwise form makes its scores by one product through each chunk's last
    row when the decays span little, else from D (scalar gates) or by halving (per
    channel): both ways give the recurrent form's outputs and gradients."""
    monkeypatch.setattr(chunkwise, "short_span", lambda b: short)
    rng = np.random.default_rng(7)
    inputs = make_inputs(rng)
    dout, dfinal = (
        rng.standard_normal((B, H, N, d_v)),
        rng.standard_normal((B, H, d_k, d_v)),
    )
    forward = MODELS[model][0]
    ref, ref_cache = forward(*arrays_of(model, inputs), form="recurrent")
    ref_grads = _grads(model, "recurrent", inputs, dout, dfinal)
    for C in (4, 64):
        out, cache = forward(*arrays_of(model, inputs), form="chunkwise", chunk_size=C)
        np.testing.assert_allclose(out, ref, atol=1e-10, rtol=0, err_msg=f"C={C}")
        got = _grads(model, "chunkwise", inputs, dout, dfinal, chunk_size=C)
        for a, b in zip(got, ref_grads, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-10, rtol=0, err_msg=f"C={C}")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("form", FORMS)
def test_backward_matches_finite_differences_with_random_dout(model, form):
    rng = np.random.default_rng(3)
    inputs = make_inputs(rng, n=7, lead=(2, 2))
    names = ("q", "k", "v") + MODELS[model][2] + ("initial_state",)
    dout = rng.standard_normal((2, 2, 7, d_v))
    dfinal = rng.standard_normal((2, 2, d_k, d_v))
    forward = MODELS[model][0]

    def f(p):  # out and the final state, contracted with (dout, dfinal)
        out, cache = forward(*(p[n] for n in names), form=form, chunk_size=3)
        return np.concatenate([out.ravel(), cache.final_state.ravel()])

    both = np.concatenate([dout.ravel(), dfinal.ravel()])
    numeric = numerical_grads(f, {n: inputs[n] for n in names}, both)
    analytic = _grads(model, form, inputs, dout, dfinal, chunk_size=3)
    for name, a in zip(names, analytic, strict=True):
        np.testing.assert_allclose(a, numeric[name], atol=1e-7, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("form", FORMS)
def test_state_carries_across_segments_with_gradients(model, form):
    rng = np.random.default_rng(4)
    inputs = make_inputs(rng)
    forward, backward, gates = MODELS[model]
    names = ("q", "k", "v") + gates
    dout = rng.standard_normal((B, H, N, d_v))
    whole, whole_cache = forward(*arrays_of(model, inputs), form=form, chunk_size=3)
    whole_grads = backward(dout, whole_cache)
    cuts, state, caches, outs = (
        [(0, 4), (4, 5), (5, N)],
        inputs["initial_state"],
        [],
        [],
    )
    for a, b in cuts:
        seg = [inputs[n][..., a:b, :] if inputs[n].ndim == 4 else inputs[n][..., a:b]
               for n in names]  # fmt: skip
        out, cache = forward(*seg, state, form=form, chunk_size=3)
        outs.append(out)
        caches.append(cache)
        state = cache.final_state
    np.testing.assert_allclose(np.concatenate(outs, axis=-2), whole, atol=1e-10)
    np.testing.assert_allclose(state, whole_cache.final_state, atol=1e-10)
    dstate, pieces = None, []
    for (a, b), cache in reversed(list(zip(cuts, caches, strict=True))):
        if dstate is not None:
            cache = R.with_final_state_grad(cache, dstate)
        grads = backward(dout[..., a:b, :], cache)
        pieces.append(grads[:-1])
        dstate = grads[-1]
    np.testing.assert_allclose(dstate, whole_grads[-1], atol=1e-10)
    for i, name in enumerate(names):
        axis = -2 if inputs[name].ndim == 4 else -1
        joined = np.concatenate([p[i] for p in reversed(pieces)], axis=axis)
        np.testing.assert_allclose(joined, whole_grads[i], atol=1e-10, err_msg=name)


@pytest.mark.parametrize("model", MODELS)
def test_no_initial_state_is_the_zero_state_and_its_gradient_is_returned(model):
    rng = np.random.default_rng(5)
    inputs = make_inputs(rng)
    forward, backward, _ = MODELS[model]
    arrays = arrays_of(model, inputs)[:-1]
    dout = rng.standard_normal((B, H, N, d_v))
    out0, c0 = forward(*arrays)
    out1, c1 = forward(*arrays, np.zeros((B, H, d_k, d_v)))
    np.testing.assert_array_equal(out0, out1)
    g0, g1 = backward(dout, c0), backward(dout, c1)
    assert g0[-1].shape == (B, H, d_k, d_v) and np.abs(g0[-1]).max() > 0
    for a, b in zip(g0, g1, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("form", FORMS)
def test_inputs_are_not_modified(model, form):
    rng = np.random.default_rng(6)
    inputs = make_inputs(rng)
    before = {n: a.copy() for n, a in inputs.items()}
    forward, backward, _ = MODELS[model]
    out, cache = forward(*arrays_of(model, inputs), form=form, chunk_size=4)
    dout, dfinal = rng.standard_normal(out.shape), rng.standard_normal((B, H, d_k, d_v))
    kept = dfinal.copy()
    backward(dout, R.with_final_state_grad(cache, dfinal))
    backward(dout, cache)  # a backward does not consume its cache
    for name, a in inputs.items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
    np.testing.assert_array_equal(dfinal, kept)


@pytest.mark.parametrize("model", MODELS)
def test_causality_through_the_backward(model):
    """A one-hot dout at position i gives no gradient to positions after i."""
    rng = np.random.default_rng(7)
    inputs = make_inputs(rng)
    forward, backward, _ = MODELS[model]
    for form in FORMS:
        _, cache = forward(*arrays_of(model, inputs), form=form, chunk_size=4)
        dout = np.zeros((B, H, N, d_v))
        dout[..., 5, :] = rng.standard_normal((B, H, d_v))
        for g in backward(dout, cache)[:-1]:
            later = g[..., 6:, :] if g.ndim == 4 else g[..., 6:]
            assert np.all(later == 0), form


@pytest.mark.parametrize("model", ["gla", "mamba2", "gated_deltanet"])
def test_a_gate_of_zeros_takes_the_ungated_path_with_the_same_gradients(model):
    # the chunkwise form skips every decay when a group's gate is all zero (linear
    # attention, DeltaNet); a gated model given zeros must still get d(gate)
    rng = np.random.default_rng(9)
    inputs = make_inputs(rng)
    inputs["log_alpha"][...] = 0.0
    inputs["log_alpha_channels"][...] = 0.0
    dout = rng.standard_normal((B, H, N, d_v))
    ref = _grads(model, "recurrent", inputs, dout)
    got = _grads(model, "chunkwise", inputs, dout)
    assert np.abs(ref[3]).max() > 0.1  # the gate's gradient is not zero
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)


def test_retention_is_mamba2_with_a_constant_gate_and_gla_with_equal_channels():
    inputs = make_inputs(np.random.default_rng(8))
    q, k, v, S0 = (inputs[n] for n in ("q", "k", "v", "initial_state"))
    gamma = np.array([0.9, 0.5, 0.99])
    out_r, _ = R.retention_forward(q, k, v, S0, gamma=gamma)
    la = np.broadcast_to(np.log(gamma)[:, None], (B, H, N))
    out_m, _ = R.mamba2_forward(q, k, v, la, S0)
    out_g, _ = R.gla_forward(q, k, v, np.repeat(la[..., None], d_k, axis=-1), S0)
    np.testing.assert_allclose(out_r, out_m, atol=1e-12)
    np.testing.assert_allclose(out_g, out_m, atol=1e-12)


def test_gated_deltanet_without_decay_is_deltanet_and_linear_attn_is_gamma_one():
    inputs = make_inputs(np.random.default_rng(9))
    q, k, v, beta, S0 = (inputs[n] for n in ("q", "k", "v", "beta", "initial_state"))
    out_d, _ = R.deltanet_forward(q, k, v, beta, S0)
    out_g, _ = R.gated_deltanet_forward(q, k, v, np.zeros((B, H, N)), beta, S0)
    np.testing.assert_allclose(out_g, out_d, atol=1e-12)
    out_l, _ = R.linear_attn_forward(q, k, v, S0)
    out_r, _ = R.retention_forward(q, k, v, S0, gamma=1.0)
    np.testing.assert_allclose(out_r, out_l, atol=1e-12)


def test_linear_attn_and_deltanet_equal_the_memory_subpackage_with_scale_one():
    inputs = make_inputs(np.random.default_rng(10))
    q, k, v, beta = (inputs[n] for n in ("q", "k", "v", "beta"))
    expected, _ = sum_rule_forward(q, k, v)
    np.testing.assert_allclose(R.linear_attn_forward(q, k, v, scale=1.0)[0], expected,
                               atol=1e-12)  # fmt: skip
    expected, mem_cache = delta_rule_forward(q, k, v, beta)
    out, cache = R.deltanet_forward(q, k, v, beta, scale=1.0)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(cache.final_state, mem_cache.final_state, atol=1e-12)


def test_parallel_strips_and_channel_blocks_do_not_change_anything(monkeypatch):
    rng = np.random.default_rng(11)
    inputs = make_inputs(rng, n=40)
    dout = rng.standard_normal((B, H, 40, d_v))
    expected = {
        m: _grads(m, "recurrent", inputs, dout) for m in ("gla", "gated_deltanet")
    }
    monkeypatch.setattr(parallel, "MAX_ROWS", 7)  # 6 strips, the last one short
    monkeypatch.setattr(decay, "BUDGET", 100)  # and short strips
    monkeypatch.setattr(chunkwise, "GROUP_TOKENS", 20)  # groups of chunks
    for model, ref in expected.items():
        for form, C in (("parallel", 1), ("chunkwise", 16), ("chunkwise", 13)):
            got = _grads(model, form, inputs, dout, chunk_size=C)
            for a, b in zip(got, ref, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-10, err_msg=f"{model} {form}")


@pytest.mark.parametrize("C", [1, 2, 15, 16, 17, 33, 64, 100])
def test_unit_lower_inverse_is_the_inverse(C):
    L = np.tril(0.3 * np.random.default_rng(C).standard_normal((2, 3, C, C)), -1)
    T = triangular.unit_lower_inverse(L)
    np.testing.assert_allclose(T @ (np.eye(C) + L), np.broadcast_to(np.eye(C), L.shape),
                               atol=1e-12)  # fmt: skip
    assert np.all(np.triu(T, 1) == 0)


def test_diagonal_is_a_writable_view_whatever_the_strides():
    X = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)
    for Y in (X, np.swapaxes(X, -1, -2), X[:, ::-1, ::-1]):
        np.testing.assert_array_equal(
            triangular.diagonal(Y), np.diagonal(Y, axis1=-2, axis2=-1)
        )
    triangular.diagonal(np.swapaxes(X, -1, -2))[...] = -1.0
    assert np.all(np.diagonal(X, axis1=-2, axis2=-1) == -1.0)
    assert np.sum(X == -1.0) == 8


def test_decay_matrix_is_masked_before_exp():
    b = np.cumsum(-np.full((1, 3000, 1), 1.0), axis=1)  # b down to -3000
    mask = np.tril(np.ones((3000, 3000), dtype=bool))
    with np.errstate(over="raise", invalid="raise"):
        D = decay.decay_matrix(b, b, mask)
    assert np.all(D <= 1) and np.all(D[~np.broadcast_to(mask, D.shape)] == 0)


@pytest.mark.parametrize("C", [1, 2, 5, 16, 33, 64])
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("short", [True, False])
def test_causal_decay_matrix_is_the_masked_exp(C, strict, short, monkeypatch):
    # by one outer product (decays that span little) and by halving (otherwise)
    monkeypatch.setattr(decay, "short_span", lambda b: short)
    rng = np.random.default_rng(C)
    b = np.cumsum(-rng.uniform(0, 3, (2, 3, C, 1)), axis=-2)
    mask = np.tri(C, k=-1 if strict else 0, dtype=bool)
    got = decay.causal_decay_matrix(b, strict=strict)
    np.testing.assert_allclose(got, decay.decay_matrix(b, b, mask), rtol=1e-13, atol=0)


def test_causal_decay_matrix_never_overflows():
    b = np.cumsum(-np.full((1, 3000, 1), 1.0), axis=1)  # b down to -3000
    with np.errstate(over="raise", invalid="raise"):
        D = decay.causal_decay_matrix(b)
    assert (
        np.all(D <= 1)
        and np.all(np.triu(D, 1) == 0)
        and np.all(np.diagonal(D, axis1=-2, axis2=-1) == 1)
    )


def _scores_by_einsum(q, k, b, strict):
    """P_ij = sum_c q_ic k_jc e^(b_ic - b_jc) for j <= i, from the (C, C, d) tensor."""
    C = q.shape[-2]
    diff = b[..., :, None, :] - b[..., None, :, :]  # (..., C, C, G)
    mask = np.tri(C, k=-1 if strict else 0, dtype=bool)[..., None]
    gamma = np.exp(np.where(mask, diff, -np.inf))
    return np.einsum("...ic,...jc,...ijc->...ij", q, k, gamma)


@pytest.mark.parametrize("C", [1, 5, 16, 33])
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("short", [True, False])
@pytest.mark.parametrize("G", [1, 4])
def test_scores_by_one_product_and_by_halving_or_decay_matrix(
    C, strict, short, G, monkeypatch
):
    """causal_scores has two ways: one product through the block's last row when
    the decays span little; otherwise the decay matrix (scalar gate, G = 1) or
    halving (per channel). Each equals the (C, C, d) tensor form, forward and
    backward (finite differences)."""
    monkeypatch.setattr(decay, "short_span", lambda b: short)
    rng = np.random.default_rng(C)
    q, k = rng.standard_normal((2, 2, 3, C, 4))
    b = np.cumsum(-rng.uniform(0, 2, (2, 3, C, G)), axis=-2)
    P = decay.causal_scores(q, k, b, strict=strict)
    np.testing.assert_allclose(
        P, _scores_by_einsum(q, k, b, strict), rtol=1e-12, atol=1e-14
    )
    dP = rng.standard_normal(P.shape)
    got = decay.causal_scores_backward(dP, q, k, b, strict=strict)

    def scores(x):
        return _scores_by_einsum(x["q"], x["k"], x["b"], strict)

    want = numerical_grads(scores, {"q": q, "k": k, "b": b}, dP)
    for g, name in zip(got, "qkb", strict=True):
        np.testing.assert_allclose(g, want[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_a_long_span_of_decays_takes_the_halving_path():
    b = np.cumsum(-np.full((1, 64, 2), 2.0), axis=-2)  # spans 126 > 88 / 3 in float32
    assert not decay.short_span(b.astype(np.float32)) and decay.short_span(b)
    q = np.ones((1, 64, 2), np.float32)
    with np.errstate(over="raise", invalid="raise"):
        P = decay.causal_scores(q, q, b.astype(np.float32))
    assert np.all(np.isfinite(P)) and np.all(np.triu(P, 1) == 0)


def test_retention_default_decays_are_retnets():
    np.testing.assert_allclose(R.retention_decays(3), [1 - 2**-5, 1 - 2**-6, 1 - 2**-7])
    inputs = make_inputs(np.random.default_rng(12))
    q, k, v = (inputs[n] for n in "qkv")
    out, _ = R.retention_forward(q, k, v)
    by_hand, _ = R.retention_forward(q, k, v, gamma=R.retention_decays(H))
    np.testing.assert_array_equal(out, by_hand)


@pytest.mark.parametrize("model", MODELS)
def test_float32_in_float32_out(model):
    inputs = make_inputs(np.random.default_rng(13), dtype=np.float32)
    forward, backward, _ = MODELS[model]
    for form in FORMS:
        out, cache = forward(*arrays_of(model, inputs), form=form)
        grads = backward(np.ones_like(out), cache)
        assert out.dtype == cache.final_state.dtype == np.float32
        assert all(g.dtype == np.float32 for g in grads)
        ref = oracle(model, {n: a.astype(np.float64) for n, a in inputs.items()},
                     1 / np.sqrt(d_k))[0]  # fmt: skip
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)

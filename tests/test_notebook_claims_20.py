"""Claims in notebooks/20_gated_linear_recurrences.ipynb, recomputed from the package
with the notebook's seeds (timings are never asserted: they depend on the machine)."""

import numpy as np

from attention_np import recurrences as R
from attention_np.recurrences import decay


def _section_one_inputs():
    """The notebook's first arrays, drawn in its order from default_rng(0)."""
    rng = np.random.default_rng(0)
    B, H, N, d_k, d_v = 2, 3, 24, 8, 5
    q = rng.standard_normal((B, H, N, d_k))
    k = rng.standard_normal((B, H, N, d_k))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((B, H, N, d_v))
    log_a = -rng.uniform(0.01, 0.3, (B, H, N))
    log_a_ch = -rng.uniform(0.01, 0.3, (B, H, N, d_k))
    beta = rng.uniform(0.2, 0.9, (B, H, N))
    S0 = rng.standard_normal((B, H, d_k, d_v))
    return q, k, v, log_a, log_a_ch, beta, S0


def test_every_form_of_every_model_agrees_to_rounding():
    """Section 3: 'max |parallel - recurrent|' and '... chunkwise ...' below 1e-10."""
    q, k, v, log_a, log_a_ch, beta, S0 = _section_one_inputs()
    models = [
        (R.linear_attn_forward, R.linear_attn_backward, (q, k, v)),
        (R.retention_forward, R.retention_backward, (q, k, v)),
        (R.gla_forward, R.gla_backward, (q, k, v, log_a_ch)),
        (R.mamba2_forward, R.mamba2_backward, (q, k, v, log_a)),
        (R.deltanet_forward, R.deltanet_backward, (q, k, v, beta)),
        (R.gated_deltanet_forward, R.gated_deltanet_backward, (q, k, v, log_a, beta)),
    ]
    dout = np.random.default_rng(1).standard_normal(q.shape[:-1] + (v.shape[-1],))
    for fwd, bwd, arrays in models:
        ref, ref_cache = fwd(*arrays, S0, form="recurrent")
        ref_grads = bwd(dout, ref_cache)
        for form in ("parallel", "chunkwise"):
            out, cache = fwd(*arrays, S0, form=form, chunk_size=5)
            assert np.abs(out - ref).max() < 1e-10
            for a, b in zip(bwd(dout, cache), ref_grads, strict=True):
                assert np.abs(a - b).max() < 1e-10


def test_online_regression_claims():
    """Section 2: the delta rule converges (error 0.03 after 400 pairs), the sum rule
    overshoots by about t / d_k = 25, a decay caps the error near its plateau."""
    reg = np.random.default_rng(19)
    dk, dv, T = 16, 8, 400
    M = reg.standard_normal((dk, dv))
    K = reg.standard_normal((1, T, dk))
    K /= np.linalg.norm(K, axis=-1, keepdims=True)
    V = K @ M + 0.05 * reg.standard_normal((1, T, dv))
    K_test = reg.standard_normal((256, dk)) / np.sqrt(dk)

    def error(cache):
        diff = K_test @ (cache.final_state - M)
        return np.linalg.norm(diff) / np.linalg.norm(K_test @ M)

    ones = np.ones((1, T))
    lin = error(R.linear_attn_forward(K, K, V)[1])
    ret = error(R.retention_forward(K, K, V, gamma=0.95)[1])
    delta = error(R.deltanet_forward(K, K, V, 0.5 * ones)[1])
    gated = error(R.gated_deltanet_forward(K, K, V, np.log(0.99) * ones, 0.5 * ones)[1])
    assert 0.8 * T / dk < lin < 1.2 * T / dk
    assert delta < 0.05 < gated < ret < 1.0


def test_log_space_claims():
    """Section 3: e^b_i e^-b_j is NaN after 1,000 tokens of alpha = e^-1; the
    difference gives e^-1; the Mamba-2 reset leaves less than 1e-3 across it."""
    b = np.cumsum(np.full(1000, -1.0))
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(np.exp(b[-1]) * np.exp(-b[-2]))
    assert np.isclose(np.exp(b[-1] - b[-2]), np.exp(-1.0))
    mrng = np.random.default_rng(9)
    g = np.log(mrng.uniform(0.75, 0.98, (16, 1)))
    g[9] = np.log(1e-3)
    b_m2 = np.cumsum(g, axis=0)
    D = decay.decay_matrix(b_m2, b_m2, np.tril(np.ones((16, 16), dtype=bool)))
    assert D[12, 5] < 1e-3 and np.all(D[9:, :9] <= 1e-3 * (1 + 1e-12))


def test_deltanet_implicit_attention_is_causal_with_negative_entries():
    """Section 3: 'its implicit attention matrix ... has negative entries'."""
    mrng = np.random.default_rng(9)
    mrng.uniform(0.75, 0.98, (16, 1))  # the Mamba-2 gates drawn first
    qd, kd = mrng.standard_normal((16, 4)), mrng.standard_normal((16, 4))
    kd /= np.linalg.norm(kd, axis=-1, keepdims=True)
    W = R.deltanet_forward(qd, kd, np.eye(16), np.full(16, 0.9), scale=1.0)[0]
    assert W.min() < -1.0 and np.all(np.triu(W, 1) == 0)


def test_gated_deltanet_at_16k_tokens_is_finite_in_float32():
    """Section 3: N = 16384, float32, strong decays: finite outputs and gradients."""
    long = np.random.default_rng(16384)
    x = [long.standard_normal((1, 2, 16384, 16)).astype(np.float32) for _ in range(3)]
    x[1] /= np.linalg.norm(x[1], axis=-1, keepdims=True)
    g = -long.uniform(2.0, 8.0, (1, 2, 16384)).astype(np.float32)
    beta = long.uniform(0.0, 1.0, (1, 2, 16384)).astype(np.float32)
    with np.errstate(over="raise", invalid="raise"):
        out, cache = R.gated_deltanet_forward(*x, g, beta)
        grads = R.gated_deltanet_backward(np.ones_like(out), cache)
    assert g.sum(-1).min() < -8e4
    assert np.isfinite(out).all() and all(np.isfinite(a).all() for a in grads)

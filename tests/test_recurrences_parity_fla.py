"""Parity of attention_np.recurrences with flash-linear-attention's pure-PyTorch
reference implementations (``fla/ops/*/naive.py`` in the fla-core wheel).

Optional: skipped unless torch, einops and fla-core are installed
(``pip install torch==2.13.0 einops; pip install --no-deps fla-core``). Importing
``fla.ops`` needs Triton, so each ``naive.py`` is loaded directly from its file: it
needs only torch and einops. The references compute in float32 whatever the input
dtype, so the comparison tolerance is float32's.

Convention differences (ours -> fla), all converted explicitly below:
- layout: ours (B, H, N, d), heads before the length. fla's naive functions mostly
  take (B, T, H, d); ``retention`` and ``delta_rule`` naive functions take
  (B, H, T, d).
- scale: both multiply q by ``scale`` (default d_k^-1/2); GLA's naive recurrence
  always uses d_k^-1/2, retention's too.
- gates: both pass log-decays (fla: ``g`` per head for simple GLA / Gated DeltaNet,
  ``gk`` per key channel for GLA); retention's per-head decays are RetNet's
  1 - 2^(-5 - h) in both.
- state: both (d_k, d_v) with o_t = q_t S_t; fla returns the final state as a second
  output (``output_final_state``), ours is ``cache.final_state``.
- Gated DeltaNet argument order: fla's naive_recurrent takes (q, k, v, beta, g),
  naive_chunk (q, k, v, g, beta); ours is always (q, k, v, log_alpha, beta).
- normalisation: none on either side (fla's linear-attention ``normalize=False``).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional)")
pytest.importorskip("einops", reason="einops is not installed (fla's naive code)")
FLA = importlib.util.find_spec("fla")
if FLA is None or not FLA.submodule_search_locations:
    pytest.skip("fla-core is not installed (optional)", allow_module_level=True)

from attention_np import recurrences as R  # noqa: E402

B, H, N, d_k, d_v = 2, 3, 70, 8, 6  # N not a multiple of fla's chunk sizes
TOL = {"atol": 2e-5, "rtol": 2e-4}


def naive(op):
    """fla/ops/<op>/naive.py as a module, without importing fla.ops (Triton)."""
    path = Path(FLA.submodule_search_locations[0]) / "ops" / op / "naive.py"
    spec = importlib.util.spec_from_file_location(f"_fla_naive_{op}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def x():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((B, H, N, d_k))
    return {
        "q": rng.standard_normal((B, H, N, d_k)),
        "k": k / np.linalg.norm(k, axis=-1, keepdims=True),
        "v": rng.standard_normal((B, H, N, d_v)),
        "g": -rng.uniform(0.01, 0.5, (B, H, N)),
        "gk": -rng.uniform(0.01, 0.5, (B, H, N, d_k)),
        "beta": rng.uniform(0.1, 0.9, (B, H, N)),
        "S0": rng.standard_normal((B, H, d_k, d_v)),
    }


def tensor(a):
    """A float32 leaf tensor (the references compute in float32 anyway)."""
    return torch.tensor(a, dtype=torch.float32, requires_grad=True)


def bthd(a):
    """Ours (B, H, N, ...) -> fla's (B, T, H, ...) float32 tensor."""
    return tensor(np.swapaxes(a, 1, 2))


def ours_bthd(t):
    return np.swapaxes(t.detach().numpy(), 1, 2)


def test_linear_attention(x):
    mod = naive("linear_attn")
    o, S = mod.naive_recurrent_linear_attn(
        bthd(x["q"]), bthd(x["k"]), bthd(x["v"]),
        initial_state=tensor(x["S0"]), output_final_state=True,
    )  # fmt: skip
    out, cache = R.linear_attn_forward(x["q"], x["k"], x["v"], x["S0"])
    np.testing.assert_allclose(out, ours_bthd(o), **TOL)
    np.testing.assert_allclose(cache.final_state, S.detach().numpy(), **TOL)


def test_retention_uses_retnets_decays_and_bhtd_layout(x):
    o = naive("retention").naive_retention(*(tensor(x[n]) for n in "qkv"))
    out, _ = R.retention_forward(x["q"], x["k"], x["v"], form="parallel")
    np.testing.assert_allclose(out, o.detach().numpy(), **TOL)


def test_gla_output_state_and_gradients(x):
    args = [bthd(x[n]) for n in ("q", "k", "v", "gk")]
    S0 = tensor(x["S0"])
    o, S = naive("gla").naive_recurrent_gla(*args, S0, output_final_state=True)
    out, cache = R.gla_forward(x["q"], x["k"], x["v"], x["gk"], x["S0"])
    np.testing.assert_allclose(out, ours_bthd(o), **TOL)
    np.testing.assert_allclose(cache.final_state, S.detach().numpy(), **TOL)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    (o * torch.tensor(np.swapaxes(dout, 1, 2), dtype=torch.float32)).sum().backward()
    ours = R.gla_backward(dout, cache)
    for g, t in zip(ours[:4], args, strict=True):
        np.testing.assert_allclose(g, ours_bthd(t.grad), **TOL)
    np.testing.assert_allclose(ours[4], S0.grad.numpy(), **TOL)


@pytest.mark.parametrize("fla_form", ["recurrent", "chunk", "parallel"])
def test_mamba2_ssd_is_flas_simple_gla(x, fla_form):
    mod = naive("simple_gla")
    args = [bthd(x[n]) for n in ("q", "k", "v", "g")]
    with_state = fla_form != "parallel"  # the parallel reference has no S0
    S0 = x["S0"] if with_state else None
    out, _ = R.mamba2_forward(x["q"], x["k"], x["v"], x["g"], S0, scale=0.3)
    if fla_form == "recurrent":
        o, _ = mod.naive_recurrent_simple_gla(*args, 0.3, tensor(S0))
    elif fla_form == "chunk":
        o, _ = mod.naive_chunk_simple_gla(*args, tensor(S0), chunk_size=16,
                                          scale=0.3)  # fmt: skip
    else:
        o, _ = mod.naive_parallel_simple_gla(*args, scale=0.3)
    np.testing.assert_allclose(out, ours_bthd(o), **TOL)


def test_deltanet_bhtd_layout_and_gradients(x):
    mod = naive("delta_rule")
    args = [tensor(x[n]) for n in ("q", "k", "v", "beta")]
    S0 = tensor(x["S0"])
    o, S = mod.delta_rule_recurrence(*args, initial_state=S0)
    out, cache = R.deltanet_forward(x["q"], x["k"], x["v"], x["beta"], x["S0"])
    np.testing.assert_allclose(out, o.detach().numpy(), **TOL)
    np.testing.assert_allclose(cache.final_state, S.detach().numpy(), **TOL)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    (o * torch.tensor(dout, dtype=torch.float32)).sum().backward()
    ours = R.deltanet_backward(dout, cache)
    for g, t in zip(ours, args + [S0], strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), **TOL)


def test_deltanet_against_flas_chunkwise_ut_form(x):
    n = 64  # fla's naive chunkwise form needs N % chunk == 0 and has no S0
    sl = {m: x[m][..., :n, :] if x[m].ndim == 4 else x[m][..., :n] for m in x}
    args = [tensor(sl[m]).detach() for m in ("q", "k", "v", "beta")]
    o, S = naive("delta_rule").delta_rule_chunkwise(*args, chunk_size=16)
    out, cache = R.deltanet_forward(sl["q"], sl["k"], sl["v"], sl["beta"])
    np.testing.assert_allclose(out, o.numpy(), **TOL)
    np.testing.assert_allclose(cache.final_state, S.numpy(), **TOL)


@pytest.mark.parametrize("fla_form", ["recurrent", "chunk"])
def test_gated_deltanet(x, fla_form):
    mod = naive("gated_delta_rule")
    q, k, v, g, beta = (bthd(x[n]) for n in ("q", "k", "v", "g", "beta"))
    S0 = tensor(x["S0"])
    if fla_form == "recurrent":  # fla: (q, k, v, beta, g)
        o, S = mod.naive_recurrent_gated_delta_rule(
            q, k, v, beta, g, initial_state=S0, output_final_state=True
        )
    else:  # fla: (q, k, v, g, beta)
        o, S = mod.naive_chunk_gated_delta_rule(
            q, k, v, g, beta, chunk_size=16, initial_state=S0, output_final_state=True
        )
    out, cache = R.gated_deltanet_forward(*(x[n] for n in ("q", "k", "v", "g", "beta",
                                                          "S0")))  # fmt: skip
    np.testing.assert_allclose(out, ours_bthd(o), **TOL)
    np.testing.assert_allclose(cache.final_state, S.detach().numpy(), **TOL)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    (o * torch.tensor(np.swapaxes(dout, 1, 2), dtype=torch.float32)).sum().backward()
    ours = R.gated_deltanet_backward(dout, cache)
    for grad, t in zip(ours[:5], (q, k, v, g, beta), strict=True):
        np.testing.assert_allclose(grad, ours_bthd(t.grad), **TOL)
    np.testing.assert_allclose(ours[5], S0.grad.numpy(), **TOL)

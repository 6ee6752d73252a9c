"""Parity with PyTorch: attention_forward/backward against
``torch.nn.functional.scaled_dot_product_attention`` (SDPA) and mha_forward/backward
against ``torch.nn.MultiheadAttention``; outputs and every gradient, in float64.

Optional: the module is skipped when torch is not installed (.ci/run installs the CPU
wheel torch==2.13.0 only when pip finds it on local disk).

PyTorch has two opposite boolean mask conventions; this file converts explicitly:
- SDPA ``attn_mask`` (bool): True = may attend, the attention_np convention, so our
  masks are passed unchanged. ``is_causal=True`` is the top-left causal mask
  (``causal_mask(N, M)``); ``torch.nn.attention.bias.causal_lower_right(N, M)`` is the
  bottom-right one (``causal_mask(N, M, align="bottom_right")``).
- nn.MultiheadAttention: a bool ``attn_mask`` (N, M) or (B * H, N, M) is True where
  attending is NOT allowed, and ``key_padding_mask`` (B, M) is True for keys to
  ignore. So ``attn_mask = ~mask`` and
  ``key_padding_mask = ~padding_mask(lengths, M)[:, 0, 0, :]``.

Fully masked rows: SDPA (torch >= 2.5) gives a zero output and zero gradients, as we do.
nn.MultiheadAttention with ``need_weights=True`` (its default) takes another code path
and still returns NaN for such rows on torch 2.13.0 (REFERENCE.md section 1.4), so
fully masked rows are compared through SDPA and through MultiheadAttention with
``need_weights=False`` only; the attention weights are compared on masks without them.

Layout: torch's Linear stores its weight as (out, in) and computes x @ W^T + b; ours
is (in, out) and x @ W + b, so W_ours = W_torch.T. MultiheadAttention packs W_q, W_k,
W_v into one ``in_proj_weight`` (3D, D) when kdim == vdim == embed_dim, and keeps
separate ``q_proj_weight`` (D, D), ``k_proj_weight`` (D, kdim), ``v_proj_weight``
(D, vdim) otherwise; the three biases always sit in ``in_proj_bias`` (3D,).
Dropout is not compared: the two libraries draw their random masks differently.
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    minversion="2.5",  # safe softmax for fully masked rows
    reason="PyTorch is not installed; the parity tests are optional "
    "(install torch>=2.5 to run them)",
)
F = torch.nn.functional

import attention_np as an  # noqa: E402

B, H, N, M, d, d_v = 2, 3, 4, 5, 6, 7
D, D_KV = 12, 8


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The test machine is shared: keep torch's intra-op thread pool at one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def leaf(a):
    return torch.tensor(a, requires_grad=True)


def numpy_of(t):
    return t.detach().numpy()


def assert_close(ours, theirs, what, atol=1e-12):
    np.testing.assert_allclose(ours, theirs, atol=atol, rtol=1e-10, err_msg=what)


# --- scaled dot-product attention ---------------------------------------------------


def dead_rows_mask(rng, n=N, m=M):
    mask = rng.random((B, H, n, m)) > 0.4
    mask[0, 1, 2] = False  # a fully masked query row
    mask[1, :, 0] = False  # the same query fully masked in every head
    return mask


def torch_sdpa(q, k, v, dout, **kwargs):
    """out, dq, dk, dv from torch SDPA; kwargs go to SDPA unchanged."""
    tq, tk, tv = leaf(q), leaf(k), leaf(v)
    out = F.scaled_dot_product_attention(tq, tk, tv, **kwargs)
    out.backward(torch.from_numpy(dout))
    return numpy_of(out), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def ours_sdpa(q, k, v, dout, mask=None, scale=None, causal=False, align="top_left"):
    out, cache = an.attention_forward(
        q, k, v, mask, causal=causal, align=align, scale=scale
    )
    return (out, *an.attention_backward(dout, cache))


def compare_sdpa(
    rng, ours_kwargs, torch_kwargs, n=N, m=M, dtype=np.float64, atol=1e-12
):
    q = rng.standard_normal((B, H, n, d)).astype(dtype)
    k = rng.standard_normal((B, H, m, d)).astype(dtype)
    v = rng.standard_normal((B, H, m, d_v)).astype(dtype)
    dout = rng.standard_normal((B, H, n, d_v)).astype(dtype)
    ours = ours_sdpa(q, k, v, dout, **ours_kwargs)
    theirs = torch_sdpa(q, k, v, dout, **torch_kwargs)
    for name, a, b in zip(("out", "dq", "dk", "dv"), ours, theirs, strict=True):
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), name
        assert_close(a, b, name, atol=atol)
    return ours


def test_sdpa_without_mask(rng):
    compare_sdpa(rng, {}, {})


def test_sdpa_custom_scale(rng):
    compare_sdpa(rng, {"scale": 0.3}, {"scale": 0.3})


def test_sdpa_is_causal_is_our_top_left_causal_mask_with_n_not_m(rng):
    compare_sdpa(rng, {"mask": an.causal_mask(N, M)}, {"is_causal": True})


def test_sdpa_is_causal_is_our_causal_flag_with_n_not_m(rng):
    compare_sdpa(rng, {"causal": True}, {"is_causal": True})
    compare_sdpa(rng, {"causal": True, "align": "top_left"}, {"is_causal": True})


def test_sdpa_causal_as_a_boolean_mask_needs_no_conversion(rng):
    mask = an.causal_mask(N, M)
    compare_sdpa(rng, {"mask": mask}, {"attn_mask": torch.from_numpy(mask)})


def test_sdpa_boolean_mask_with_fully_masked_rows_gives_zeros_in_both(rng):
    mask = dead_rows_mask(rng)
    out, dq, _, _ = compare_sdpa(
        rng, {"mask": mask}, {"attn_mask": torch.from_numpy(mask)}
    )
    assert np.all(out[0, 1, 2] == 0) and np.all(dq[1, :, 0] == 0)


def test_sdpa_padding_and_causal_masks_broadcast_alike(rng):
    mask = an.combine_masks(an.padding_mask([5, 2], M), an.causal_mask(N, M))
    assert mask.shape == (B, 1, N, M)
    compare_sdpa(rng, {"mask": mask}, {"attn_mask": torch.from_numpy(mask)})


def test_sdpa_all_keys_padded_away_gives_zeros_in_both(rng):
    mask = an.padding_mask([0, 3], M)  # sequence 0 has no real key at all
    out, *_ = compare_sdpa(rng, {"mask": mask}, {"attn_mask": torch.from_numpy(mask)})
    assert np.all(out[0] == 0)


# With N > M the first N - M queries see no key. torch warns that this "will produce
# NaNs", but since torch 2.5 SDPA returns zeros there, as we do (asserted finite).
@pytest.mark.filterwarnings("ignore:Lower right causal bias will produce NaNs")
@pytest.mark.parametrize("n,m", [(1, 5), (3, 5), (5, 5), (5, 3)])
def test_bottom_right_causal_matches_torch_causal_lower_right(rng, n, m):
    lower_right = pytest.importorskip("torch.nn.attention.bias").causal_lower_right
    compare_sdpa(
        rng,
        {"mask": an.causal_mask(n, m, align="bottom_right")},
        {"attn_mask": lower_right(n, m)},
        n=n,
        m=m,
    )
    compare_sdpa(
        rng,
        {"causal": True, "align": "bottom_right"},
        {"attn_mask": lower_right(n, m)},
        n=n,
        m=m,
    )


def test_sdpa_float32_agrees_to_float32_precision(rng):
    mask = dead_rows_mask(rng)
    compare_sdpa(
        rng,
        {"mask": mask},
        {"attn_mask": torch.from_numpy(mask)},
        dtype=np.float32,
        atol=2e-5,
    )


@pytest.mark.parametrize("G", [1, 3])
@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_gqa_matches_sdpa_enable_gqa(rng, G, align):
    from attention_np.decoding import gqa_attention_backward, gqa_attention_forward

    lower_right = pytest.importorskip("torch.nn.attention.bias").causal_lower_right
    Hq = 6  # query heads; SDPA repeats each of the G key/value heads Hq / G times
    q = rng.standard_normal((B, Hq, N, d))
    k, v = rng.standard_normal((B, G, M, d)), rng.standard_normal((B, G, M, d_v))
    dout = rng.standard_normal((B, Hq, N, d_v))
    out, cache = gqa_attention_forward(q, k, v, causal=True, align=align)
    ours = (out, *gqa_attention_backward(dout, cache))
    causal = {"is_causal": True} if align == "top_left" else {}
    if align == "bottom_right":
        causal = {"attn_mask": lower_right(N, M)}
    theirs = torch_sdpa(q, k, v, dout, enable_gqa=True, **causal)
    for name, a, b in zip(("out", "dq", "dk", "dv"), ours, theirs, strict=True):
        assert_close(a, b, name)


# --- nn.MultiheadAttention ------------------------------------------------------------


def random_params(rng, d_kv, bias):
    """init_mha_params with non-zero biases (torch starts its biases at zero too)."""
    params = an.init_mha_params(D, H, rng=rng, d_kv=d_kv, bias=bias)
    for name in an.multihead.BIAS_KEYS if bias else ():
        params[name] = 0.5 * rng.standard_normal(D)
    return params


def torch_mha(params, d_kv, bias):
    """A float64 nn.MultiheadAttention holding copies of our parameters."""
    kdim = None if d_kv == D else d_kv  # kdim = vdim: one x_kv feeds keys and values
    mha = torch.nn.MultiheadAttention(
        D, H, bias=bias, kdim=kdim, vdim=kdim, batch_first=True, dtype=torch.float64
    )
    t = {name: torch.from_numpy(a.T.copy()) for name, a in params.items()}
    with torch.no_grad():  # torch computes x @ W^T + b: copy the transposes
        if mha.in_proj_weight is not None:  # packed (3D, D): rows [q; k; v]
            mha.in_proj_weight.copy_(torch.cat([t["W_q"], t["W_k"], t["W_v"]]))
        else:
            mha.q_proj_weight.copy_(t["W_q"])
            mha.k_proj_weight.copy_(t["W_k"])
            mha.v_proj_weight.copy_(t["W_v"])
        mha.out_proj.weight.copy_(t["W_o"])
        if bias:
            mha.in_proj_bias.copy_(torch.cat([t["b_q"], t["b_k"], t["b_v"]]))
            mha.out_proj.bias.copy_(t["b_o"])
    return mha


def torch_param_grads(mha, bias):
    """The gradients of a torch_mha module, renamed and transposed to our layout."""
    if mha.in_proj_weight is not None:
        W_q, W_k, W_v = mha.in_proj_weight.grad.chunk(3)
    else:
        W_q, W_k, W_v = (
            mha.q_proj_weight.grad,
            mha.k_proj_weight.grad,
            mha.v_proj_weight.grad,
        )
    grads = {
        "W_q": W_q.T,
        "W_k": W_k.T,
        "W_v": W_v.T,
        "W_o": mha.out_proj.weight.grad.T,
    }
    if bias:
        b_q, b_k, b_v = mha.in_proj_bias.grad.chunk(3)
        grads.update(
            {"b_q": b_q, "b_k": b_k, "b_v": b_v, "b_o": mha.out_proj.bias.grad}
        )
    return {name: g.numpy() for name, g in grads.items()}


def run_torch_mha(mha, x_q, x_kv, dout, self_attention, **kwargs):
    """out, dx_q, dx_kv (dx_kv None for self-attention: x_q.grad holds the sum)."""
    tq = leaf(x_q)
    tkv = tq if self_attention else leaf(x_kv)
    out, weights = mha(tq, tkv, tkv, **kwargs)
    out.backward(torch.from_numpy(dout))
    dx_kv = None if self_attention else tkv.grad.numpy()
    return numpy_of(out), tq.grad.numpy(), dx_kv, weights


def compare_mha(rng, *, cross, bias=True, mask=None, torch_masks=None, causal=False):
    """Our mha_forward/backward against nn.MultiheadAttention; returns our out."""
    d_kv = D_KV if cross else D
    x_q = rng.standard_normal((B, N, D))
    x_kv = rng.standard_normal((B, M, D_KV)) if cross else x_q
    dout = rng.standard_normal((B, N, D))
    params = random_params(rng, d_kv, bias)
    mha = torch_mha(params, d_kv, bias)
    out, cache = an.mha_forward(x_q, x_kv, params, mask, n_heads=H, causal=causal)
    dx_q, dx_kv, grads = an.mha_backward(dout, cache)
    t_out, t_dx_q, t_dx_kv, _ = run_torch_mha(
        mha, x_q, x_kv, dout, not cross, need_weights=False, **(torch_masks or {})
    )
    assert_close(out, t_out, "out")
    if cross:
        assert_close(dx_q, t_dx_q, "dx_q")
        assert_close(dx_kv, t_dx_kv, "dx_kv")
    else:  # x feeds the query, key and value paths
        assert_close(dx_q + dx_kv, t_dx_q, "dx")
    t_grads = torch_param_grads(mha, bias)
    assert set(grads) == set(t_grads)
    for name in grads:
        assert_close(grads[name], t_grads[name], name)
    return out


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
def test_mha_self_attention_matches_torch(rng, bias):
    compare_mha(rng, cross=False, bias=bias)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
def test_mha_cross_attention_with_kdim_vdim_matches_torch(rng, bias):
    compare_mha(rng, cross=True, bias=bias)


def test_mha_causal_mask_is_inverted_for_torch(rng):
    mask = an.causal_mask(N)
    compare_mha(
        rng,
        cross=False,
        mask=mask,
        torch_masks={"attn_mask": torch.from_numpy(~mask)},  # torch: True = blocked
    )


def test_mha_causal_flag_is_torch_inverted_causal_mask(rng):
    blocked = ~an.causal_mask(N, M)  # torch: True = blocked
    compare_mha(
        rng,
        cross=True,
        causal=True,
        torch_masks={"attn_mask": torch.from_numpy(blocked)},
    )


def test_mha_key_padding_mask_is_inverted_for_torch(rng):
    pad = an.padding_mask([5, 3], M)  # (B, 1, 1, M), True = real key
    compare_mha(
        rng,
        cross=True,
        mask=pad,
        torch_masks={"key_padding_mask": torch.from_numpy(~pad[:, 0, 0, :])},
    )


def test_mha_per_head_mask_uses_torch_batch_major_head_order(rng):
    # torch's 3-D attn_mask is (B * H, N, M) with index b * H + h
    mask = rng.random((B, H, N, M)) > 0.3
    mask[..., 0] = True  # no fully masked row here
    compare_mha(
        rng,
        cross=True,
        mask=mask,
        torch_masks={"attn_mask": torch.from_numpy(~mask.reshape(B * H, N, M))},
    )


def test_mha_fully_masked_rows_match_torch_with_need_weights_false(rng):
    # sequence 1 is all padding: every query of it is fully masked; its output is b_o
    pad = an.padding_mask([4, 0], M)
    causal = an.causal_mask(N, M)
    out = compare_mha(
        rng,
        cross=True,
        mask=an.combine_masks(pad, causal),
        torch_masks={
            "key_padding_mask": torch.from_numpy(~pad[:, 0, 0, :]),
            "attn_mask": torch.from_numpy(~causal),
        },
    )
    assert np.all(np.isfinite(out))


def test_mha_per_head_weights_match_torch_need_weights(rng):
    mask = an.causal_mask(N, M, align="bottom_right")  # N < M: no fully masked row
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D_KV))
    params = random_params(rng, D_KV, bias=True)
    _, cache = an.mha_forward(x_q, x_kv, params, mask, n_heads=H, causal=False)
    _, _, _, weights = run_torch_mha(
        torch_mha(params, D_KV, bias=True),
        x_q,
        x_kv,
        np.zeros((B, N, D)),
        False,
        attn_mask=torch.from_numpy(~mask),
        need_weights=True,
        average_attn_weights=False,
    )
    assert_close(cache.weights, numpy_of(weights), "weights")

"""merge_partials: any split of the keys, merged in any order or tree, is exact;
an empty block (lse = -inf) is the identity; merge_partials_forward/backward is a layer
(Partial in, Partial of gradients back) that matches finite differences."""

import itertools
import warnings

import numpy as np
import pytest
from conftest import fd_check

from attention_np import attention_forward
from attention_np.efficient import block_attention_forward
from attention_np.gradcheck import LayerCase, case_functions
from attention_np.parallel import (
    Partial,
    merge_partials,
    merge_partials_backward,
    merge_partials_forward,
)

B, H, N, M, d, d_v = 2, 3, 5, 11, 4, 6
FORMS = ("exp", "sigmoid")


@pytest.fixture
def qkv(rng):
    q = rng.standard_normal((B, H, N, d))
    k = rng.standard_normal((B, H, M, d))
    v = rng.standard_normal((B, H, M, d_v))
    return q, k, v


def block(q, k, v, **options):
    """(out, lse) of q against one block of keys."""
    out, cache = block_attention_forward(q, k, v, block_q=2, block_k=3, **options)
    return out, cache.lse


def partials(q, k, v, key_sets):
    """(o, lse) of q against each subset of the keys."""
    return [block(q, k[..., s, :], v[..., s, :], causal=False) for s in key_sets]


def random_split(rng, n_parts):
    """A random split of range(M) into n_parts non-empty, non-contiguous sets."""
    order = rng.permutation(M)
    cuts = np.sort(rng.choice(np.arange(1, M), n_parts - 1, replace=False))
    return [np.sort(part) for part in np.split(order, cuts)]


def trees(parts, form):
    """Every bracketing of the sequence ``parts``, each merged: yields (o, lse)."""
    if len(parts) == 1:
        yield parts[0]
        return
    for i in range(1, len(parts)):
        for left in trees(parts[:i], form):
            for right in trees(parts[i:], form):
                yield merge_partials(*left, *right, form=form)


@pytest.mark.parametrize("form", FORMS)
def test_merge_of_two_key_blocks_equals_full_attention(rng, qkv, form):
    q, k, v = qkv
    full, _ = attention_forward(q, k, v, causal=False)
    a, b = partials(q, k, v, [slice(0, 4), slice(4, M)])
    o, _ = merge_partials(*a, *b, form=form)
    np.testing.assert_allclose(o, full, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_merge_in_every_order_and_tree_shape_equals_full_attention(rng, qkv, form):
    q, k, v = qkv
    full, _ = attention_forward(q, k, v, causal=False)
    lse_full = np.logaddexp.reduce(q @ np.swapaxes(k, -1, -2) / np.sqrt(d), axis=-1)
    parts = partials(q, k, v, random_split(rng, 4))
    n_results = 0
    for order in itertools.permutations(parts):
        for o, lse in trees(list(order), form):
            np.testing.assert_allclose(o, full, atol=1e-12)
            np.testing.assert_allclose(lse, lse_full, atol=1e-12)
            n_results += 1
    assert n_results == 24 * 5  # 4! orders x 5 binary trees of 4 leaves


@pytest.mark.parametrize("form", FORMS)
def test_an_empty_block_is_the_identity_on_either_side(rng, form):
    o_a, lse_a = rng.standard_normal((B, N, d_v)), rng.standard_normal((B, N))
    empty = np.zeros((B, N, d_v)), np.full((B, N), -np.inf)
    for merged in (
        merge_partials(o_a, lse_a, *empty, form=form),
        merge_partials(*empty, o_a, lse_a, form=form),
    ):
        np.testing.assert_array_equal(merged[0], o_a)
        np.testing.assert_array_equal(merged[1], lse_a)


@pytest.mark.parametrize("form", FORMS)
def test_two_empty_blocks_merge_to_empty_without_nan_or_warning(form):
    empty = np.zeros((2, 3, d_v)), np.full((2, 3), -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        o, lse = merge_partials(*empty, *empty, form=form)
    np.testing.assert_array_equal(o, 0.0)
    assert np.all(np.isneginf(lse))


@pytest.mark.parametrize("form", FORMS)
def test_merge_with_a_causally_empty_block_keeps_rows_that_see_nothing(rng, form):
    q, k, v = rng.standard_normal((3, 6, d))
    # keys 3..5 of a causal rule: queries 0..2 see none of them (lse -inf)
    positions = {"q_positions": np.arange(6)}
    a = block(q, k[:3], v[:3], causal=True, k_positions=np.arange(3), **positions)
    b = block(q, k[3:], v[3:], causal=True, k_positions=np.arange(3, 6), **positions)
    assert np.isneginf(b[1][:3]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o, _ = merge_partials(*a, *b, form=form)
    full = block(q, k, v, causal=True)[0]
    np.testing.assert_allclose(o, full, atol=1e-12)


def test_exp_and_sigmoid_forms_agree_for_large_gaps(rng):
    o_a, o_b = rng.standard_normal((2, 7, d_v))
    lse_a = np.array([0.0, 700.0, -700.0, 5.0, 1e3, -1e3, 30.0])
    lse_b = np.array([0.0, -700.0, 700.0, 5.0 + 1e-9, -1e3, 1e3, -30.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp_form = merge_partials(o_a, lse_a, o_b, lse_b, form="exp")
        sig_form = merge_partials(o_a, lse_a, o_b, lse_b, form="sigmoid")
    for x, y in zip(exp_form, sig_form, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-12)


def _merge_inputs(rng):
    inputs = {
        "o_a": rng.standard_normal((2, 3, d_v)),
        "lse_a": rng.standard_normal((2, 3)),
        "o_b": rng.standard_normal((2, 3, d_v)),
        "lse_b": rng.standard_normal((2, 3)),
    }
    inputs["lse_b"][1, 2] = -np.inf  # block b is empty for one row
    inputs["o_b"][1, 2] = 0.0
    return inputs


@pytest.mark.parametrize("form", FORMS)
def test_merge_backward_matches_finite_differences_with_an_empty_row(rng, form):
    case = LayerCase(
        merge_partials_forward,
        merge_partials_backward,
        _merge_inputs(rng),
        options={"form": form},
    )
    fd_check(*case_functions(case), rng)


def test_merge_layer_returns_a_partial_and_takes_a_partial_of_gradients(rng):
    inputs = _merge_inputs(rng)
    merged, cache = merge_partials_forward(*inputs.values())
    assert isinstance(merged, Partial)
    np.testing.assert_array_equal(merged.out, merge_partials(*inputs.values()).out)
    dout = Partial(rng.standard_normal(merged.out.shape), np.zeros(merged.lse.shape))
    do_a, dlse_a, do_b, dlse_b = merge_partials_backward(dout, cache)
    assert do_a.shape == do_b.shape == merged.out.shape
    assert dlse_a.shape == dlse_b.shape == merged.lse.shape
    np.testing.assert_array_equal(do_b[1, 2], 0.0)  # the empty block gets nothing


def test_merge_gradients_of_the_two_lse_sum_to_the_upstream_lse_gradient(rng):
    inputs = _merge_inputs(rng)  # L = logaddexp(L_a, L_b): dL_a + dL_b = dL
    merged, cache = merge_partials_forward(*inputs.values())
    dlse = rng.standard_normal(merged.lse.shape)
    _, dlse_a, _, dlse_b = merge_partials_backward(
        Partial(np.zeros(merged.out.shape), dlse), cache
    )
    np.testing.assert_allclose(dlse_a + dlse_b, dlse, atol=1e-15)


def test_merge_rejects_mismatched_shapes_and_unknown_forms(rng):
    o, lse = rng.standard_normal((3, 4)), rng.standard_normal(3)
    with pytest.raises(ValueError, match=r"o_a\(3, 4\) and o_b\(3, 5\)"):
        merge_partials(o, lse, rng.standard_normal((3, 5)), lse)
    with pytest.raises(ValueError, match=r"lse_b\(4,\) must have shape \(3,\)"):
        merge_partials(o, lse, o, rng.standard_normal(4))
    with pytest.raises(ValueError, match="form must be one of"):
        merge_partials(o, lse, o, lse, form="log")

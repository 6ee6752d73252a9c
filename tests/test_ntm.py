"""Neural Turing Machine addressing, read and write (Graves et al. 2014)."""

import numpy as np
import pytest
from conftest import fd_check

from attention_np.memory import (
    ntm_address_backward,
    ntm_address_forward,
    ntm_read_backward,
    ntm_read_forward,
    ntm_write_backward,
    ntm_write_forward,
)
from attention_np.memory.ntm import (
    content_forward,
    cosine_forward,
    sharpen_forward,
    shift_forward,
)

B, n, W = 2, 6, 4
NAMES = ("k", "beta", "g", "s", "gamma", "M", "w_prev")


def _normalised(x):
    return x / x.sum(axis=-1, keepdims=True)


def _head(rng):
    return {
        "k": rng.standard_normal((B, W)),
        "beta": rng.uniform(0.5, 3.0, B),
        "g": rng.uniform(0.1, 0.9, B),
        "s": _normalised(rng.uniform(0.1, 1.0, (B, 3))),
        "gamma": rng.uniform(1.0, 3.0, B),
        "M": rng.standard_normal((B, n, W)),
        "w_prev": _normalised(rng.uniform(0.1, 1.0, (B, n))),
    }


def test_every_stage_sums_to_one(rng):
    _, cache = ntm_address_forward(**_head(rng))
    assert list(cache.stages) == ["content", "interpolated", "shifted", "sharpened"]
    for name, w in cache.stages.items():
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12, err_msg=name)
        assert np.all(w >= 0), name


def test_cosine_matches_its_definition(rng):
    h = _head(rng)
    cos, _ = cosine_forward(h["k"], h["M"])
    k, M = h["k"][0], h["M"][0, 2]
    assert cos[0, 2] == pytest.approx(k @ M / (np.linalg.norm(k) * np.linalg.norm(M)))


def test_large_beta_gives_a_one_hot_argmax(rng):
    h = _head(rng)
    w, _ = content_forward(h["k"], np.full(B, 1e8), h["M"])
    best = np.argmax(cosine_forward(h["k"], h["M"])[0], axis=-1)
    np.testing.assert_array_equal(w, np.eye(n)[best])


def test_no_shift_and_gamma_one_are_identities(rng):
    w = _normalised(rng.uniform(0.1, 1.0, (B, n)))
    delta0 = np.tile([0.0, 1.0, 0.0], (B, 1))  # all weight on offset 0
    np.testing.assert_allclose(shift_forward(w, delta0)[0], w, atol=1e-15)
    np.testing.assert_allclose(sharpen_forward(w, np.ones(B))[0], w, atol=1e-15)


def test_shift_by_one_rotates_the_weights(rng):
    w = _normalised(rng.uniform(0.1, 1.0, (B, n)))
    plus_one = np.tile([0.0, 0.0, 1.0], (B, 1))  # offsets -1, 0, +1
    np.testing.assert_allclose(shift_forward(w, plus_one)[0], np.roll(w, 1, axis=-1))


def test_gate_zero_keeps_the_previous_weights(rng):
    h = _head(rng)
    h["g"] = np.zeros(B)
    _, cache = ntm_address_forward(**h)
    np.testing.assert_allclose(cache.stages["interpolated"], h["w_prev"], atol=1e-15)


def test_full_erase_with_one_hot_weights_clears_a_row(rng):
    M = rng.standard_normal((B, n, W))
    w = np.zeros((B, n))
    w[:, 2] = 1.0
    cleared, _ = ntm_write_forward(w, np.ones((B, W)), np.zeros((B, W)), M)
    np.testing.assert_array_equal(cleared[:, 2], 0.0)
    np.testing.assert_array_equal(np.delete(cleared, 2, axis=1), np.delete(M, 2, 1))
    a = rng.standard_normal((B, W))
    written, _ = ntm_write_forward(w, np.ones((B, W)), a, M)
    np.testing.assert_array_equal(written[:, 2], a)  # erase then add = overwrite
    r, _ = ntm_read_forward(w, written)
    np.testing.assert_array_equal(r, a)


def test_address_backward_matches_finite_differences(rng):
    fd_check(
        lambda p: ntm_address_forward(**p),
        lambda d, c: dict(zip(NAMES, ntm_address_backward(d, c), strict=True)),
        _head(rng),
        rng,
    )


def test_read_and_write_backward_match_finite_differences(rng):
    w = _normalised(rng.uniform(0.1, 1.0, (B, n)))
    M = rng.standard_normal((B, n, W))
    fd_check(
        lambda p: ntm_read_forward(p["w"], p["M"]),
        lambda d, c: dict(zip("wM", ntm_read_backward(d, c), strict=True)),
        {"w": w, "M": M},
        rng,
    )
    inputs = {"w": w, "e": rng.uniform(0, 1, (B, W)), "a": rng.standard_normal((B, W))}
    fd_check(
        lambda p: ntm_write_forward(p["w"], p["e"], p["a"], p["M"]),
        lambda d, c: dict(zip("weaM", ntm_write_backward(d, c), strict=True)),
        {**inputs, "M": M},
        rng,
    )


def test_bad_inputs_are_named(rng):
    h = _head(rng)
    with pytest.raises(ValueError, match="s"):
        ntm_address_forward(**{**h, "s": np.ones((B, 2)) / 2})  # even S
    with pytest.raises(ValueError, match="gamma"):
        ntm_address_forward(**{**h, "gamma": np.full(B, 0.5)})
    with pytest.raises(ValueError, match="w_prev"):
        ntm_address_forward(**{**h, "w_prev": np.ones((B, n + 1))})
    with pytest.raises(ValueError, match="e"):
        ntm_write_forward(h["w_prev"], np.ones(W), np.ones((B, W)), h["M"])


def test_sharpening_equals_the_power_formula_where_it_does_not_underflow(rng):
    w = _normalised(rng.uniform(0.1, 1.0, (B, n)))
    gamma = rng.uniform(1.0, 3.0, B)
    powered = w ** gamma[:, None]
    expected = powered / powered.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(sharpen_forward(w, gamma)[0], expected, atol=1e-15)


def test_sharpening_keeps_zero_weights_at_zero(rng):
    w = _normalised(rng.uniform(0.1, 1.0, (B, n)))
    w[:, 1] = 0.0
    out, _ = sharpen_forward(w, np.full(B, 2.0))
    np.testing.assert_array_equal(out[:, 1], 0.0)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-15)

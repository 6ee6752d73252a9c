"""attention_np.planted_bugs: wrong softmax backwards, and which checks see them."""

import numpy as np

from attention_np import softmax_backward, softmax_forward
from attention_np.planted_bugs import (
    SOFTMAX_BACKWARD_VARIANTS,
    ones_check_table,
    passes_check,
)

CORRECT = "correct: y * (dout - <dout, y>)"


def test_the_correct_variant_is_the_package_softmax_backward():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y, cache = softmax_forward(x)
    got = SOFTMAX_BACKWARD_VARIANTS[CORRECT](dout, y)
    np.testing.assert_allclose(got, softmax_backward(dout, cache), atol=1e-15)


def test_every_bug_differs_from_the_correct_backward_on_a_random_dout():
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    y, _ = softmax_forward(x)
    correct = SOFTMAX_BACKWARD_VARIANTS[CORRECT](dout, y)
    for name, fn in SOFTMAX_BACKWARD_VARIANTS.items():
        if name != CORRECT:
            assert np.abs(fn(dout, y) - correct).max() > 1e-3, name


def test_passes_check_accepts_the_correct_and_rejects_a_flipped_sign():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    assert passes_check(SOFTMAX_BACKWARD_VARIANTS[CORRECT], x, dout)
    assert not passes_check(SOFTMAX_BACKWARD_VARIANTS["sign flipped"], x, dout)


def test_a_ones_check_passes_exactly_the_variants_that_return_zero_at_ones():
    rng = np.random.default_rng(3)
    table = ones_check_table(rng.standard_normal((3, 5)), rng=rng)
    assert [row[0] for row in table] == list(SOFTMAX_BACKWARD_VARIANTS)
    for name, at_ones, ones_ok, random_ok in table:
        assert ones_ok == (at_ones < 1e-12), name
        assert random_ok == (name == CORRECT), name


def test_the_table_works_on_a_single_row_and_leaves_x_alone():
    x = np.array([0.3, -1.0, 2.0])
    before = x.copy()
    table = ones_check_table(x, rng=np.random.default_rng(4))
    assert len(table) == len(SOFTMAX_BACKWARD_VARIANTS)
    np.testing.assert_array_equal(x, before)

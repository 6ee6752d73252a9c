import numpy as np
import pytest

from attention_np import causal_mask, combine_masks, padding_mask
from attention_np.masks import attention_mask


def test_causal_top_left_is_lower_triangular():
    np.testing.assert_array_equal(causal_mask(4), np.tril(np.ones((4, 4), bool)))
    np.testing.assert_array_equal(causal_mask(3, 5), np.tril(np.ones((3, 5), bool)))


def test_causal_bottom_right_lets_the_last_query_see_every_key():
    m = causal_mask(2, 5, align="bottom_right")
    np.testing.assert_array_equal(m, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    # a single decode step (N = 1) sees the whole cache
    assert causal_mask(1, 7, align="bottom_right").all()


def test_alignments_agree_when_square():
    np.testing.assert_array_equal(
        causal_mask(5, align="top_left"), causal_mask(5, align="bottom_right")
    )


def test_padding_mask_shape_and_content():
    m = padding_mask([3, 0, 5], 5)
    assert m.shape == (3, 1, 1, 5) and m.dtype == bool
    np.testing.assert_array_equal(m[:, 0, 0], [[1, 1, 1, 0, 0], [0] * 5, [1] * 5])


def test_combine_masks_is_logical_and_with_broadcasting():
    pad = padding_mask([2, 4], 4)  # (2, 1, 1, 4)
    causal = causal_mask(3, 4)  # (3, 4)
    both = combine_masks(pad, None, causal)
    assert both.shape == (2, 1, 3, 4)
    np.testing.assert_array_equal(both, pad & causal)
    assert combine_masks(None, None) is None


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_zero_sizes(align):
    assert causal_mask(0, 3, align=align).shape == (0, 3)
    assert padding_mask([0], 0).shape == (1, 1, 1, 0)


def test_attention_mask_without_causal_is_the_mask_itself():
    pad = padding_mask([2, 4], 4)
    assert attention_mask(pad, causal=False, N=3, M=4) is pad
    assert attention_mask(None, causal=False, align="bottom_right", N=3, M=4) is None


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_attention_mask_is_the_causal_rule_anded_with_the_mask(align):
    pad = padding_mask([2, 4], 4)  # (2, 1, 1, 4)
    got = attention_mask(pad, causal=True, align=align, N=3, M=4)
    np.testing.assert_array_equal(got, pad & causal_mask(3, 4, align=align))
    alone = attention_mask(None, causal=True, align=align, N=3, M=4)
    np.testing.assert_array_equal(alone, causal_mask(3, 4, align=align))


def test_attention_mask_default_alignment_is_top_left():
    np.testing.assert_array_equal(
        attention_mask(None, causal=True, N=2, M=5), causal_mask(2, 5)
    )

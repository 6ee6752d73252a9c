"""The bad-input catalogue: each misuse raises ValueError/TypeError with a message that
names the argument and what was wrong, and leaves the caller's arrays untouched."""

import numpy as np
import pytest

import attention_np as an
from attention_np.gradcheck import numerical_grad

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 6))
k = R.standard_normal((2, 3, 5, 6))
v = R.standard_normal((2, 3, 5, 7))
x = R.standard_normal((2, 4, 12))
x_kv = R.standard_normal((2, 5, 8))
P = an.init_mha_params(12, 3, rng=np.random.default_rng(1))
P_CROSS = an.init_mha_params(12, 3, rng=np.random.default_rng(1), d_kv=8)


def without(d, key):
    return {k_: v_ for k_, v_ in d.items() if k_ != key}


def with_(d, key, value):
    return {**d, key: value}


# (id, callable, exception type, regex the message must match)
CATALOGUE = [
    (
        "q/k width mismatch",
        lambda: an.attention_forward(q, k[..., :5], v),
        ValueError,
        r"q\(2, 3, 4, 6\) and k\(2, 3, 5, 5\) must share the last axis d",
    ),
    (
        "k/v length mismatch",
        lambda: an.attention_forward(q, k, v[..., :4, :]),
        ValueError,
        r"k\(2, 3, 5, 6\) and v\(2, 3, 4, 7\) must share the length M",
    ),
    (
        "q of rank 1",
        lambda: an.attention_forward(q[0, 0, 0], k, v),
        ValueError,
        r"q must have at least 2 dimensions, got shape \(6,\)",
    ),
    (
        "batch dims do not broadcast",
        lambda: an.attention_forward(q, k[:, :2], v[:, :2]),
        ValueError,
        r"leading .* do not broadcast",
    ),
    (
        "zero head width",
        lambda: an.attention_forward(q[..., :0], k[..., :0], v),
        ValueError,
        r"head width d >= 1",
    ),
    (
        "integer q",
        lambda: an.attention_forward(q.astype(int), k, v),
        TypeError,
        r"q must be a float16/float32/float64 array, got dtype int64",
    ),
    (
        "object v",
        lambda: an.attention_forward(q, k, v.astype(object)),
        TypeError,
        r"v must be a float.*dtype object",
    ),
    (
        "mixed dtypes",
        lambda: an.attention_forward(q.astype(np.float32), k, v),
        TypeError,
        r"q float32, k float64",
    ),
    (
        "q is a string",
        lambda: an.attention_forward("q", k, v),
        TypeError,
        r"q must be a NumPy array, got str",
    ),
    (
        "mask of wrong shape",
        lambda: an.attention_forward(q, k, v, np.ones((4, 4), bool)),
        ValueError,
        r"mask\(4, 4\) does not broadcast to the scores' shape \(2, 3, 4, 5\)",
    ),
    (
        "mask of transposed shape",
        lambda: an.attention_forward(q, k, v, np.ones((5, 4), bool)),
        ValueError,
        r"mask\(5, 4\) does not broadcast",
    ),
    (
        "float mask",
        lambda: an.attention_forward(q, k, v, np.ones((4, 5))),
        TypeError,
        r"mask must be a boolean array .* got dtype float64",
    ),
    (
        "mask with NaN",
        lambda: an.attention_forward(q, k, v, np.full((4, 5), np.nan)),
        TypeError,
        r"mask must be a boolean array .*contains NaN",
    ),
    (
        "int 0/1 mask",
        lambda: an.attention_forward(q, k, v, np.ones((4, 5), int)),
        TypeError,
        r"mask must be a boolean array .* got dtype int64",
    ),
    (
        "mask is a list",
        lambda: an.attention_forward(q, k, v, [[True] * 5] * 4),
        TypeError,
        r"mask must be a boolean NumPy array, got list",
    ),
    (
        "dropout_p = 1",
        lambda: an.attention_forward(q, k, v, dropout_p=1.0, rng=R),
        ValueError,
        r"dropout_p must be in \[0, 1\), got 1.0",
    ),
    (
        "negative dropout_p",
        lambda: an.attention_forward(q, k, v, dropout_p=-0.1, rng=R),
        ValueError,
        r"dropout_p must be in \[0, 1\), got -0.1",
    ),
    (
        "dropout without rng",
        lambda: an.attention_forward(q, k, v, dropout_p=0.1),
        TypeError,
        r"dropout_p > 0 needs an explicit rng",
    ),
    (
        "dropout with legacy seed int",
        lambda: an.attention_forward(q, k, v, dropout_p=0.1, rng=3),
        TypeError,
        r"rng=3",
    ),
    (
        "scale is a string",
        lambda: an.attention_forward(q, k, v, scale="0.1"),
        TypeError,
        r"scale must be a number",
    ),
    (
        "scale is inf",
        lambda: an.attention_forward(q, k, v, scale=np.inf),
        ValueError,
        r"scale must be finite, got inf",
    ),
    (
        "causal align typo",
        lambda: an.causal_mask(4, align="bottom-right"),
        ValueError,
        r"align must be one of .* got 'bottom-right'",
    ),
    (
        "causal negative N",
        lambda: an.causal_mask(-1),
        ValueError,
        r"N must be >= 0, got -1",
    ),
    (
        "causal float N",
        lambda: an.causal_mask(4.5),
        TypeError,
        r"N must be an int, got float 4.5",
    ),
    (
        "lengths longer than M",
        lambda: an.padding_mask([3, 7], 5),
        ValueError,
        r"lengths must lie in \[0, M=5\], got \[3, 7\]",
    ),
    (
        "negative length",
        lambda: an.padding_mask([-1, 2], 5),
        ValueError,
        r"lengths must lie in \[0, M=5\], got \[-1, 2\]",
    ),
    (
        "fractional length",
        lambda: an.padding_mask([2.5], 5),
        TypeError,
        r"lengths must be integers",
    ),
    (
        "lengths 2-D",
        lambda: an.padding_mask([[1, 2]], 5),
        ValueError,
        r"lengths must be 1-D \(B,\), got shape \(1, 2\)",
    ),
    (
        "combine non-boolean",
        lambda: an.combine_masks(np.ones((2, 2), bool), np.ones((2, 2))),
        TypeError,
        r"mask #1 must be a boolean array, got float64",
    ),
    (
        "combine incompatible shapes",
        lambda: an.combine_masks(np.ones((2, 3), bool), np.ones((4, 5), bool)),
        ValueError,
        r"mask shapes \(2, 3\), \(4, 5\) do not broadcast",
    ),
    (
        "n_heads does not divide D (split)",
        lambda: an.split_heads(x, 5),
        ValueError,
        r"n_heads=5 must divide the feature width D=12",
    ),
    (
        "split of a 4-D array",
        lambda: an.split_heads(q, 3),
        ValueError,
        r"x must have 3 dimensions, got shape \(2, 3, 4, 6\)",
    ),
    (
        "merge of a 3-D array",
        lambda: an.merge_heads(x),
        ValueError,
        r"x must have 4 dimensions, got shape \(2, 4, 12\)",
    ),
    (
        "n_heads does not divide d_model (init)",
        lambda: an.init_mha_params(12, 5, rng=R),
        ValueError,
        r"n_heads=5 must divide d_model=12",
    ),
    (
        "init without Generator",
        lambda: an.init_mha_params(12, 3, rng=0),
        TypeError,
        r"rng must be a np.random.Generator, got int",
    ),
    (
        "zero heads",
        lambda: an.mha_forward(x, x, P, 0),
        ValueError,
        r"n_heads must be >= 1, got 0",
    ),
    (
        "params missing W_o",
        lambda: an.mha_forward(x, x, without(P, "W_o"), 3),
        ValueError,
        r"missing keys \['W_o'\]",
    ),
    (
        "params with a typo key",
        lambda: an.mha_forward(x, x, with_(without(P, "W_q"), "Wq", P["W_q"]), 3),
        ValueError,
        r"missing keys \['W_q'\], unexpected keys \['Wq'\]",
    ),
    (
        "params W_k misshaped",
        lambda: an.mha_forward(x, x, with_(P, "W_k", P["W_k"][:, :6]), 3),
        ValueError,
        r"params\['W_k'\] has shape \(12, 6\), expected \(12, 12\)",
    ),
    (
        "cross-attention params for self",
        lambda: an.mha_forward(x, x, P_CROSS, 3),
        ValueError,
        r"params\['W_k'\] has shape \(8, 12\), expected \(12, 12\)",
    ),
    (
        "params not a dict",
        lambda: an.mha_forward(x, x, list(P.values()), 3),
        TypeError,
        r"params must be a dict, got list",
    ),
    (
        "x_q 2-D",
        lambda: an.mha_forward(x[0], x[0], P, 3),
        ValueError,
        r"x_q must have 3 dimensions, got shape \(4, 12\)",
    ),
    (
        "batch mismatch",
        lambda: an.mha_forward(x, x_kv[:1], P_CROSS, 3),
        ValueError,
        r"x_q\(2, 4, 12\) and x_kv\(1, 5, 8\) must share the batch size B",
    ),
    (
        "mha mask wrong shape",
        lambda: an.mha_forward(x, x, P, 3, np.ones((5, 5), bool)),
        ValueError,
        r"mask\(5, 5\) does not broadcast to the scores' shape \(2, 3, 4, 4\)",
    ),
    (
        "linear width mismatch",
        lambda: an.linear_forward(x, P["W_k"][:8]),
        ValueError,
        r"x\(2, 4, 12\) and W\(8, 12\) must share D_in",
    ),
    (
        "linear bias misshaped",
        lambda: an.linear_forward(x, P["W_q"], np.zeros(5)),
        ValueError,
        r"b\(5,\) must have shape \(D_out,\) = \(12,\)",
    ),
    (
        "softmax of ints",
        lambda: an.softmax_forward(np.arange(5)),
        TypeError,
        r"x must be a float16/float32/float64 array, got dtype int64",
    ),
    (
        "gradcheck in float32",
        lambda: numerical_grad(lambda a: a, q.astype(np.float32), q),
        TypeError,
        r"x has dtype float32; finite differences need float64",
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    arrays = [q, k, v, x, x_kv, *P.values(), *P_CROSS.values()]
    before = [a.copy() for a in arrays]
    with pytest.raises(exc, match=pattern):
        call()
    for a, b in zip(arrays, before, strict=False):
        np.testing.assert_array_equal(a, b)


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 30
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)

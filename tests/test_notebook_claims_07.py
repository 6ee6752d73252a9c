"""Claims of notebook 07 (backpropagation by hand), recomputed from the package.

The random arrays are drawn in the notebook's order from its seed, so the step-size
experiment sees the same Q, K, V and dO. The 2x2 example is re-derived here with
np.einsum (index notation written as index strings), independently of the
notebook's Python sums.
"""

import numpy as np
import pytest

from attention_np import (
    attention_backward,
    attention_forward,
    init_mha_params,
    mha_backward,
    mha_forward,
    numerical_grad,
    rel_error,
    softmax_backward,
    softmax_forward,
)
from attention_np.gradcheck import DEFAULT_ATOL, DEFAULT_H, DEFAULT_RTOL
from attention_np.planted_bugs import SOFTMAX_BACKWARD_VARIANTS, ones_check_table

ONES_BLIND = {
    "sign flipped",
    "twice too large",
    "mean(dout) instead of <dout, y>",
    "final * y left out",
}


@pytest.fixture(scope="module")
def draws():
    """The notebook's random arrays, in the notebook's order."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(5), rng.standard_normal(5)
    x_rows = rng.standard_normal((3, 5))
    table = ones_check_table(x_rows, rng=rng)
    Q, K = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    V, dO = rng.standard_normal((5, 2)), rng.standard_normal((4, 2))
    return dict(x=x, dy=dy, table=table, Q=Q, K=K, V=V, dO=dO, rng=rng)


def test_the_true_softmax_gradient_of_an_all_ones_dout_is_zero(draws):
    y, cache = softmax_forward(draws["x"])
    J = np.diag(y) - np.outer(y, y)
    np.testing.assert_allclose(J @ np.ones(5), 0.0, atol=1e-15)
    assert np.abs(softmax_backward(np.ones(5), cache)).max() < 1e-15


def test_a_check_with_ones_misses_exactly_the_bugs_that_return_zero_there(draws):
    rows = {name: row for name, *row in draws["table"]}
    assert set(rows) == set(SOFTMAX_BACKWARD_VARIANTS)
    missed = {name for name, (_, ones_ok, _) in rows.items() if ones_ok}
    assert missed - {"correct: y * (dout - <dout, y>)"} == ONES_BLIND
    for at_ones, ones_ok, _ in rows.values():
        assert ones_ok == (at_ones < 1e-12)  # caught <=> non-zero output at ones


def test_a_random_dout_catches_every_planted_softmax_bug(draws):
    correct, *bugs = draws["table"]
    assert correct[2] and correct[3]
    assert not any(random_ok for *_, random_ok in bugs)


def test_the_2x2_index_notation_gradients_match_attention_backward():
    Q = np.array([[1.0, 0.0], [0.5, -1.0]])
    K = np.array([[1.0, 1.0], [-1.0, 0.5]])
    V = np.array([[1.0, -1.0], [2.0, 2.0]])
    dO = np.array([[1.0, 0.0], [0.5, -1.0]])
    s = 1 / np.sqrt(2)
    S = s * np.einsum("ic,jc->ij", Q, K)
    P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
    dV = np.einsum("ic,ij->jc", dO, P)
    dP = np.einsum("ic,jc->ij", dO, V)
    dS = P * (dP - np.einsum("ik,ik->i", dP, P)[:, None])
    dQ = s * np.einsum("ij,jc->ic", dS, K)
    dK = s * np.einsum("ij,ic->jc", dS, Q)
    out, cache = attention_forward(Q, K, V, causal=False)
    dq, dk, dv = attention_backward(dO, cache)
    for ours, pkg in ((dQ, dq), (dK, dk), (dV, dv), (P, cache.weights)):
        np.testing.assert_allclose(ours, pkg, atol=1e-15)
    np.testing.assert_allclose(P, [[0.804, 0.196], [0.587, 0.413]], atol=5e-4)
    np.testing.assert_allclose(dS[0, 1], 0.1573, atol=5e-5)  # the spelled-out entry
    np.testing.assert_allclose(dK[0], -dK[1], atol=1e-15)  # two keys: opposite rows


def test_ds_is_zero_where_masked_and_on_a_single_key_row_and_rows_sum_to_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 8))
    out, cache = attention_forward(x, x, x, causal=True)
    dout = rng.standard_normal(out.shape)
    P = cache.weights
    dP = dout @ x.T
    dS = P * (dP - np.sum(dP * P, axis=1, keepdims=True))
    assert np.all(dS[np.triu_indices(6, 1)] == 0.0)
    assert np.all(dS[0] == 0.0)
    np.testing.assert_allclose(dS.sum(axis=1), 0.0, atol=1e-14)


def test_the_key_bias_has_zero_gradient_and_b_v_gets_the_summed_output_gradient():
    rng = np.random.default_rng(2)
    params = init_mha_params(6, 2, rng=rng, d_kv=5)
    params.update({b: rng.standard_normal(6) for b in ("b_q", "b_k", "b_v", "b_o")})
    x_q, x_kv = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 4, 5))
    out, cache = mha_forward(
        x_q, x_kv, params, n_heads=2, causal=True, align="bottom_right"
    )
    dout = rng.standard_normal(out.shape)
    _, _, grads = mha_backward(dout, cache)
    assert np.abs(grads["b_k"]).max() < 1e-12
    summed = (dout @ params["W_o"].T).sum(axis=(0, 1))  # exercise 5's expectation
    np.testing.assert_allclose(grads["b_v"], summed, atol=1e-12)


def test_float32_finite_differences_fail_the_checker_tolerance_but_at_one_lucky_step(
    draws,
):
    """The checker passes |diff| <= atol + rtol max|numeric|: 1.6e-6 for this dQ."""
    Q, K, V, dO = (draws[n] for n in ("Q", "K", "V", "dO"))
    exact = attention_backward(dO, attention_forward(Q, K, V, causal=False)[1])[0]
    tol = DEFAULT_ATOL + DEFAULT_RTOL * np.abs(exact).max()
    assert round(tol, 7) == 1.6e-6
    steps = np.logspace(-12, 0, 49)
    at_checker = np.argmin(np.abs(steps - DEFAULT_H))
    errors = {}
    for dtype in (np.float64, np.float32):
        Qt, Kt, Vt = (a.astype(dtype) for a in (Q, K, V))

        def loss(q, Kt=Kt, Vt=Vt):
            return float(np.sum(attention_forward(q, Kt, Vt, causal=False)[0] * dO))

        errs = []
        for h in steps:
            plus, minus = Qt.copy(), Qt.copy()
            plus[1, 2] += h
            minus[1, 2] -= h
            errs.append(abs((loss(plus) - loss(minus)) / (2 * h) - exact[1, 2]))
        errors[np.dtype(dtype).name] = np.array(errs)
    f64, f32 = errors["float64"], errors["float32"]
    assert f64.min() < 1e-9 and f64[at_checker] < 1e-9  # orders of magnitude below
    assert f32[at_checker] > 1e3 * tol  # "more than a thousand times the tolerance"
    lucky = np.flatnonzero(f32 <= tol)
    assert len(lucky) == 1  # one step of 49
    assert f32[lucky[0] - 1] > tol and f32[lucky[0] + 1] > tol  # its neighbours fail
    assert np.isclose(f32[0], abs(exact[1, 2]), rtol=1e-6)  # q + h rounds back to q


def test_an_all_ones_dout_does_catch_a_missing_scale_in_attention(draws):
    Q, K, V = draws["Q"], draws["K"], draws["V"]
    ones = np.ones((4, 2))
    dq = attention_backward(ones, attention_forward(Q, K, V, causal=False)[1])[0]
    fd = numerical_grad(lambda q: attention_forward(q, K, V, causal=False)[0], Q, ones)
    assert np.abs(fd).max() > 1e-3  # for attention, ones do not give a zero gradient
    s = 1 / np.sqrt(3)
    error = rel_error(dq / s, fd)  # the bug: dQ without its factor s
    np.testing.assert_allclose(error, (np.sqrt(3) - 1) / (np.sqrt(3) + 1), atol=1e-6)

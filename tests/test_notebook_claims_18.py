"""Claims of lesson 18 (fast weights and the delta rule), recomputed from the package.

Each test states one sentence of the notebook and checks it with the lesson's own
seeds and sizes. The capacity sweep runs on the widths d = 8, 16, 32 only (the lesson
also runs 64 and 128; their points lie on the same lines), to keep this file fast.
"""

import numpy as np
import pytest

from attention_np.memory import (
    delta_rule_chunkwise_forward,
    delta_rule_forward,
    fast_weight_attention_matrix,
    fast_weight_read,
    fast_weight_read_attention,
    fast_weight_update,
    fast_weights_forward,
    init_fast_weights_params,
    sum_rule_forward,
)
from attention_np.memory.recall import (
    recall_capacity,
    recall_curve,
    recall_episodes,
    recall_read,
    recall_scores,
)

D_MEM, N_SYMBOLS, SEED = 32, 64, 18  # section 4
N_GRID = np.array([2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128])


def _curve(rule, rewrites):
    return recall_curve(
        D_MEM,
        N_GRID,
        rule=rule,
        n_values=N_SYMBOLS,
        rng=np.random.default_rng(SEED),
        n_rewrites=rewrites,
    )


def _at(curve, measure, n):
    return getattr(curve, measure)[list(curve.n_pairs).index(n)]


def test_reading_the_fast_weight_matrix_is_decayed_attention_over_past_states():
    rng = np.random.default_rng(0)
    past = rng.standard_normal((2, 10, 16))
    A = np.zeros((2, 16, 16))
    for t in range(10):
        A = fast_weight_update(A, past[:, t], lam=0.9, eta=0.5)
    h = rng.standard_normal((2, 16))
    np.testing.assert_allclose(
        fast_weight_read(h, A),
        fast_weight_read_attention(h, past, lam=0.9, eta=0.5),
        atol=1e-12,
    )


def test_every_state_reads_the_same_symbol_five_steps_back_with_a_large_weight():
    x_ids = np.array(["abcde".index(s) for s in "abcdeabcdeabcde"])
    params = init_fast_weights_params(5, 24, rng=np.random.default_rng(0))
    params["C"] *= 3.0
    H, _ = fast_weights_forward(np.eye(5)[x_ids][None], params, lam=0.9, eta=0.5)
    att = fast_weight_attention_matrix(H, lam=0.9, eta=0.5)[0]
    back5, back10 = np.diagonal(att, -5), np.diagonal(att, -10)
    earlier = np.tril(np.ones_like(att, dtype=bool), -1)
    same = (x_ids[:, None] == x_ids[None, :]) & earlier
    assert back5.min() > 3.0 and att[earlier & ~same].mean() < 0
    assert 0.4 < np.mean(back10 / back5[5:]) < 0.59  # mostly the decay lambda^5


def test_the_same_symbol_five_back_is_the_rows_largest_weight_in_7_of_10_rows_only():
    symbols = "abcdeabcdeabcde"
    x_ids = np.array(["abcde".index(s) for s in symbols])
    params = init_fast_weights_params(5, 24, rng=np.random.default_rng(0))
    params["C"] *= 3.0
    H, _ = fast_weights_forward(np.eye(5)[x_ids][None], params, lam=0.9, eta=0.5)
    att = fast_weight_attention_matrix(H, lam=0.9, eta=0.5)[0]
    top = {t: int(np.argmax(att[t, :t])) for t in range(5, 15)}  # rows with a repeat
    beaten = [(symbols[t], symbols[j]) for t, j in top.items() if j != t - 5]
    assert len(beaten) == 3  # the same symbol wins 7 of the 10 rows
    assert set(beaten) <= {("a", "d"), ("d", "a")}  # "a" reads "d" more, or back


def test_causal_linear_attention_is_the_sum_rule():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 2, 9, 4))
    v = rng.standard_normal((2, 2, 9, 3))
    out, _ = sum_rule_forward(q, k, v)
    np.testing.assert_allclose(out, np.tril(q @ np.swapaxes(k, -1, -2)) @ v, atol=1e-12)


def test_with_beta_one_the_delta_rule_replaces_a_rewritten_value_the_sum_rule_adds():
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    keys, values = Q[[0, 1, 2, 0]], np.eye(4)
    _, delta = delta_rule_forward(keys, keys, values, np.ones(4))
    _, summed = sum_rule_forward(keys, keys, values)
    np.testing.assert_allclose(Q[:3] @ delta.final_state, values[[3, 1, 2]], atol=1e-12)
    np.testing.assert_allclose(
        Q[0] @ summed.final_state, values[0] + values[3], atol=1e-12
    )


def test_at_n_equal_d_the_delta_rule_has_the_smaller_error_and_the_lower_accuracy():
    ep = recall_episodes(
        32, D_MEM, n_values=N_SYMBOLS, batch=64, rng=np.random.default_rng(SEED)
    )
    right = ep.value_table[ep.answers]
    found = {}
    for rule in ("sum", "delta"):
        read = recall_read(ep, rule=rule)
        error = np.linalg.norm(read - right, axis=-1).mean()
        found[rule] = (error, recall_scores(ep, read))
    (err_s, sum_), (err_d, delta) = found["sum"], found["delta"]
    assert err_d < err_s and delta.accuracy < sum_.accuracy
    assert delta.cosine < sum_.cosine and delta.read_norm < 1.0 < sum_.read_norm


def test_the_sum_rule_read_follows_the_crosstalk_law():
    curve = _curve("sum", 0)
    theory = 1 / np.sqrt(1 + (N_GRID - 1) / D_MEM)
    np.testing.assert_allclose(curve.cosine, theory, atol=0.02)
    assert curve.accuracy[N_GRID <= D_MEM].min() >= 0.96


def test_written_once_the_one_pass_delta_rule_recalls_less_than_the_sum_rule():
    summed, delta, soft = (_curve(rule, 0) for rule in ("sum", "delta", "softmax"))
    big = N_GRID >= 16
    assert np.all(delta.accuracy[big] < summed.accuracy[big])
    assert np.all(soft.accuracy == 1.0)


def test_written_once_the_delta_rules_cosine_is_higher_up_to_16_pairs_lower_from_24():
    summed, delta = _curve("sum", 0), _curve("delta", 0)
    assert np.all(delta.cosine[N_GRID <= 16] > summed.cosine[N_GRID <= 16])
    assert np.all(delta.cosine[N_GRID >= 24] < summed.cosine[N_GRID >= 24])
    assert round(_at(delta, "cosine", 16), 2) == 0.84
    assert round(_at(summed, "cosine", 16), 2) == 0.83


def test_with_one_rewrite_the_delta_rule_beats_the_sum_rule_and_softmax_attention():
    summed, delta, soft = (_curve(rule, 1) for rule in ("sum", "delta", "softmax"))
    small, upto48 = N_GRID <= 16, N_GRID <= 48
    assert delta.accuracy[small].min() > 0.94
    assert summed.accuracy.max() <= 0.55 and soft.accuracy.max() <= 0.55
    best_other = np.maximum(summed.accuracy, soft.accuracy)
    assert np.all(delta.accuracy[upto48] > best_other[upto48])
    assert _at(summed, "cosine", 2) < 1 / np.sqrt(2) + 0.01  # old + new, at most


@pytest.mark.parametrize("d", [8, 16, 32])
def test_capacity_grows_in_proportion_to_d_and_the_sum_rule_has_none_with_rewrites(d):
    cap = {
        (rewrites, rule): recall_capacity(
            d,
            rule=rule,
            n_values=N_SYMBOLS,
            ratios=np.arange(1, 17) / 16,
            threshold=0.8,
            rng=np.random.default_rng(SEED),
            n_rewrites=rewrites,
            queries=1024,
        ).capacity
        for rewrites in (0, 1)
        for rule in ("sum", "delta")
    }
    assert 0.55 * d <= cap[0, "sum"] <= 0.75 * d  # about 0.6 d
    assert cap[0, "sum"] == pytest.approx(1 + 0.5625 * d, rel=0.1)  # crosstalk law
    assert 0.55 * d <= cap[0, "delta"] <= 0.7 * d
    assert cap[1, "sum"] == 0.0
    assert 0.45 * d <= cap[1, "delta"] <= 0.6 * d


def test_exercise_4_writing_the_pairs_again_raises_the_delta_rules_cosine():
    """Exercise 4: at n = 16, d = 32 the mean cosine is 0.84 after one pass of the
    delta rule, about 0.95 after two and 0.99 after four (Kaczmarz)."""
    ep = recall_episodes(
        16, D_MEM, n_values=N_SYMBOLS, batch=128, rng=np.random.default_rng(SEED)
    )
    cosines = []
    for passes in (1, 2, 4):
        k, v = (np.tile(a, (1, passes, 1)) for a in (ep.keys, ep.values))
        beta = np.ones(k.shape[:2])
        S = delta_rule_chunkwise_forward(k, k, v, beta, chunk_size=16)[1].final_state
        cosines.append(recall_scores(ep, ep.query_keys @ S).cosine)
    assert [round(c, 2) for c in cosines] == [0.84, 0.95, 0.99]


def test_the_chunkwise_form_equals_the_recurrence_for_every_chunk_size():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 2, 9, 4))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v, beta = rng.standard_normal((2, 2, 9, 3)), rng.uniform(0.1, 0.9, (2, 2, 9))
    out, cache = delta_rule_forward(q, k, v, beta)
    for C in range(1, 11):
        out_c, cache_c = delta_rule_chunkwise_forward(q, k, v, beta, chunk_size=C)
        np.testing.assert_allclose(out_c, out, atol=1e-12)
        np.testing.assert_allclose(cache_c.final_state, cache.final_state, atol=1e-12)

"""The exercise 20a checkers beyond what tests/test_exercise_checkers.py checks for
every checker (correct solutions pass, planted mistakes fail with their hint, the
answer key cannot be called, odd code never crashes): the checkers' own answers
agree with the package's recurrences, and the strong-decay case really is one where
e^B_i e^-B_j overflows."""

import numpy as np
import pytest

from attention_np import recurrences as R
from attention_np.exercises import recurrence_checks as rc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_checkers_answers_equal_the_package_recurrence(seed):
    for case in rc.GATED_DELTA_CHUNK.make_cases(np.random.default_rng(seed)):
        S0, Q, K, V, la, beta = case.args
        out, cache = R.gated_deltanet_forward(
            Q, K, V, la, beta, S0, form="chunkwise", scale=1.0, chunk_size=3
        )
        np.testing.assert_allclose(case.expected[0], out, atol=1e-12, rtol=1e-10)
        np.testing.assert_allclose(
            case.expected[1], cache.final_state, atol=1e-12, rtol=1e-10
        )
    for case in rc.GATED_DELTA_STEP.make_cases(np.random.default_rng(seed)):
        S, q, k, v, a, b = case.args
        out, cache = R.gated_deltanet_forward(
            q[None], k[None], v[None], np.log([a]), np.array([b]), S, scale=1.0
        )
        np.testing.assert_allclose(case.expected[0], out[0], atol=1e-12)
        np.testing.assert_allclose(case.expected[1], cache.final_state, atol=1e-12)


def test_the_strong_decay_case_overflows_the_product_of_exponentials():
    case = rc.GATED_DELTA_CHUNK.make_cases(np.random.default_rng(0))[-1]
    B = np.cumsum(case.args[4])
    assert B[-1] < -709
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(-B)).all()
    assert all(np.isfinite(x).all() for x in case.expected)


def test_the_unit_key_case_reads_its_value_back():
    case = rc.GATED_DELTA_STEP.make_cases(np.random.default_rng(0))[3]
    S, q, k, v, a, b = case.args
    assert b == 1.0
    np.testing.assert_allclose(k @ case.expected[1], v, atol=1e-12)

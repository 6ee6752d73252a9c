"""Bad inputs of the lesson experiments: train.toy_heads, train.toy_positions and
planted_bugs. Each case asserts the exception type and that the message names the
argument; a failed call changes nothing it was given."""

import numpy as np
import pytest

from attention_np import init_mha_params
from attention_np.planted_bugs import (
    SOFTMAX_BACKWARD_VARIANTS,
    ones_check_table,
    passes_check,
)
from attention_np.train.toy_heads import (
    TwoJobBatch,
    head_job_shares,
    train_two_job,
    two_job_batch,
    two_job_errors,
)
from attention_np.train.toy_positions import (
    accuracy_per_position,
    position_blind_accuracy,
    previous_token_batch,
    previous_token_logits,
    train_previous_token,
)

RNG = np.random.default_rng
BATCH = two_job_batch(RNG(0), 3, length=4, n_content=2)  # D = 7
P7 = init_mha_params(7, 1, rng=RNG(0))
TOKENS = RNG(0).integers(0, 6, size=(2, 5))
P6 = init_mha_params(6, 1, rng=RNG(0))
PT_BATCH = previous_token_batch(RNG(0), 2, length=5, n_symbols=6)
CORRECT = SOFTMAX_BACKWARD_VARIANTS["correct: y * (dout - <dout, y>)"]

CASES = [
    # two_job_batch
    (lambda: two_job_batch(None, 2, length=3, n_content=1), TypeError, "rng"),
    (lambda: two_job_batch(RNG(0), 0, length=3, n_content=1), ValueError, "batch_size"),
    (lambda: two_job_batch(RNG(0), 2, length=True, n_content=1), TypeError, "length"),
    (lambda: two_job_batch(RNG(0), 2, length=3, n_content=-1), ValueError, "n_content"),
    (lambda: two_job_batch(RNG(0), 2, length=3.0, n_content=1), TypeError, "length"),
    # train_two_job
    (lambda: train_two_job(5, rng=RNG(0), steps=1), ValueError, "n_heads"),
    (lambda: train_two_job(0, rng=RNG(0), steps=1), ValueError, "n_heads"),
    (lambda: train_two_job(2, rng=0, steps=1), TypeError, "rng"),
    (lambda: train_two_job(2, rng=RNG(0), steps=0), ValueError, "steps"),
    (lambda: train_two_job(2, rng=RNG(0), steps=1, lr=-1.0), ValueError, "lr"),
    (lambda: train_two_job(2, rng=RNG(0), steps=1, lr=np.nan), ValueError, "lr"),
    (
        lambda: train_two_job(2, rng=RNG(0), steps=1, batch_size=0),
        ValueError,
        "batch_size",
    ),
    # two_job_errors / head_job_shares
    (lambda: two_job_errors(P7, (BATCH.x, BATCH.y), n_heads=1), TypeError, "batch"),
    (lambda: two_job_errors(P7, BATCH, n_heads=0), ValueError, "n_heads"),
    (
        lambda: two_job_errors(P7, BATCH, n_heads=1, drop_head=1),
        ValueError,
        "drop_head",
    ),
    (
        lambda: two_job_errors(P7, BATCH, n_heads=1, drop_head=-1),
        ValueError,
        "drop_head",
    ),
    (
        lambda: two_job_errors(P7, BATCH, n_heads=1, drop_head=0.0),
        TypeError,
        "drop_head",
    ),
    (
        lambda: two_job_errors(
            P7, TwoJobBatch(BATCH.x, BATCH.y[..., :3], BATCH.flag), n_heads=1
        ),
        ValueError,
        "batch.y",
    ),
    (
        lambda: two_job_errors(
            P7, TwoJobBatch(BATCH.x[0], BATCH.y, BATCH.flag), n_heads=1
        ),
        ValueError,
        "batch.x",
    ),
    (lambda: head_job_shares(P7, BATCH, n_heads="1"), TypeError, "n_heads"),
    (lambda: head_job_shares(P7, [BATCH], n_heads=1), TypeError, "batch"),
    (
        lambda: head_job_shares(
            P7, TwoJobBatch(BATCH.x.astype(int), BATCH.y, BATCH.flag), n_heads=1
        ),
        TypeError,
        "batch.x",
    ),
    # previous_token_batch
    (
        lambda: previous_token_batch(RNG(0), 2, length=5, n_symbols=0),
        ValueError,
        "n_symbols",
    ),
    (
        lambda: previous_token_batch(RNG(0), 2, length=1.5, n_symbols=3),
        TypeError,
        "length",
    ),
    (lambda: previous_token_batch("0", 2, length=5, n_symbols=3), TypeError, "rng"),
    # previous_token_logits
    (lambda: previous_token_logits(P6, TOKENS, rope="yes"), TypeError, "rope"),
    (
        lambda: previous_token_logits(P6, TOKENS.astype(float), rope=True),
        TypeError,
        "tokens",
    ),
    (lambda: previous_token_logits(P6, TOKENS + 6, rope=True), ValueError, "tokens"),
    (lambda: previous_token_logits(P6, -TOKENS - 1, rope=True), ValueError, "tokens"),
    (lambda: previous_token_logits(P6, TOKENS[0], rope=True), ValueError, "tokens"),
    (
        lambda: previous_token_logits(P6, TOKENS, rope=True, offset=-1),
        ValueError,
        "offset",
    ),
    (lambda: previous_token_logits([P6], TOKENS, rope=True), TypeError, "params"),
    (lambda: previous_token_logits({"W_k": 1}, TOKENS, rope=True), ValueError, "W_q"),
    # train_previous_token
    (
        lambda: train_previous_token(rope=True, rng=RNG(0), n_symbols=5),
        ValueError,
        "n_symbols",
    ),
    (lambda: train_previous_token(rope=None, rng=RNG(0)), TypeError, "rope"),
    (lambda: train_previous_token(rope=True, rng=RNG(0), lr=0.0), ValueError, "lr"),
    (
        lambda: train_previous_token(rope=True, rng=RNG(0), steps=-1),
        ValueError,
        "steps",
    ),
    (lambda: train_previous_token(rope=True, rng=None), TypeError, "rng"),
    # accuracy_per_position / position_blind_accuracy
    (
        lambda: accuracy_per_position(np.zeros((2, 5, 6), int), PT_BATCH),
        TypeError,
        "logits",
    ),
    (
        lambda: accuracy_per_position(np.zeros((2, 4, 6)), PT_BATCH),
        ValueError,
        "logits",
    ),
    (
        lambda: accuracy_per_position(np.zeros((2, 5, 6)), PT_BATCH[:2]),
        TypeError,
        "batch",
    ),
    (
        lambda: position_blind_accuracy(TOKENS.astype(float), n_symbols=6),
        TypeError,
        "tokens",
    ),
    (lambda: position_blind_accuracy(TOKENS, n_symbols=3), ValueError, "tokens"),
    (lambda: position_blind_accuracy(TOKENS, n_symbols=0), ValueError, "n_symbols"),
    # planted_bugs
    (lambda: passes_check(CORRECT, np.arange(5), np.ones(5)), TypeError, "x"),
    (lambda: passes_check(CORRECT, np.zeros(5), np.ones(4)), ValueError, "dout"),
    (lambda: passes_check(CORRECT, np.zeros(5), "ones"), TypeError, "dout"),
    (lambda: ones_check_table(np.zeros((2, 3)), rng=None), TypeError, "rng"),
    (lambda: ones_check_table(np.zeros((2, 3), np.int32), rng=RNG(0)), TypeError, "x"),
]


@pytest.mark.parametrize(
    "call, error, name",
    [pytest.param(*case, id=f"{i:02d}-{case[2]}") for i, case in enumerate(CASES)],
)
def test_bad_input_is_refused_with_a_message_naming_it(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_a_refused_call_changes_nothing():
    batch = two_job_batch(RNG(0), 3, length=4, n_content=2)
    params = init_mha_params(7, 1, rng=RNG(1))
    copies = [a.copy() for a in batch] + [v.copy() for v in params.values()]
    with pytest.raises(ValueError, match="drop_head"):
        two_job_errors(params, batch, n_heads=1, drop_head=3)
    after = list(batch) + list(params.values())
    for a, b in zip(after, copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_global_rng_is_never_used():
    state = np.random.get_state()[1].copy()
    two_job_batch(RNG(0), 2, length=3, n_content=1)
    previous_token_batch(RNG(0), 2, length=3, n_symbols=4)
    ones_check_table(np.zeros((2, 3)), rng=RNG(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)

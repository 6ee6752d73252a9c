"""Training a memory network on toy stories (attention_np.memory.memnet_train)."""

import numpy as np
import pytest

from attention_np.memory.memnet_train import current_places, train_memnet
from attention_np.memory.tasks import VOCAB, toy_stories


def test_training_lowers_the_loss_and_a_seed_reproduces_it():
    stories = toy_stories(200, rng=np.random.default_rng(0))
    run = lambda: train_memnet(
        stories,
        n_hops=2,
        width=8,
        steps=60,
        batch=16,
        lr=0.02,
        rng=np.random.default_rng(1),
    )
    (params, losses), (params2, losses2) = run(), run()
    np.testing.assert_array_equal(params["E_0"], params2["E_0"])
    assert losses[-10:].mean() < losses[:10].mean()
    np.testing.assert_array_equal(losses, losses2)
    assert sorted(params) == ["E_0", "E_1", "E_2", "T_0", "T_1", "T_2"]


def test_current_places_are_each_persons_latest_place():
    ids = {w: i for i, w in enumerate(VOCAB)}
    sent = lambda *words: [ids[w] for w in words]
    story = np.zeros((2, 4, 5), dtype=np.int64)
    story[0, 0] = sent("Mary", "went", "to", "the", "garden")
    story[0, 1] = sent("John", "went", "to", "the", "office")
    story[0, 2] = sent("Mary", "went", "to", "the", "kitchen")
    story[0, 3] = sent("Mary", "picked", "up", "the", "milk")
    story[1, 3] = sent("John", "went", "to", "the", "garden")
    here = current_places(story)
    assert sorted(np.flatnonzero(here[0])) == sorted([ids["office"], ids["kitchen"]])
    assert np.flatnonzero(here[1]).tolist() == [ids["garden"]]


def test_every_answer_of_the_toy_stories_is_a_current_place():
    data = toy_stories(300, rng=np.random.default_rng(4))
    here = current_places(data["story"])
    assert here[np.arange(300), data["answer"]].all()


def test_without_temporal_encoding_the_tables_stay_zero():
    stories = toy_stories(50, rng=np.random.default_rng(0))
    params, _ = train_memnet(
        stories,
        n_hops=1,
        width=4,
        steps=5,
        batch=4,
        lr=0.1,
        rng=np.random.default_rng(0),
        temporal=False,
    )
    assert not params["T_0"].any() and not params["T_1"].any()
    assert params["E_0"].any()


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (
            lambda s: train_memnet(
                s,
                n_hops=1,
                width=4,
                steps=0,
                batch=2,
                lr=0.1,
                rng=np.random.default_rng(0),
            ),
            ValueError,
            "steps",
        ),
        (
            lambda s: train_memnet(
                s,
                n_hops=1,
                width=4,
                steps=1,
                batch=2,
                lr=0.0,
                rng=np.random.default_rng(0),
            ),
            ValueError,
            "lr",
        ),
        (
            lambda s: train_memnet(
                s, n_hops=1, width=4, steps=1, batch=2, lr=0.1, rng=0
            ),
            TypeError,
            "rng",
        ),
        (
            lambda s: train_memnet(
                {"story": s["story"]},
                n_hops=1,
                width=4,
                steps=1,
                batch=2,
                lr=0.1,
                rng=np.random.default_rng(0),
            ),
            ValueError,
            "question",
        ),
        (lambda s: current_places(s["story"][:, :, :4]), ValueError, "story"),
        (lambda s: current_places(-s["story"] - 1), ValueError, "story"),
    ],
)
def test_bad_inputs_are_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(toy_stories(3, rng=np.random.default_rng(0)))

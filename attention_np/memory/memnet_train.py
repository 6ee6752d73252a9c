"""Training a memory network on the toy stories of ``tasks``, and a baseline for it.

``train_memnet`` is the loop of lesson 21: sample a batch of stories, forward,
softmax cross-entropy on the answer word, ``memnet_backward``, one Adam step. Every
random choice (initial tables, batches) comes from the one ``rng`` it is given, so a
seed reproduces a run exactly.

``latest_move_answer`` answers "where is ...?" with the place of the story's latest
"went to" sentence, whoever moved: what a reader that only looks at recency gets
right. On two-fact questions ("where is the football?") it is right when the
object's holder moved last, or when the last mover went to the same place.

Shape legend: S stories, n sentence slots, J = 5 words per sentence.
"""

import numpy as np

from .. import validate as V
from ..transformer import (
    adam_init,
    adam_step,
    cross_entropy_backward,
    cross_entropy_forward,
)
from .memnet import init_memnet_params, memnet_backward, memnet_forward
from .tasks import VOCAB

WENT = VOCAB.index("went")


def _check_stories(stories):
    V.instance("stories", stories, dict)
    missing = [k for k in ("story", "question", "answer") if k not in stories]
    if missing:
        raise ValueError(f"stories has no {missing} (a dict from toy_stories)")
    story = V.int_array("stories['story']", stories["story"], ndim=3, lo=0)
    if story.shape[-1] != 5 or story.shape[0] == 0:
        raise ValueError(f"stories['story']{story.shape} must be (S >= 1, n, J = 5)")
    return story


def train_memnet(stories, *, n_hops, width, steps, batch, lr, rng, position_enc=True):
    """Train a K-hop memory network with Adam on ``stories`` (from ``toy_stories``).

    Args:
        stories: dict with story (S, n, 5), question (S, 5) and answer (S,) ids.
        n_hops: K >= 1; width: embedding width d >= 1.
        steps: Adam steps; batch: stories per step (drawn with replacement); lr > 0.
        rng: np.random.Generator for the initial tables and the batches.
        position_enc: the position encoding of the words (else a bag of words).

    Returns:
        params (E_0..E_K, T_0..T_K), losses (steps,) the loss of every step.
    """
    story = _check_stories(stories)
    steps, batch = V.positive_int("steps", steps), V.positive_int("batch", batch)
    V.real("lr", lr, lo=0.0, lo_open=True)
    V.rng_arg(rng)
    params = init_memnet_params(
        len(VOCAB), width, n_hops=n_hops, n_memories=story.shape[1], rng=rng
    )
    state, losses = adam_init(params), np.empty(steps)
    for i in range(steps):
        idx = rng.integers(0, story.shape[0], batch)  # (batch,) stories of this step
        logits, cache = memnet_forward(
            story[idx], stories["question"][idx], params, position_enc=position_enc
        )
        loss, loss_cache = cross_entropy_forward(logits, stories["answer"][idx])
        grads = memnet_backward(cross_entropy_backward(1.0, loss_cache), cache)
        adam_step(params, grads, state, lr=lr)
        losses[i] = float(loss)
    return params, losses


def latest_move_answer(story):
    """(S,) the place id of each story's latest "went to" sentence (-1 if none).

    Args:
        story: (S, n, 5) word ids, sentences right-aligned as ``toy_stories`` makes
            them ("<person> went to the <place>" has "went" as word 1, the place as
            word 4).
    """
    story = V.int_array("story", story, ndim=3, lo=0)
    if story.shape[-1] != 5:
        raise ValueError(f"story{story.shape} must be (S, n, J = 5)")
    moves = story[:, :, 1] == WENT  # (S, n) slots holding a move
    last = story.shape[1] - 1 - np.argmax(moves[:, ::-1], axis=1)  # (S,) latest move
    place = story[np.arange(story.shape[0]), last, 4]
    return np.where(moves.any(axis=1), place, -1)

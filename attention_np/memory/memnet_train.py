"""Training a memory network on the toy stories of ``tasks``, and a baseline for it.

``train_memnet`` is the loop of lesson 21: sample a batch of stories, forward,
softmax cross-entropy on the answer word, ``memnet_backward``, one Adam step. Every
random choice (initial tables, batches) comes from the one ``rng`` it is given, so a
seed reproduces a run exactly.

``current_places`` marks, for every story, the places where somebody is now (each
person's latest move): a reading that needs no chaining. A reader that picks one of
those places at random answers a two-fact question ("where is the football?") right
with probability 1 / (number of current places), since the holder is one of them.

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


def train_memnet(
    stories,
    *,
    n_hops,
    width,
    steps,
    batch,
    lr,
    rng,
    position_enc=True,
    temporal=True,
):
    """Train a K-hop memory network with Adam on ``stories`` (from ``toy_stories``).

    Args:
        stories: dict with story (S, n, 5), question (S, 5) and answer (S,) ids.
        n_hops: K >= 1; width: embedding width d >= 1.
        steps: Adam steps; batch: stories per step (drawn with replacement); lr > 0.
        rng: np.random.Generator for the initial tables and the batches.
        position_enc: the position encoding of the words (else a bag of words).
        temporal: learn the temporal encodings T_k (else they stay zero).

    Returns:
        params (E_0..E_K, T_0..T_K), losses (steps,) the loss of every step.
    """
    story = _check_stories(stories)
    steps, batch = V.positive_int("steps", steps), V.positive_int("batch", batch)
    V.real("lr", lr, lo=0.0, lo_open=True)
    V.rng_arg(rng)
    temporal = V.bool_arg("temporal", temporal)
    params = init_memnet_params(
        len(VOCAB), width, n_hops=n_hops, n_memories=story.shape[1], rng=rng
    )
    frozen = [] if temporal else [k for k in params if k.startswith("T_")]
    for k in frozen:
        params[k][:] = 0.0  # no temporal encoding: zero, and never updated
    state, losses = adam_init(params), np.empty(steps)
    for i in range(steps):
        idx = rng.integers(0, story.shape[0], batch)  # (batch,) stories of this step
        logits, cache = memnet_forward(
            story[idx], stories["question"][idx], params, position_enc=position_enc
        )
        loss, loss_cache = cross_entropy_forward(logits, stories["answer"][idx])
        grads = memnet_backward(cross_entropy_backward(1.0, loss_cache), cache)
        for k in frozen:
            grads[k] = np.zeros_like(grads[k])
        adam_step(params, grads, state, lr=lr)
        losses[i] = float(loss)
    return params, losses


def _moves(story):
    story = V.int_array("story", story, ndim=3, lo=0)
    if story.shape[-1] != 5:
        raise ValueError(f"story{story.shape} must be (S, n, J = 5)")
    return story, story[:, :, 1] == WENT  # (S, n) slots holding a move


def current_places(story):
    """(S, V) True where a place is somebody's current place (their latest move).

    Args:
        story: (S, n, 5) word ids as ``toy_stories`` makes them.
    """
    story, moves = _moves(story)
    S, n, _ = story.shape
    here = np.zeros((S, len(VOCAB)), dtype=bool)
    for i in range(n):
        person = story[:, i, 0]  # (S,)
        later = moves[:, i + 1 :] & (story[:, i + 1 :, 0] == person[:, None])
        latest = moves[:, i] & ~later.any(axis=1)  # (S,) this is their last move
        here[np.flatnonzero(latest), story[latest, i, 4]] = True
    return here

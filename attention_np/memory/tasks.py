"""Small synthetic tasks for the memory notebooks, generated locally from a given rng.

- ``associative_recall``: episodes of (key, value) symbol pairs followed by a query key.
- ``shifting_regression``: TTT views whose key -> value map changes halfway.
- ``permutation_tokens``: token streams that follow a per-sequence permutation.
- ``toy_stories``: bAbI-like stories ("Mary went to the kitchen .") with questions
  about where a person or an object is, answered by one or two supporting facts.
"""

import numpy as np

from .. import validate as V


def associative_recall(n_pairs, *, n_keys, n_values, batch, rng):
    """Episodes of n_pairs distinct keys, each with a random value, and one query.

    Returns:
        keys (batch, n_pairs) ids in [0, n_keys), values (batch, n_pairs) ids in
        [0, n_values), query (batch,) the position of the queried pair.
    """
    n_pairs, n_keys = (
        V.positive_int("n_pairs", n_pairs),
        V.positive_int("n_keys", n_keys),
    )
    n_values, batch = (
        V.positive_int("n_values", n_values),
        V.positive_int("batch", batch),
    )
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs={n_pairs} distinct keys need n_keys >= n_pairs")
    V.rng_arg(rng)
    keys = np.stack([rng.permutation(n_keys)[:n_pairs] for _ in range(batch)])
    values = rng.integers(0, n_values, size=(batch, n_pairs))
    return keys, values, rng.integers(0, n_pairs, size=batch)


def shifting_regression(n, width, *, rng, shift_at=None, batch=1):
    """TTT views x_q, x_k, x_v (batch, n, F) whose target map changes at ``shift_at``.

    Returned in ``ttt_linear_forward``'s order (queries first), then the two maps.

    The reconstruction target is x_v - x_k = LN(x_k M), with M = M_1 before the shift
    and M_2 from it on (LN without gain or shift): a TTT-Linear layer can fit either
    phase exactly, but not both at once.
    """
    n, width = V.positive_int("n", n), V.positive_int("width", width)
    batch = V.positive_int("batch", batch)
    V.rng_arg(rng)
    shift_at = n // 2 if shift_at is None else shift_at
    shift_at = V.positive_int("shift_at", shift_at, allow_zero=True)
    if shift_at > n:
        raise ValueError(f"shift_at must lie in [0, n={n}], got {shift_at}")
    x_k = rng.standard_normal((batch, n, width))
    maps = rng.standard_normal((2, width, width)) / np.sqrt(width)
    before = (np.arange(n) < shift_at)[None, :, None]  # (1, n, 1)
    z = np.where(before, x_k @ maps[0], x_k @ maps[1])  # (batch, n, F)
    z = z - z.mean(axis=-1, keepdims=True)
    target = z / np.sqrt((z * z).mean(axis=-1, keepdims=True) + 1e-6)
    return x_k.copy(), x_k, x_k + target, maps


def permutation_tokens(length, vocab, *, batch, rng, p_jump=0.1):
    """Token ids (batch, length): next = perm[current], or a random token w.p. p_jump.

    Every sequence has its own random permutation, so its transitions can only be
    learned from the sequence itself (in context), never from training.
    """
    length, vocab = V.positive_int("length", length), V.positive_int("vocab", vocab)
    batch = V.positive_int("batch", batch)
    p_jump = V.real("p_jump", p_jump, lo=0.0, hi=1.0)
    V.rng_arg(rng)
    perms = np.stack([rng.permutation(vocab) for _ in range(batch)])  # (batch, V)
    ids = np.empty((batch, length), dtype=np.int64)
    ids[:, 0] = rng.integers(0, vocab, size=batch)
    for t in range(1, length):
        jump = rng.random(batch) < p_jump
        follow = perms[np.arange(batch), ids[:, t - 1]]
        ids[:, t] = np.where(jump, rng.integers(0, vocab, size=batch), follow)
    return ids, perms


PEOPLE = ("Mary", "John", "Sandra", "Daniel")
PLACES = ("kitchen", "garden", "hallway", "bathroom", "office", "bedroom")
OBJECTS = ("apple", "football", "milk")
WORDS = ("<pad>", "went", "to", "the", "picked", "up", "where", "is", "?")
VOCAB = WORDS + PEOPLE + PLACES + OBJECTS


def _story(rng, n_sentences):
    """One story as word lists, its question, answer and supporting sentence indices."""
    sents, where, holder = [], {}, {}
    for _ in range(n_sentences):
        person = PEOPLE[rng.integers(len(PEOPLE))]
        free = [o for o in OBJECTS if o not in holder]
        if free and person in where and rng.random() < 0.35:  # only people seen
            obj = free[rng.integers(len(free))]  # somewhere pick things up
            holder[obj] = (person, len(sents))
            sents.append([person, "picked", "up", "the", obj])
        else:
            where[person] = (PLACES[rng.integers(len(PLACES))], len(sents))
            sents.append([person, "went", "to", "the", where[person][0]])
    if holder and rng.random() < 0.6:  # two facts: who holds it, where they are now
        obj = list(holder)[rng.integers(len(holder))]
        person, pick = holder[obj]
        place, moved = where[person]
        return sents, ["where", "is", "the", obj, "?"], place, (pick, moved)
    person = list(where)[rng.integers(len(where))]
    place, moved = where[person]
    return sents, ["where", "is", person, "?"], place, (moved, -1)


def toy_stories(n_stories, *, rng, min_sentences=3, max_sentences=8):
    """bAbI-like stories encoded for ``memnet_forward``.

    Sentences are right-aligned in the n = max_sentences slots (empty slots first),
    so slot n - 1 always holds the latest sentence and a temporal encoding can learn
    recency.

    Returns:
        dict with story (S, n, 5) ids, question (S, 5) ids, answer (S,) ids,
        support (S, 2) slots of the supporting facts (-1 = none), texts (a list of
        (sentences, question, answer) strings) and vocab (a tuple of words).
    """
    n_stories = V.positive_int("n_stories", n_stories)
    lo = V.positive_int("min_sentences", min_sentences)
    hi = V.positive_int("max_sentences", max_sentences)
    if lo > hi:
        raise ValueError(f"min_sentences={lo} must be <= max_sentences={hi}")
    V.rng_arg(rng)
    out = {
        "story": np.zeros((n_stories, hi, 5), dtype=np.int64),
        "question": np.zeros((n_stories, 5), dtype=np.int64),
        "answer": np.zeros(n_stories, np.int64),
        "support": np.full((n_stories, 2), -1),
        "texts": [],
        "vocab": VOCAB,
    }
    for s in range(n_stories):
        _encode(out, s, *_story(rng, int(rng.integers(lo, hi + 1))))
    return out


def _encode(out, s, sents, q, a, sup):
    """Write story s (right-aligned in its slots) into the arrays of ``out``."""
    index = {w: i for i, w in enumerate(VOCAB)}
    off = out["story"].shape[1] - len(sents)
    for i, words in enumerate(sents):
        out["story"][s, off + i] = [index[w] for w in words]
    out["question"][s, : len(q)] = [index[w] for w in q]
    out["answer"][s] = index[a]
    out["support"][s] = [off + i if i >= 0 else -1 for i in sup]
    out["texts"].append(([" ".join(w) for w in sents], " ".join(q), a))

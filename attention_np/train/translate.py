"""A toy translation task whose word alignment is not the identity.

The source language is verb-final (subject object verb, SOV) with adjectives before
their noun and no articles; the target language is subject verb object (SVO), puts
adjectives after their noun in mirrored order and an article before every noun whose
form follows the noun's gender ("le" or "la"):

    source:  big black cat   small mouse   chases         (3 .. 7 words)
    target:  le chat noir grand   chasse   la souris petit   EOS    (5 .. 9 + EOS)

Every target word has one source word it comes from (the article: its noun), its
**gold source position**; the verb moves from last to third, adjectives swap sides,
so the gold alignment is a permutation with insertions, not a diagonal. Sentences
whose hash falls in one tenth of the range are **held out**: training never sees them
and the evaluation uses only them.

Shape legend: B batch, M = 7 source positions, N = 10 target positions (padded).
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V

NOUNS = (
    ("cat", "chat", "le"),
    ("dog", "chien", "le"),
    ("bird", "oiseau", "le"),
    ("horse", "cheval", "le"),
    ("fish", "poisson", "le"),
    ("mouse", "souris", "la"),
    ("cow", "vache", "la"),
    ("owl", "chouette", "la"),
    ("frog", "grenouille", "la"),
    ("goat", "chevre", "la"),
)
ADJECTIVES = (
    ("big", "grand"),
    ("small", "petit"),
    ("black", "noir"),
    ("white", "blanc"),
    ("old", "vieux"),
    ("young", "jeune"),
)
VERBS = (
    ("sees", "voit"),
    ("chases", "chasse"),
    ("likes", "aime"),
    ("eats", "mange"),
    ("follows", "suit"),
    ("fears", "craint"),
)
MAX_ADJ = 2  # adjectives per noun phrase: 0, 1 or 2 (distinct)

PAD, BOS, EOS = 0, 1, 2  # PAD is id 0 on both sides
SRC_WORDS = ("_",) + tuple(n[0] for n in NOUNS) + tuple(a[0] for a in ADJECTIVES)
SRC_WORDS += tuple(v[0] for v in VERBS)
TGT_WORDS = ("_", "<s>", "</s>", "le", "la") + tuple(n[1] for n in NOUNS)
TGT_WORDS += tuple(a[1] for a in ADJECTIVES) + tuple(v[1] for v in VERBS)
SRC_VOCAB, TGT_VOCAB = len(SRC_WORDS), len(TGT_WORDS)
MAX_SRC = 2 * (MAX_ADJ + 1) + 1  # M: two noun phrases and a verb
MAX_TGT = 2 * (MAX_ADJ + 2) + 2  # N: two phrases with articles, verb, EOS
HELD_OUT = 10  # one sentence in HELD_OUT is held out

_N0, _A0 = 1, 1 + len(NOUNS)  # first source id of nouns, adjectives, verbs
_V0 = _A0 + len(ADJECTIVES)
_T_NOUN, _T_ADJ = 5, 5 + len(NOUNS)  # first target id of nouns, adjectives, verbs
_T_VERB = _T_ADJ + len(ADJECTIVES)
_ARTICLE = {"le": 3, "la": 4}


class TranslationBatch(NamedTuple):
    """src (B, M) ids, src_lengths (B,), tgt_in (B, N) = BOS y_0 ..., tgt_out (B, N)
    = y_0 .. EOS, tgt_mask (B, N) True = a real target token, gold (B, N) source
    position of each tgt_out token (-1 for EOS and padding)."""

    src: np.ndarray
    src_lengths: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    tgt_mask: np.ndarray
    gold: np.ndarray


def _phrase(rng):
    """(noun index, adjective indices) of one random noun phrase."""
    n_adj = int(rng.integers(0, MAX_ADJ + 1))
    return int(rng.integers(len(NOUNS))), rng.permutation(len(ADJECTIVES))[:n_adj]


def _translate(subj, obj, verb):
    """Source ids, target ids (with EOS) and gold source positions of one sentence."""
    src, tgt, gold = [], [], []
    for noun, adjs in (subj, obj):  # source: adjectives, noun
        src += [_A0 + a for a in adjs] + [_N0 + noun]
    src.append(_V0 + verb)
    start = 0
    for i, (noun, adjs) in enumerate((subj, obj)):  # target: article noun adjs
        at_noun = start + len(adjs)
        tgt += [_ARTICLE[NOUNS[noun][2]], _T_NOUN + noun]
        gold += [at_noun, at_noun]  # the article agrees with its noun
        tgt += [_T_ADJ + a for a in adjs[::-1]]  # mirrored order
        gold += list(range(at_noun - 1, start - 1, -1))
        start = at_noun + 1
        if i == 0:  # the verb after the subject
            tgt.append(_T_VERB + verb)
            gold.append(len(src) - 1)
    return src, tgt + [EOS], gold + [-1]


def is_held_out(src):
    """True for the sentences reserved for evaluation (a hash of the source ids)."""
    src = V.token_ids("src", src, SRC_VOCAB, ndim=1)
    h = 0
    for t in src[src != PAD]:
        h = (h * 1000003 + int(t)) % 2**31
    return (h * 2654435761 >> 11) % HELD_OUT == 0


def sample_sentences(rng, n, *, held_out):
    """n random sentences as (source ids, target ids, gold) lists, all held out or
    none held out."""
    V.rng_arg(rng)
    n = V.positive_int("n", n)
    held_out = V.bool_arg("held_out", held_out)
    out = []
    while len(out) < n:
        subj, obj = _phrase(rng), _phrase(rng)
        if obj[0] == subj[0]:  # two different animals
            continue
        src, tgt, gold = _translate(subj, obj, int(rng.integers(len(VERBS))))
        if is_held_out(np.array(src)) == held_out:
            out.append((src, tgt, gold))
    return out


def translation_batch(rng, batch_size, *, held_out=False):
    """A padded ``TranslationBatch`` of random training (or held-out) sentences."""
    batch_size = V.positive_int("batch_size", batch_size)
    sentences = sample_sentences(rng, batch_size, held_out=held_out)
    B = len(sentences)
    src = np.full((B, MAX_SRC), PAD)
    tgt = np.full((B, MAX_TGT + 1), PAD)  # (B, N + 1): BOS y_0 .. EOS
    gold = np.full((B, MAX_TGT), -1)
    lengths = np.zeros(B, dtype=np.int64)
    tgt[:, 0] = BOS
    for b, (s, t, g) in enumerate(sentences):
        src[b, : len(s)], lengths[b] = s, len(s)
        tgt[b, 1 : len(t) + 1] = t
        gold[b, : len(g)] = g
    tgt_out = tgt[:, 1:]
    return TranslationBatch(src, lengths, tgt[:, :-1], tgt_out, tgt_out != PAD, gold)


def src_labels(ids):
    """Words for plot axes (padding as '_')."""
    ids = V.token_ids("ids", ids, SRC_VOCAB, ndim=1)
    return [SRC_WORDS[int(t)] for t in ids]


def tgt_labels(ids):
    """Words for plot axes ('<s>' start, '</s>' end, '_' padding)."""
    ids = V.token_ids("ids", ids, TGT_VOCAB, ndim=1)
    return [TGT_WORDS[int(t)] for t in ids]


def alignment_scores(cross_weights, gold):
    """(L, H): share of target tokens whose largest cross-attention weight lands on
    their gold source position, for every decoder layer and head.

    Args:
        cross_weights: (L, B, H, N, M) from ``EncDecCache.cross_weights``.
        gold: (B, N) gold source positions, -1 where a token has none (not counted).
    """
    W = V.float_array("cross_weights", cross_weights, ndim=5)
    gold = np.asarray(gold)
    if gold.shape != (W.shape[1], W.shape[3]) or gold.dtype.kind not in "iu":
        raise ValueError(
            f"gold{gold.shape} must be (B, N) = {(W.shape[1], W.shape[3])} ints"
        )
    counted = gold >= 0  # (B, N)
    hits = W.argmax(axis=-1) == gold[None, :, None, :]  # (L, B, H, N)
    return (hits & counted[None, :, None, :]).sum(axis=(1, 3)) / max(1, counted.sum())

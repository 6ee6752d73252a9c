"""Inputs on which two explanations of a trained head disagree (lesson 10).

A mechanism read off a heatmap is one story among several; an input on which the
stories predict different things decides between them.

    wrong_digit_batch    reversal, with one fed-in answer digit replaced by the digit
                         of another position p. A head that finds key 2L - q by its
                         *position* stays there; one that looks for the *same digit*
                         as its query moves to p.
    permuted_copy_batch  copy, with a second half that is a permutation of the first.
                         An induction head predicts the token that followed the
                         current one; "copy in order" predicts the next token of the
                         original order.
    copy_query_groups    the copy task's query positions by role: the unscored first
                         half, the separator, the copy, the padding after it.

Every batch holds distinct digits (so a digit occurs once and "the position that
holds this digit" is unique) and is drawn from an explicit rng. Shape legend: B batch,
L number of digits, N = 2L model positions.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


class WrongDigitBatch(NamedTuple):
    """Reversal inputs with one wrong fed-in digit per example.

    inputs (B, 2L) ids; clean (B, 2L) the same examples without the change;
    digits (B, L) the x of each example; query (B,) the answer position q = L + j
    (1 <= j < L) whose fed-in token x_{L-j} was replaced by x_p; source (B,) that p
    (1 <= p < L, p != L - j).
    """

    inputs: np.ndarray
    clean: np.ndarray
    digits: np.ndarray
    query: np.ndarray
    source: np.ndarray


class PermutedCopyBatch(NamedTuple):
    """Copy inputs whose second half is a permutation of the first.

    inputs (B, 2L) ids. For the queries at positions L + 1 .. 2L - 1 (B, L - 1):
    induction, the token that followed the query's token in the first half (-1 when
    it was the last one); in_order, the token of the original order x_{i+1};
    disagree, where both are defined and differ.
    """

    inputs: np.ndarray
    induction: np.ndarray
    in_order: np.ndarray
    disagree: np.ndarray


def _sizes(rng, batch_size, length, n_symbols, min_length):
    V.rng_arg(rng)
    B = V.positive_int("batch_size", batch_size)
    L = V.positive_int("length", length)
    S = V.positive_int("n_symbols", n_symbols)
    if L < min_length:
        raise ValueError(f"length={L} must be >= {min_length}")
    if S < L:
        raise ValueError(f"n_symbols={S} must be >= length={L} (distinct digits)")
    return B, L, S


def _distinct(rng, B, L, S):
    return np.argsort(rng.random((B, S)), axis=1)[:, :L]  # (B, L) distinct digits


def wrong_digit_batch(rng, batch_size, *, length, n_symbols):
    """Reversal examples x | reversed(x) with one fed-in answer digit made wrong.

    The answer query at position q = L + j is fed y_{j-1} = x_{L-j}, which also
    sits at key L - j = 2L - q. It gets x_p instead (p != L - j, p >= 1 so that
    x_p has a left neighbour x_{p-1}). Position-finding heads keep key 2L - q;
    digit-matching heads move to key p.

    Args:
        rng: np.random.Generator.
        batch_size: B.
        length: L >= 3 digits; n_symbols: S >= L (the separator is S).
    """
    B, L, S = _sizes(rng, batch_size, length, n_symbols, 3)
    x = _distinct(rng, B, L, S)
    seq = np.concatenate([x, np.full((B, 1), S), x[:, ::-1]], axis=1)  # (B, 2L+1)
    clean = seq[:, :-1]  # (B, 2L) teacher forcing
    inputs = clean.copy()
    j = rng.integers(1, L, size=B)  # (B,) answer step; its fed digit is x_{L-j}
    # p uniform over 1 .. L-1 without L - j: draw from L - 2 values, skip L - j
    p = rng.integers(1, L - 1, size=B)  # (B,) in 1 .. L-2
    p = np.where(p >= L - j, p + 1, p)  # (B,) in 1 .. L-1, never L - j
    rows = np.arange(B)
    inputs[rows, L + j] = x[rows, p]
    return WrongDigitBatch(inputs, clean, x, L + j, p)


def permuted_copy_batch(rng, batch_size, *, length, n_symbols):
    """Copy examples x | x[perm] of full length L, for the induction probe.

    Args:
        rng: np.random.Generator.
        batch_size: B.
        length: L >= 2 digits; n_symbols: S >= L (the separator is S).
    """
    B, L, S = _sizes(rng, batch_size, length, n_symbols, 2)
    x = _distinct(rng, B, L, S)
    perm = np.argsort(rng.random((B, L)), axis=1)  # (B, L) a permutation each
    shuffled = np.take_along_axis(x, perm, axis=1)  # (B, L)
    inputs = np.concatenate([x, np.full((B, 1), S), shuffled[:, :-1]], axis=1)
    after = perm[:, :-1] + 1  # (B, L-1) index in x of the token after the query's
    induction = np.where(
        after < L, np.take_along_axis(x, np.minimum(after, L - 1), 1), -1
    )  # (B, L-1)
    in_order = x[:, 1:]  # (B, L-1) copy in order: query L + 1 + i -> x_{i+1}
    disagree = (induction >= 0) & (induction != in_order)
    return PermutedCopyBatch(inputs, induction, in_order, disagree)


def copy_query_groups(lengths, n_positions):
    """Boolean (B, N) masks of the copy task's query positions, by role.

    For an example of l digits (inputs x_0..x_{l-1} | y_0..y_{l-2} | padding):
    "first half" = queries 1 .. l-1 (unscored; query 0 can only see itself),
    "separator" = query l (predicts y_0 = x_0), "copy" = queries l+1 .. 2l-1,
    "padding" = queries 2l .. N-1 (unscored).

    Args:
        lengths: (B,) ints l >= 1 (``Batch.mask.sum(axis=1)``).
        n_positions: N >= 2 max(l) (the model's input length).
    """
    N = V.positive_int("n_positions", n_positions)
    l = V.int_array("lengths", lengths, ndim=1, lo=1)[:, None]  # (B, 1)
    if l.size and 2 * l.max() > N:
        raise ValueError(f"lengths up to {l.max()} need n_positions >= {2 * l.max()}")
    q = np.arange(N)[None, :]  # (1, N)
    return {
        "first half": (q >= 1) & (q < l),
        "separator": q == l,
        "copy": (q > l) & (q < 2 * l),
        "padding": q >= 2 * l,
    }

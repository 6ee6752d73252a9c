"""Communication volume of one attention layer, ring vs Ulysses (in elements).

N tokens over P ranks (c = N / P each), model width D = H d (all heads).

- Ring, per step and rank: the key and value block it holds, 2 c D elements. The
  forward makes P - 1 hops: 2 (P - 1) c D ~ 2 N D per rank, whatever P. The
  backward sends K, V again (P - 1 hops) plus the dK, dV accumulators (P hops).
  A transfer can hide behind the step's 4 c^2 d-per-head compute when c is large
  enough (Liu et al. 2023: c >= F / B, FLOP/s over bytes/s) and something moves
  the bytes while the rank computes (lesson 17 measures whether MPI does).
- Ulysses, per rank and layer (forward): all-to-alls of Q, K, V and the output,
  4 c D elements, of which the share (P - 1) / P leaves the rank. The DeepSpeed
  Ulysses blog writes this as 4 N D / P "per link": it falls as 1 / P, so it stays
  constant when N and P grow together.
"""

from .. import validate as V
from .layouts import check_split


def ring_step_elements(seq_len, n_ranks, width):
    """Elements one rank sends per ring step (K and V blocks): 2 c D."""
    c = check_split("contiguous", seq_len, n_ranks)
    return 2 * c * V.positive_int("width", width)


def ring_elements(seq_len, n_ranks, width, *, backward=False):
    """Elements one rank sends in a ring forward (P - 1 hops of K, V), or backward
    (P - 1 hops of K, V, and P hops of dK, dV; none with one rank)."""
    step = ring_step_elements(seq_len, n_ranks, width)
    if V.bool_arg("backward", backward) and n_ranks > 1:
        return step * (2 * n_ranks - 1)
    return step * (n_ranks - 1)


def ulysses_elements(seq_len, n_ranks, width, *, exact=True):
    """Elements one rank sends in Ulysses' forward: Q, K, V in, the output back.

    exact: 4 c D (P - 1) / P (what leaves the rank); else the blog's 4 N D / P.
    """
    c = check_split("contiguous", seq_len, n_ranks)
    width = V.positive_int("width", width)
    if V.bool_arg("exact", exact):
        return 4 * c * width * (n_ranks - 1) // n_ranks
    return 4 * seq_len * width // n_ranks


def comm_table(seq_len, ranks, width):
    """Rows (P, ring per step, ring forward, Ulysses forward) for a few values of P.

    ranks: a non-empty list of positive ints, each dividing seq_len (a bad entry is
    named as ``ranks[i]``).
    """
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__iter__"):
        raise TypeError(f"ranks must be a list of ints, got {type(ranks).__name__}")
    ranks = list(ranks)
    if not ranks:
        raise ValueError("ranks must hold at least one number of ranks, got []")
    N = V.positive_int("seq_len", seq_len)
    V.positive_int("width", width)
    for i, P in enumerate(ranks):
        V.positive_int(f"ranks[{i}]", P)
        if N % P:
            raise ValueError(
                f"ranks[{i}]={P} must divide seq_len={N} (each rank holds N / P "
                f"tokens), got ranks={ranks}"
            )
    return [
        (
            P,
            ring_step_elements(seq_len, P, width),
            ring_elements(seq_len, P, width),
            ulysses_elements(seq_len, P, width),
        )
        for P in ranks
    ]

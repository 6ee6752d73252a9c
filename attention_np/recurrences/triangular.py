"""Inverting unit lower-triangular matrices, A = I + L, by doubling (the UT transform).

The delta rule's chunkwise and parallel forms solve A U = R with A unit lower
triangular. NumPy has no triangular solver, and np.linalg.solve (an LU with
pivoting) ignores the structure, so T = A^{-1} is built from the inverses of ever
larger diagonal blocks:

    inv([[A, 0], [X, B]]) = [[A^-1, 0], [-B^-1 X A^-1, B^-1]],

starting from 1 x 1 blocks (the ones on the diagonal). Each doubling step handles
every block of the level at once: two matrix products over all leading dimensions
and all blocks (``quarters`` views them without copying), log2(C) steps in all. T
is also what the backward needs: A^T dR = dZ gives dR = T^T dZ.
"""

import numpy as np


def next_power_of_two(n):
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, (n - 1).bit_length())


def pad_rows(x, n, mode="constant"):
    """x (..., C, w) with rows appended up to n: zeros, or copies of the last row
    (mode="edge")."""
    extra = n - x.shape[-2]
    if extra == 0:
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, extra), (0, 0)], mode=mode)


def diagonal(X):
    """Writable view (..., C) of the diagonals of X (..., C, C)."""
    C, (st_r, st_c) = X.shape[-1], X.strides[-2:]
    return np.lib.stride_tricks.as_strided(
        X, shape=X.shape[:-2] + (C,), strides=X.strides[:-2] + (st_r + st_c,)
    )


def quarters(P, s, r, c):
    """Writable view (..., n, s, s) of one quarter of every diagonal 2s x 2s block
    of a contiguous (..., 2s n, 2s n) array: rows in half r, columns in half c of
    each block (r, c in {0, 1}; (1, 0) is the block below the diagonal)."""
    n, (st_r, st_c) = P.shape[-1] // (2 * s), P.strides[-2:]
    return np.lib.stride_tricks.as_strided(
        P[..., r * s :, c * s :],
        shape=P.shape[:-2] + (n, s, s),
        strides=P.strides[:-2] + (2 * s * (st_r + st_c), st_r, st_c),
    )


def unit_lower_inverse(L):
    """T = (I + L)^{-1} for strictly lower-triangular L (..., C, C).

    C is padded to a power of two with zeros (the padding's inverse is I).
    """
    C = L.shape[-1]
    Cp = next_power_of_two(C)
    pad = [(0, 0)] * (L.ndim - 2) + [(0, Cp - C)] * 2
    L = np.ascontiguousarray(np.pad(L, pad) if Cp != C else L)
    T = np.zeros_like(L)
    diagonal(T)[...] = 1.0  # 1 x 1 blocks
    if Cp > 1:  # 2 x 2 blocks: A = B = 1, so -B^-1 X A^-1 = -X (no tiny products)
        quarters(T, 1, 1, 0)[...] = -quarters(L, 1, 1, 0)
    s = 2
    while s < Cp:  # the inverses of the s x s diagonal blocks are in T
        X = quarters(L, s, 1, 0) @ quarters(T, s, 0, 0)  # X A^-1
        quarters(T, s, 1, 0)[...] = -(quarters(T, s, 1, 1) @ X)  # -B^-1 X A^-1
        s *= 2
    return T if Cp == C else np.ascontiguousarray(T[..., :C, :C])

"""Inverting unit lower-triangular matrices, A = I + L, in blocks (the UT transform).

The delta rule's chunkwise and parallel forms solve A U = R with A unit lower
triangular. NumPy has no triangular solver, and np.linalg.solve (an LU with
pivoting) ignores the structure, so T = A^{-1} is built by blocks: substitution
inside BASE x BASE diagonal blocks (row i of T needs rows < i only), then blocks of
twice the size from two halves, all with matrix products over every leading
dimension at once. T is also what the backward needs: A^T dR = dZ gives dR = T^T dZ.
"""

import numpy as np

BASE = 16  # diagonal blocks inverted by substitution in unit_lower_inverse


def _substitute(L):
    """(I + L)^{-1} row by row: T_i = e_i - L_i T (L strictly lower, small)."""
    n = L.shape[-1]
    T = np.broadcast_to(np.eye(n, dtype=L.dtype), L.shape).copy()
    for i in range(1, n):
        T[..., i, :i] = -(L[..., i : i + 1, :i] @ T[..., :i, :i])[..., 0, :]
    return T


def _diagonal_blocks(L, T):
    """T's diagonal BASE-blocks = the inverses of L's, all substituted at once."""
    C = L.shape[-1]
    nb = C // BASE
    if nb > 1 and nb * BASE == C:  # gather the blocks into one batch
        L5 = L.reshape(L.shape[:-2] + (nb, BASE, nb, BASE))
        blocks = np.moveaxis(np.diagonal(L5, axis1=-4, axis2=-2), -1, -3)
        inv = _substitute(blocks)  # (..., nb, BASE, BASE)
        for i in range(nb):
            T[..., i * BASE : (i + 1) * BASE, i * BASE : (i + 1) * BASE] = inv[
                ..., i, :, :
            ]
        return
    for s in range(0, C, BASE):
        e = min(C, s + BASE)
        T[..., s:e, s:e] = _substitute(L[..., s:e, s:e])


def unit_lower_inverse(L):
    """T = (I + L)^{-1} for strictly lower-triangular L (..., C, C).

    Diagonal blocks of BASE rows by substitution, then blocks of twice the size
    from two halves: inv([[A, 0], [X, B]]) = [[A^-1, 0], [-B^-1 X A^-1, B^-1]].
    Every step is a matrix product over all leading dimensions at once.
    """
    C = L.shape[-1]
    T = np.zeros_like(L)
    _diagonal_blocks(L, T)
    size = BASE
    while size < C:
        for s in range(0, C - size, 2 * size):
            m, e = s + size, min(C, s + 2 * size)
            X = L[..., m:e, s:m] @ T[..., s:m, s:m]
            T[..., m:e, s:m] = -T[..., m:e, m:e] @ X
        size *= 2
    return T

"""Positional information: sinusoidal encodings, rotary embeddings (RoPE), ALiBi.

    sinusoidal (Vaswani et al. 2017):  PE[p, 2i] = sin(p w_i),  PE[p, 2i+1] = cos(p w_i)
    RoPE (Su et al. 2021):             rotate the pair (x_2i, x_2i+1) by the angle p w_i
    ALiBi (Press et al. 2021):         score_ij += -m_h (i - j), one slope m_h per head

with frequencies w_i = base^(-2i/d), i = 0 .. d/2 - 1. Sinusoids are added to the
token embeddings; RoPE rotates queries and keys inside attention, so a score depends
only on the offset between the two positions; ALiBi adds a per-head linear penalty to
the scores and uses no position vectors at all.

Shape legend: N positions, d width of the rotated vectors (head width for RoPE),
D model width, H heads, M key positions.

RoPE layouts. The RoFormer paper rotates *interleaved* pairs (x_0, x_1), (x_2, x_3),
..., as does Meta's reference LLaMA code; GPT-NeoX and the Hugging Face port of LLaMA
rotate the pairs (x_i, x_{i+d/2}) ("rotate_half", hence its permuted checkpoints). The
two maps are the same rotation up to a fixed permutation of the d dimensions
(``interleaved_to_half``), so a checkpoint moves from one layout to the other only
after permuting the columns of W_q and W_k inside every head.
"""

import math

import numpy as np

from . import validate as V

LAYOUTS = ("interleaved", "half")


def _even_width(name, d):
    d = V.positive_int(name, d)
    if d % 2:
        raise ValueError(f"{name}={d} must be even: positions rotate pairs of dims")
    return d


def frequencies(d, *, base=10000.0):
    """(d/2,) angular frequencies w_i = base^(-2i/d), i = 0 .. d/2 - 1."""
    d = _even_width("d", d)
    base = V.real("base", base, lo=0.0, lo_open=True)  # base <= 0: NaN frequencies
    return base ** (-np.arange(0, d, 2) / d)  # (d/2,)


def sinusoidal_encoding(n_positions, d_model, *, base=10000.0):
    """(N, D) table: PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i)."""
    n = V.positive_int("n_positions", n_positions, allow_zero=True)
    w = frequencies(_even_width("d_model", d_model), base=base)  # (D/2,)
    angles = np.arange(n)[:, None] * w  # (N, D/2)
    pe = np.empty((n, d_model))  # (N, D)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


def sinusoidal_shift_matrix(k, d_model, *, base=10000.0):
    """(D, D) block-diagonal R_k with PE[p + k] = R_k @ PE[p] for every p.

    Each 2x2 block rotates (sin a, cos a) into (sin(a + b), cos(a + b)), b = k w_i;
    it does not depend on p, so a shift by k is a fixed linear map of the encoding.
    """
    k = V.real("k", k)
    b = k * frequencies(_even_width("d_model", d_model), base=base)  # (D/2,)
    R = np.zeros((d_model, d_model))  # (D, D)
    i = np.arange(0, d_model, 2)
    R[i, i], R[i, i + 1] = np.cos(b), np.sin(b)  # sin(a+b) = sin a cos b + cos a sin b
    R[i + 1, i], R[i + 1, i + 1] = -np.sin(b), np.cos(b)  # cos(a+b) = cos a cos b - ..
    return R


# --- RoPE ----------------------------------------------------------------------------


def _pairs(x, layout):
    """The two halves of every rotated pair: (..., d/2) each."""
    if layout == "interleaved":
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def _rotate(x, cos, sin, layout):
    """Rotate every pair (a, b) of x to (a cos - b sin, a sin + b cos)."""
    a, b = _pairs(x, layout)
    out = np.empty_like(x)  # (..., N, d)
    out_a, out_b = _pairs(out, layout)  # views into out
    out_a[...] = a * cos - b * sin
    out_b[...] = a * sin + b * cos
    return out


def _positions(positions, x):
    """positions as an array that broadcasts to x.shape[:-1] = (..., N).

    Integer or float, finite; (B, N) for x of shape (B, H, N, d) is one row of
    positions per sequence, shared by the heads.
    """
    N = x.shape[-2]
    if positions is None:
        return np.arange(N)  # (N,)
    pos = np.asarray(positions)
    if pos.dtype.kind not in "iuf":
        raise TypeError(f"positions must be integers or floats, got dtype {pos.dtype}")
    if pos.dtype.kind == "f" and not np.all(np.isfinite(pos)):
        raise ValueError(f"positions must be finite, got NaN or inf in {pos.shape}")
    if pos.ndim == 2 and x.ndim == 4:
        pos = pos[:, None, :]  # (B, 1, N): the same positions for every head
    try:
        fits = np.broadcast_shapes(pos.shape, x.shape[:-1]) == x.shape[:-1]
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"positions{np.shape(positions)} must be (N,) = ({N},), (B, N) or "
            f"broadcast to x{x.shape}[:-1]"
        )
    return pos


def rope_forward(x, positions=None, *, base=10000.0, layout="interleaved"):
    """Rotary position embedding: rotate pair i of position p by the angle p w_i.

    Args:
        x: (..., N, d) queries or keys (d even).
        positions: integer or float positions of the N rows, (N,), (B, N) for x
            (B, H, N, d), or broadcastable to (..., N); default 0..N-1. A KV-cache
            step passes its absolute positions, e.g. [t].
        base: frequency base (10000 in the paper), finite and > 0.
        layout: "interleaved" pairs (x_2i, x_2i+1) as in RoFormer, or "half" pairs
            (x_i, x_i+d/2) as in GPT-NeoX and the Hugging Face LLaMA.

    Returns:
        out (..., N, d) and a cache (cos, sin, layout, x.shape).
    """
    x = V.float_array("x", x, min_ndim=2)
    d = _even_width("x.shape[-1]", x.shape[-1])
    layout = V.choice("layout", layout, LAYOUTS)
    pos = _positions(positions, x)  # broadcasts to (..., N)
    angles = pos[..., None] * frequencies(d, base=base)  # (..., N, d/2)
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    return _rotate(x, cos, sin, layout), (cos, sin, layout, x.shape)


def rope_backward(dout, cache):
    """dx = R_p^T dout: a rotation's transpose is the rotation by minus the angle."""
    cos, sin, layout, shape = cache
    V.grad_shape("dout", dout, shape)
    return _rotate(dout, cos, -sin, layout)  # forward: out = R_p x -> dx = R_p^T dout


def _half_perm(x):
    """x as a float array and the (d,) permutation from interleaved to half pairs."""
    x = V.float_array("x", x, min_ndim=1)
    d = _even_width("x.shape[-1]", x.shape[-1])
    return x, np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])  # (d,)


def interleaved_to_half(x):
    """Permute the last axis from interleaved pairs to rotate-half pairs.

    Dims (0, 1, 2, 3, ...) become (0, 2, 4, ..., 1, 3, 5, ...), so pair i moves from
    dims (2i, 2i+1) to dims (i, i + d/2); then
    ``rope(x, layout="half")`` of the permuted x is the permuted ``rope(x)``.
    """
    x, perm = _half_perm(x)
    return x[..., perm]


def half_to_interleaved(x):
    """Inverse of ``interleaved_to_half``."""
    x, perm = _half_perm(x)
    return x[..., np.argsort(perm)]


# --- ALiBi ---------------------------------------------------------------------------


def alibi_slopes(n_heads):
    """(H,) ALiBi slopes: 2^(-8h/H), h = 1..H, when H is a power of 2.

    Other H (as in the reference code): the 2^floor(log2 H) slopes, then every other
    slope of the sequence for 2 * 2^floor(log2 H) heads, as many as are missing.
    """
    H = V.positive_int("n_heads", n_heads)
    p = 2 ** math.floor(math.log2(H))  # largest power of 2 <= H
    geometric = lambda n: 2.0 ** (-8.0 * np.arange(1, n + 1) / n)  # (n,)
    extra = geometric(2 * p)[0::2][: H - p]  # (H - p,) fills the gap between slopes
    return np.concatenate([geometric(p), extra])  # (H,)


def alibi_bias(n_heads, N, M=None, *, form="distance"):
    """(H, N, M) additive ALiBi score bias for causal attention.

    Query i sits at position i + M - N (bottom-right, as in a KV-cache step), key j at
    position j. ``form="distance"`` gives -m_h (i + M - N - j) as in the paper;
    ``form="key"`` gives +m_h j, which differs by a constant in each row, so softmax
    gives the same weights. Keys after the query must still be masked
    (``causal_mask(N, M, align="bottom_right")``).
    """
    N = V.positive_int("N", N, allow_zero=True)
    M = N if M is None else V.positive_int("M", M, allow_zero=True)
    form = V.choice("form", form, ("distance", "key"))
    m = alibi_slopes(n_heads)[:, None, None]  # (H, 1, 1)
    j = np.arange(M)[None, None, :]  # (1, 1, M)
    if form == "key":
        return m * j + np.zeros((1, N, 1))  # (H, N, M)
    i = np.arange(N)[None, :, None] + (M - N)  # (1, N, 1) absolute query positions
    return -m * (i - j)  # (H, N, M)

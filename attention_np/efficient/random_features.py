"""Random features for the softmax kernel: positive (FAVOR+) against trigonometric.

With x' = x / d^(1/4) and y' = y / d^(1/4), SM = exp(x'.y') = exp(x.y / sqrt(d)) is
softmax attention's kernel. For omega_1..omega_m ~ N(0, I_d) both maps below give
unbiased estimates phi(x).phi(y) of SM (Choromanski et al. 2021, arXiv 2009.14794):

    positive: phi(x) = exp(x' omega - |x'|^2 / 2) / sqrt(m)           (m numbers)
    trig:     phi(x) = exp(|x'|^2 / 2) / sqrt(m) [sin(x' omega), cos(x' omega)]  (2 m)

Their mean squared errors with independent omega (the paper's Lemma 2):

    MSE_positive = exp(|x'+y'|^2) SM^2 (1 - exp(-|x'+y'|^2)) / m
    MSE_trig     = exp(|x'+y'|^2) SM^-2 (1 - exp(-|x'-y'|^2))^2 / (2 m)

so the positive estimate is accurate where SM is small (the many weak entries of an
attention row) and the trigonometric one where x' ~ y' or both are short. Both fall
like 1/m, the error like 1/sqrt(m); orthogonal omega (``favor_omega``) lower it.
The positive map is ``performer.favor_forward`` (no stabiliser here).

Shape legend: x (..., N, d), omega (d, m), phi (..., N, m) or (..., N, 2 m).
"""

import numpy as np

from .. import validate as V
from ..attention import attention_forward
from .performer import favor_forward, favor_omega

KINDS = ("positive", "trig")


def trig_features(x, omega):
    """phi(x) = exp(|x'|^2/2) / sqrt(m) [sin(x' omega), cos(x' omega)], x' = x/d^(1/4).

    Args:
        x: (..., N, d) queries or keys (or one (d,) vector).
        omega: (d, m) from ``favor_omega``.

    Returns:
        (..., N, 2 m) features; phi(x).phi(y) estimates exp(x.y / sqrt(d)).
    """
    x = V.float_array("x", x, min_ndim=1)
    omega = V.float_array("omega", omega, ndim=2)
    if x.shape[-1] != omega.shape[0] or 0 in omega.shape:
        raise ValueError(f"x{x.shape} and omega{omega.shape} must share d >= 1, m >= 1")
    d, m = omega.shape
    xs = x * d**-0.25  # (..., N, d)
    u = xs @ omega  # (..., N, m)
    norm = np.exp(0.5 * np.sum(xs * xs, axis=-1, keepdims=True)) / np.sqrt(m)
    return norm * np.concatenate([np.sin(u), np.cos(u)], axis=-1)  # (..., N, 2 m)


def features(x, omega, *, kind):
    """The ``kind`` ("positive" or "trig") feature map of x: see the module."""
    V.choice("kind", kind, KINDS)
    if kind == "positive":
        return favor_forward(x, omega)[0]
    return trig_features(x, omega)


def softmax_kernel_mse(x, y, m, *, kind):
    """Lemma 2's MSE of the m-feature estimate of exp(x.y / sqrt(d)), iid omega.

    Args:
        x, y: (..., d) vectors (broadcast against each other).
        m: number of random directions omega.
        kind: "positive" or "trig".
    """
    V.choice("kind", kind, KINDS)
    m = V.positive_int("m", m)
    x, y = V.float_array("x", x, min_ndim=1), V.float_array("y", y, min_ndim=1)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x{x.shape} and y{y.shape} must share d")
    xs, ys = x * x.shape[-1] ** -0.25, y * y.shape[-1] ** -0.25
    plus = np.sum((xs + ys) ** 2, axis=-1)  # |x' + y'|^2
    sm = np.exp(np.sum(xs * ys, axis=-1))  # SM(x', y')
    if kind == "positive":
        return np.exp(plus) * sm**2 * -np.expm1(-plus) / m
    minus = np.sum((xs - ys) ** 2, axis=-1)  # |x' - y'|^2
    return np.exp(plus) / sm**2 * np.expm1(-minus) ** 2 / (2 * m)


def kernel_estimates(x, y, m, *, kind, orthogonal, draws, rng):
    """(draws,) independent estimates phi(x).phi(y) of exp(x.y / sqrt(d)).

    Args:
        x, y: (d,) vectors.
        m: random directions per draw; kind: "positive" or "trig".
        orthogonal: draw omega in orthogonal blocks (``favor_omega``).
        draws: number of independent omega; rng: np.random.Generator.

    Independent draws are taken side by side from one ``favor_omega(d, m * n)``
    (n draws at a time): its columns are independent, or independent blocks of d
    orthogonal ones, so each chunk of m columns is one draw when d divides m.
    """
    x, y = V.float_array("x", x, ndim=1), V.float_array("y", y, ndim=1)
    m, draws = V.positive_int("m", m), V.positive_int("draws", draws)
    side_by_side = not orthogonal or m % x.size == 0
    batch = max(1, 2**20 // m) if side_by_side else 1  # draws per omega
    out = []
    for start in range(0, draws, batch):
        n = min(batch, draws - start)
        omega = favor_omega(x.size, m * n, rng=rng, orthogonal=orthogonal)
        prod = features(x, omega, kind=kind) * features(y, omega, kind=kind)
        if kind == "trig":
            prod = prod[: m * n] + prod[m * n :]  # sin sin + cos cos
        out.append(prod.reshape(n, m).sum(axis=1) * n)  # phi carries 1/sqrt(m n)
    return np.concatenate(out)


def random_feature_weights(q, k, omega, *, kind, causal, align="top_left"):
    """Attention weights implied by random features: A = K_hat / rowsum(K_hat).

    K_hat_ij = phi(q_i).phi(k_j) estimates exp(q_i.k_j / sqrt(d)); the causal rule
    zeroes key j > i + offset. Trigonometric estimates can be negative, and so can
    a row's sum: its weights are then not a distribution (a row summing to exactly
    0 gets zero weights). Builds (N, M): for experiments and plots.

    Args:
        q: (..., N, d), k: (..., M, d); omega: (d, m); kind: "positive" or "trig".
        causal: True or False (required); align: "top_left" or "bottom_right".
    """
    q, k, _, _ = V.check_qkv(q, k, k, None, None)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    omega = V.float_array("omega", omega, ndim=2).astype(q.dtype, copy=False)
    kq = features(q, omega, kind=kind)  # (..., N, f)
    kk = features(k, omega, kind=kind)  # (..., M, f)
    w = kq @ np.swapaxes(kk, -1, -2)  # (..., N, M)
    if offset is not None:
        w = np.tril(w, k=offset)  # key j visible to query i when j <= i + offset
    total = np.sum(w, axis=-1, keepdims=True)  # (..., N, 1)
    return np.where(total == 0, 0.0, w) / np.where(total == 0, 1.0, total)


def output_error(
    q, k, v, feature_counts, *, kind, orthogonal, draws, rng, causal, align="top_left"
):
    """Mean |random-feature attention - softmax attention| of the output, per m.

    For each m in ``feature_counts``, ``draws`` fresh omega (d, m) from ``rng``;
    the error of one draw is the mean over the (..., N, d_v) output entries, and
    the result averages the draws: (len(feature_counts),). ``causal`` and
    ``align`` as in ``attention_forward``, for both attentions.
    """
    causal_rule = {"causal": causal, "align": align}
    exact, _ = attention_forward(q, k, v, **causal_rule)  # the exact reference
    draws = V.positive_int("draws", draws)
    errors = []
    for m in feature_counts:
        total = 0.0
        for _ in range(draws):
            omega = favor_omega(q.shape[-1], m, rng=rng, orthogonal=orthogonal)
            w = random_feature_weights(q, k, omega, kind=kind, **causal_rule)
            total += np.mean(np.abs(w @ v - exact))
        errors.append(total / draws)
    return np.array(errors)

"""Linear attention (Katharopoulos et al. 2020): replace exp(q.k) by phi(q).phi(k).

    out_i = sum_j phi(q_i).phi(k_j) v_j / (sum_j phi(q_i).phi(k_j) + eps)

Because phi(q_i).phi(k_j) v_j = phi(q_i)^T (phi(k_j) v_j^T), the sums over j can be
taken first: S = sum_j phi(k_j) v_j^T is a (f, d_v) "memory" and z = sum_j phi(k_j)
its normaliser, so the cost is O(N f d_v) instead of O(N M d). Causally (j <= i) the
sums become prefix sums, S_i = S_{i-1} + phi(k_i) v_i^T: the same model is an RNN.
Numerator and denominator come from one product with the values [v, 1]; the forms
of that product (parallel, recurrent, chunkwise) live in ``kernel_products``.

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), out (..., N, d_v),
features phi (..., N|M, f); causal forms need N == M.
"""

from functools import partial
from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..attention import unbroadcast
from . import kernel_products as kp
from . import linear_streaming as ls
from .feature_maps import FEATURE_MAPS
from .performer import favor_backward, favor_forward

FORMS = ("parallel", "recurrent", "chunkwise")
STREAMED_BACKWARD = {  # cache type -> backward, for the forms that stream their rows
    ls.StreamingCache: ls.streaming_backward,
    ls.CausalStreamingCache: ls.causal_streaming_backward,
}


class LinearAttentionCache(NamedTuple):
    """What ``linear_attention_backward`` needs."""

    slices: list  # per (batch, head) slice: (q_map, k_map, product cache), the maps
    # being (backward function, cache) pairs of phi; y = [causal](phi_q phi_k^T) [v, 1]
    product_backward: object  # backward of the product's form
    out: np.ndarray  # (..., N, d_v)
    den: np.ndarray  # (..., N, 1) sum_j phi(q_i).phi(k_j) + eps
    shapes: tuple  # q, k, v shapes, to sum broadcast gradients back


def _features(x, role, feature_map, omega):
    """phi(x) and (backward, cache); FAVOR+ stabilises queries by row, keys jointly."""
    if feature_map == "favor+":
        omega = np.asarray(omega, dtype=x.dtype)
        phi, cache = favor_forward(x, omega, stabilize="row" if role == "q" else "all")
        return phi, (favor_backward, cache)
    forward, backward = FEATURE_MAPS[feature_map]
    phi, cache = forward(x)
    return phi, (backward, cache)


def _check(q, k, v, feature_map, causal, form, omega):
    q, k, v, _ = V.check_qkv(q, k, v, None, None)
    names = tuple(FEATURE_MAPS) + ("favor+",)
    if feature_map not in names:
        raise ValueError(f"feature_map must be one of {names}, got {feature_map!r}")
    if (feature_map == "favor+") != (omega is not None):
        raise ValueError("omega (d, m) from favor_omega goes with feature_map='favor+'")
    if omega is not None and (np.ndim(omega) != 2 or omega.shape[0] != q.shape[-1]):
        raise ValueError(f"omega{np.shape(omega)} must be (d, m) with d={q.shape[-1]}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    V.bool_arg("causal", causal)
    if not causal and form != "parallel":
        raise ValueError(f"form={form!r} is causal; use causal=True or form='parallel'")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal linear attention needs N == M, got q{q.shape}, k{k.shape}"
        )
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    return [np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v)]


def _product(causal, form, chunk_size):
    if not causal:
        return kp.global_forward, kp.global_backward
    if form == "chunkwise":
        forward = partial(kp.chunkwise_forward, chunk_size=chunk_size)
        return forward, kp.chunkwise_backward
    return kp.FORMS[form]


def linear_attention_forward(
    q,
    k,
    v,
    *,
    feature_map="elu+1",
    causal=False,
    form="parallel",
    chunk_size=64,
    eps=1e-6,
    omega=None,
):
    """out_i = sum_j phi(q_i).phi(k_j) v_j / (sum_j phi(q_i).phi(k_j) + eps).

    Args:
        q: (..., N, d) queries.  k: (..., M, d) keys.  v: (..., M, d_v) values.
        feature_map: "elu+1", "relu", "dpfp" or "favor+" (then pass ``omega``).
        causal: sum over j <= i only (needs N == M).
        form: "parallel" (causal: the masked O(N^2) reference; otherwise the O(N)
            product), "recurrent" (causal RNN) or "chunkwise" (causal, O(N)).
        chunk_size: chunk length L of the chunkwise form.
        eps: added to the denominator (keeps 0/0 away for relu features).
        omega: (d, m) random projections for "favor+" (``favor_omega``).

    Returns:
        out (..., N, d_v) and a cache (a ``linear_streaming`` cache when the rows
        are streamed: row-wise feature maps, non-causal or chunkwise).
    """
    shapes = tuple(np.shape(a) for a in (q, k, v))
    q, k, v = _check(q, k, v, feature_map, causal, form, omega)
    chunk_size = V.positive_int("chunk_size", chunk_size)
    if feature_map in FEATURE_MAPS and (not causal or form == "chunkwise"):
        phi = FEATURE_MAPS[feature_map]  # row-wise phi: stream chunks of rows
        if not causal:
            return ls.streaming_forward(q, k, v, phi, eps=eps, shapes=shapes)
        return ls.causal_streaming_forward(
            q, k, v, phi, eps=eps, shapes=shapes, chunk_size=chunk_size
        )
    forward, backward = _product(causal, form, chunk_size)
    out = np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)  # (..., N, d_v)
    den = np.empty(q.shape[:-1] + (1,), q.dtype)  # (..., N, 1)
    slices = []
    # one (batch, head) slice at a time: the same arithmetic with temporaries that
    # are 1/(B H) as big, so they stay in cache and the allocator can reuse them
    for idx in np.ndindex(q.shape[:-2]):
        phi_q, q_map = _features(q[idx], "q", feature_map, omega)  # (N, f)
        phi_k, k_map = _features(k[idx], "k", feature_map, omega)  # (M, f)
        y, product_cache = forward(phi_q, phi_k, ls.with_ones(v[idx]))  # (N, d_v + 1)
        den[idx] = y[:, -1:] + eps  # the normaliser
        out[idx] = y[:, :-1] / den[idx]
        slices.append((q_map, k_map, product_cache))
    return out, LinearAttentionCache(slices, backward, out, den, shapes)


def linear_attention_backward(dout, cache):
    """Gradients of linear_attention_forward: dq, dk, dv in the inputs' shapes."""
    V.grad_shape("dout", dout, cache.out.shape)
    if type(cache) in STREAMED_BACKWARD:
        grads = STREAMED_BACKWARD[type(cache)](dout, cache)
        return tuple(
            unbroadcast(g, s) for g, s in zip(grads, cache.shapes, strict=True)
        )
    slices, product_backward, out, den, shapes = cache
    lead = out.shape[:-2]
    dq, dk, dv = (np.empty(lead + shape[-2:], out.dtype) for shape in shapes)
    dy = ls.ratio_backward(dout, out, den)  # (..., N, d_v + 1)
    for idx, (q_map, k_map, product_cache) in zip(
        np.ndindex(lead), slices, strict=True
    ):
        dphi_q, dphi_k, dv1 = product_backward(dy[idx], product_cache)
        dq[idx] = q_map[0](dphi_q, q_map[1])
        dk[idx] = k_map[0](dphi_k, k_map[1])
        dv[idx] = dv1[:, :-1]  # the ones column is a constant
    return tuple(unbroadcast(g, s) for g, s in zip((dq, dk, dv), shapes, strict=True))


def linear_attention_weights(
    q, k, *, feature_map="elu+1", causal=False, eps=1e-6, omega=None
):
    """The attention matrix linear attention implies: (..., N, M), for heatmaps.

    A_ij = phi(q_i).phi(k_j) / (sum_j' phi(q_i).phi(k_j') + eps), zero above the
    diagonal when causal, so that ``out == A @ v``. Builds (N, M): plots only.
    """
    q, k, _ = _check(q, k, k, feature_map, causal, "parallel", omega)
    phi_q = _features(q, "q", feature_map, omega)[0]  # (..., N, f)
    phi_k = _features(k, "k", feature_map, omega)[0]  # (..., M, f)
    w = phi_q @ np.swapaxes(phi_k, -1, -2)  # (..., N, M)
    if causal:
        w = np.tril(w)
    return w / (np.sum(w, axis=-1, keepdims=True) + eps)

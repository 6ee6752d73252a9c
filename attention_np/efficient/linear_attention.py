"""Linear attention (Katharopoulos et al. 2020): replace exp(q.k) by phi(q).phi(k).

    out_i = sum_j phi(q_i).phi(k_j) v_j / (sum_j phi(q_i).phi(k_j) + eps)

Because phi(q_i).phi(k_j) v_j = phi(q_i)^T (phi(k_j) v_j^T), the sums over j can be
taken first: S = sum_j phi(k_j) v_j^T is a (f, d_v) "memory" and z = sum_j phi(k_j)
its normaliser, so the cost is O(N f d_v) instead of O(N M d). Causally (j <= i) the
sums become prefix sums, S_i = S_{i-1} + phi(k_i) v_i^T: the same model is an RNN.
Numerator and denominator come from one product with the values [v, 1]; the forms
of that product (parallel, recurrent, chunkwise) live in ``kernel_products``.

``causal`` is required. With N != M the causal rule follows ``align`` like every
attention function of the package: key j is visible to query i when j <= i + offset,
offset 0 ("top_left") or M - N ("bottom_right"); the causal forms then run on
feature rows padded with zeros (``kernel_products.offset_forward``). The recurrent
and chunkwise forms exist only for causal=True (they are the causal RNN).

Finite inputs give finite outputs: features are non-negative, so the sum
sum_j phi(q_i).phi(k_j) is >= 0 and the denominator >= eps > 0. Where the sum is
exactly 0 (relu or dpfp features that are all zero, exp-based features that
underflow for inputs of size ~1e3), every term of the numerator is 0 too, and that
query's output is 0 (float16 can still overflow: products of features above ~250).

Shape legend: q (..., N, d), k (..., M, d), v (..., M, d_v), out (..., N, d_v),
features phi (..., N|M, f).
"""

from functools import partial
from typing import NamedTuple

import numpy as np

from .. import threads
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
    workers: int  # threads over the (batch, head) slices


def _favor_dx(dout, cache):
    return favor_backward(dout, cache)[0]  # omega is a constant here: no domega


def _features(x, role, feature_map, omega):
    """phi(x) and (backward, cache); FAVOR+ stabilises queries by row, keys jointly."""
    if feature_map == "favor+":
        phi, cache = favor_forward(x, omega, stabilize="row" if role == "q" else "all")
        return phi, (_favor_dx, cache)
    forward, backward = FEATURE_MAPS[feature_map]
    phi, cache = forward(x)
    return phi, (backward, cache)


def _check_omega(feature_map, omega, q):
    """omega (d, m) in q's dtype for "favor+", and None otherwise."""
    if (feature_map == "favor+") != (omega is not None):
        raise ValueError("omega (d, m) from favor_omega goes with feature_map='favor+'")
    if omega is None:
        return None
    omega = V.float_array("omega", omega, ndim=2)
    if omega.shape[0] != q.shape[-1] or omega.shape[1] == 0:
        raise ValueError(
            f"omega{omega.shape} must be (d, m), d = {q.shape[-1]}, m >= 1"
        )
    return omega.astype(q.dtype, copy=False)


def _check(q, k, v, feature_map, causal, align, form, omega, eps):
    """Broadcast q, k, v, the causal offset (None: no rule), omega and eps."""
    q, k, v, _ = V.check_qkv(q, k, v, None, None)
    V.choice("feature_map", feature_map, tuple(FEATURE_MAPS) + ("favor+",))
    omega = _check_omega(feature_map, omega, q)
    V.choice("form", form, FORMS)
    offset = V.causal_offset(causal, align, q.shape[-2], k.shape[-2])
    if offset is None and form != "parallel":
        raise ValueError(
            f"form={form!r} is the causal RNN: pass causal=True, or use "
            "form='parallel' for causal=False"
        )
    eps = V.real("eps", eps, lo=0.0, lo_open=True)
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    qkv = [np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v)]
    return *qkv, offset, omega, eps


def _product(offset, form, chunk_size, N, M):
    """(forward, backward) of y = [causal](phi_q phi_k^T) [v, 1] in the chosen form."""
    if offset is None:
        return kp.global_forward, kp.global_backward
    product = kp.FORMS[form]
    if form == "chunkwise":
        product = partial(product[0], chunk_size=chunk_size), product[1]
    if offset == 0 and N == M:
        return product
    aligned = partial(kp.offset_forward, offset=offset, product=product)  # N != M
    return aligned, kp.offset_backward


def _streamed(q, k, v, feature_map, offset, form, options):
    """(out, cache) streamed through chunks of rows, or None when not streamable.

    Row-wise feature maps stream without a causal rule, and causally in the
    chunkwise form when N == M; FAVOR+ keys share one stabiliser over all rows.
    """
    if feature_map not in FEATURE_MAPS:
        return None
    phi = FEATURE_MAPS[feature_map]
    if offset is None:
        return ls.streaming_forward(q, k, v, phi, **options)
    if form == "chunkwise" and q.shape[-2] == k.shape[-2]:  # then offset = 0
        return ls.causal_streaming_forward(q, k, v, phi, **options)
    return None


def linear_attention_forward(
    q,
    k,
    v,
    *,
    feature_map="elu+1",
    causal,
    align="top_left",
    form="parallel",
    chunk_size=64,
    eps=1e-6,
    omega=None,
    workers=None,
):
    """out_i = sum_j phi(q_i).phi(k_j) v_j / (sum_j phi(q_i).phi(k_j) + eps).

    Args:
        q: (..., N, d) queries.  k: (..., M, d) keys.  v: (..., M, d_v) values.
        feature_map: "elu+1", "relu", "dpfp" or "favor+" (then pass ``omega``).
        causal: True or False (required): sum over j <= i + offset only.
        align: "top_left" (offset 0) or "bottom_right" (offset M - N).
        form: "parallel" (causal: the masked O(N M) reference; otherwise the O(N)
            product), "recurrent" (causal RNN) or "chunkwise" (causal, O(N)).
        chunk_size: chunk length L of the chunkwise form (a positive int).
        eps: added to the denominator, finite and > 0 (a row with no mass gives 0).
        omega: (d, m) random projections for "favor+" (``favor_omega``).
        workers: threads over the (batch, head) slices, None for
            ``validate.default_workers()``; the backward uses the same.

    Returns:
        out (..., N, d_v) and a cache (a ``linear_streaming`` cache when the rows
        are streamed: row-wise feature maps, non-causal or chunkwise with N == M).
    """
    shapes = tuple(np.shape(a) for a in (q, k, v))
    q, k, v, offset, omega, eps = _check(
        q, k, v, feature_map, causal, align, form, omega, eps
    )
    chunk_size = V.positive_int("chunk_size", chunk_size)
    options = {"eps": eps, "shapes": shapes, "workers": V.workers_arg(workers)}
    if offset is not None:
        options["chunk_size"] = chunk_size
    streamed = _streamed(q, k, v, feature_map, offset, form, options)
    if streamed is not None:
        return streamed
    product = _product(offset, form, chunk_size, q.shape[-2], k.shape[-2])
    return _sliced_forward(q, k, v, feature_map, omega, product, options)


def _sliced_forward(q, k, v, feature_map, omega, product, options):
    """The unstreamed forms, one (batch, head) slice at a time (on ``workers``
    threads): the same arithmetic with temporaries 1/(B H) as big, so they stay in
    cache and get reused."""
    forward, backward = product
    out = np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)  # (..., N, d_v)
    den = np.empty(q.shape[:-1] + (1,), q.dtype)  # (..., N, 1)

    def work(idx):
        phi_q, q_map = _features(q[idx], "q", feature_map, omega)  # (N, f)
        phi_k, k_map = _features(k[idx], "k", feature_map, omega)  # (M, f)
        y, product_cache = forward(phi_q, phi_k, ls.with_ones(v[idx]))  # (N, d_v + 1)
        den[idx] = y[:, -1:] + options["eps"]  # the normaliser, >= eps
        out[idx] = y[:, :-1] / den[idx]
        return q_map, k_map, product_cache

    slices = threads.run_slices(q.shape[:-2], work, options["workers"])
    shapes, workers = options["shapes"], options["workers"]
    cache = LinearAttentionCache(slices, backward, out, den, shapes, workers)
    return out, cache


def linear_attention_backward(dout, cache):
    """Gradients of linear_attention_forward: dq, dk, dv in the inputs' shapes."""
    V.grad_shape("dout", dout, cache.out.shape)
    if type(cache) in STREAMED_BACKWARD:
        grads = STREAMED_BACKWARD[type(cache)](dout, cache)
        return tuple(
            unbroadcast(g, s) for g, s in zip(grads, cache.shapes, strict=True)
        )
    slices, product_backward, out, den, shapes, workers = cache
    lead = out.shape[:-2]
    dq, dk, dv = (np.empty(lead + shape[-2:], out.dtype) for shape in shapes)
    dy = ls.ratio_backward(dout, out, den)  # (..., N, d_v + 1)
    per_slice = dict(zip(np.ndindex(lead), slices, strict=True))

    def work(idx):
        q_map, k_map, product_cache = per_slice[idx]
        dphi_q, dphi_k, dv1 = product_backward(dy[idx], product_cache)
        dq[idx] = q_map[0](dphi_q, q_map[1])
        dk[idx] = k_map[0](dphi_k, k_map[1])
        dv[idx] = dv1[:, :-1]  # the ones column is a constant

    threads.run_slices(lead, work, workers)
    return tuple(unbroadcast(g, s) for g, s in zip((dq, dk, dv), shapes, strict=True))


def linear_attention_weights(
    q, k, *, feature_map="elu+1", causal, align="top_left", eps=1e-6, omega=None
):
    """The attention matrix linear attention implies: (..., N, M), for heatmaps.

    A_ij = phi(q_i).phi(k_j) / (sum_j' phi(q_i).phi(k_j') + eps), zero where the
    causal rule hides key j (j > i + offset, as in linear_attention_forward), so
    that ``out == A @ v``. Builds (N, M): plots only.
    """
    q, k, _, offset, omega, eps = _check(
        q, k, k, feature_map, causal, align, "parallel", omega, eps
    )
    phi_q = _features(q, "q", feature_map, omega)[0]  # (..., N, f)
    phi_k = _features(k, "k", feature_map, omega)[0]  # (..., M, f)
    w = phi_q @ np.swapaxes(phi_k, -1, -2)  # (..., N, M)
    if offset is not None:
        w = np.tril(w, k=offset)  # key j visible to query i when j <= i + offset
    return w / (np.sum(w, axis=-1, keepdims=True) + eps)

"""Linear attention streamed through chunks of rows: O(chunk) extra memory.

Without a causal mask, linear attention needs only two sums over the keys:

    s = sum_j phi(k_j) [v_j, 1]^T        (f, d_v + 1)
    y_i = phi(q_i)^T s,   out_i = y_i[:d_v] / (y_i[d_v] + eps)

so the keys can be read one chunk at a time into s, and then the queries one chunk at a
time out of it. Nothing of size N is ever stored besides the inputs and the output:
every temporary is a (chunk, f) block that stays in the CPU cache, which keeps the time
truly linear in N (the unchunked form slows down per element once its (N, f) arrays
outgrow the cache). The backward recomputes phi chunk by chunk in the same way:

    dy_i = [dout_i, -<dout_i, out_i>] / den_i,    ds = sum_i phi(q_i) dy_i^T,
    dphi(q_i) = s dy_i,   dphi(k_j) = ds [v_j, 1],   dv_j = ds[:, :d_v]^T phi(k_j)

The causal chunkwise form streams the same way, with the state carried from one
chunk of rows to the next (each chunk runs ``kernel_products.chunkwise_forward``):

    y = chunkwise(phi_q, phi_k, [v, 1]) + phi_q s,   then   s += phi_k^T [v, 1]

(phi_q, phi_k, v: the chunk's rows; s: the state the earlier chunks left)

and its backward walks the chunks in reverse, carrying g = sum of phi_q^T dy over the
later chunks (the gradient of the state each chunk wrote):

    dphi_q += dy s^T,   dphi_k += [v, 1] g^T,   d[v, 1] += phi_k g

Used by ``linear_attention_forward`` for causal=False, and for causal=True with
form="chunkwise", with a row-wise feature map (elu+1, relu, dpfp); FAVOR+ keys share
one stabiliser over all rows, so it keeps the unchunked form. The (batch, head)
slices run on ``workers`` threads (``threads.run_slices``). Shapes: one slice at a
time, q (N, d), k (M, d), v (M, d_v), s and g (f, d_v + 1).
"""

from typing import NamedTuple

import numpy as np

from .. import threads
from . import kernel_products as kp

CHUNK = 1024  # rows per chunk: a (1024, 64) float32 block is 256 KiB


class StreamingCache(NamedTuple):
    """What the streaming backward needs: the inputs, not their features."""

    inputs: tuple  # (q, k, v) broadcast to common leading dims (views)
    feature_map: tuple  # (forward, backward) of phi
    s: list  # per (batch, head) slice: (f, d_v + 1) key-value memory
    out: np.ndarray  # (..., N, d_v)
    den: np.ndarray  # (..., N, 1)
    shapes: tuple  # the callers' q, k, v shapes
    chunk: int
    workers: int  # threads over the (batch, head) slices


class CausalStreamingCache(NamedTuple):
    """What the causal streaming backward needs: inputs and the state at each chunk."""

    inputs: tuple  # (q, k, v) broadcast to common leading dims (views)
    feature_map: tuple  # (forward, backward) of phi
    states: list  # per (batch, head) slice: [(f, d_v + 1) state before each chunk]
    out: np.ndarray  # (..., N, d_v)
    den: np.ndarray  # (..., N, 1)
    shapes: tuple  # the callers' q, k, v shapes
    chunk: int  # rows per chunk, a multiple of chunk_size
    chunk_size: int  # L of the chunkwise form inside a chunk
    workers: int  # threads over the (batch, head) slices


def _rows(n, chunk):
    return (slice(r, r + chunk) for r in range(0, n, chunk))


def with_ones(v):
    """[v, 1]: (..., M, d_v) -> (..., M, d_v + 1), numerator and normaliser at once."""
    return np.concatenate([v, np.ones_like(v[..., :1])], axis=-1)


def ratio_backward(dout, out, den):
    """dy of out = y[:d_v] / den with den = y[d_v] + eps: (..., N, d_v + 1).

    dnum = dout / den, dden = -<dout, out> / den.
    """
    return np.concatenate([dout, -np.sum(dout * out, -1, keepdims=True)], -1) / den


def _memory(k, v, phi_forward, chunk):
    """s = sum_j phi(k_j) [v_j, 1]^T, one chunk of keys at a time."""
    s = None
    for rows in _rows(k.shape[0], chunk):
        phi_k, _ = phi_forward(k[rows])  # (chunk, f)
        part = np.concatenate([phi_k.T @ v[rows], phi_k.sum(0)[:, None]], axis=1)
        s = part if s is None else s + part  # (f, d_v + 1)
    return s


def streaming_forward(q, k, v, phi, *, eps, shapes, workers=None, chunk=CHUNK):
    """Non-causal linear attention of broadcast q, k, v; returns (out, cache)."""
    out = np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)  # (..., N, d_v)
    den = np.empty(q.shape[:-1] + (1,), q.dtype)  # (..., N, 1)

    def work(idx):
        s = _memory(k[idx], v[idx], phi[0], chunk)
        if s is None:  # M = 0: nothing to attend to
            s = np.zeros((phi[0](q[idx][:0])[0].shape[-1], v.shape[-1] + 1), q.dtype)
        for rows in _rows(q.shape[-2], chunk):
            y = phi[0](q[idx][rows])[0] @ s  # (chunk, d_v + 1)
            den[idx][rows] = y[:, -1:] + eps
            out[idx][rows] = y[:, :-1] / den[idx][rows]
        return s

    memories = threads.run_slices(q.shape[:-2], work, workers)
    cache = StreamingCache((q, k, v), phi, memories, out, den, shapes, chunk, workers)
    return out, cache


def streaming_backward(dout, cache):
    """dq, dk, dv (broadcast shapes) of streaming_forward."""
    (q, k, v), (phi_forward, phi_backward), memories, out, den = cache[:5]
    chunk, workers = cache.chunk, cache.workers
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    dy = ratio_backward(dout, out, den)  # (..., N, d_v + 1)
    lead = q.shape[:-2]
    memory = dict(zip(np.ndindex(lead), memories, strict=True))

    def work(idx):
        s = memory[idx]  # (f, d_v + 1)
        ds = np.zeros_like(s)
        for rows in _rows(q.shape[-2], chunk):
            phi_q, q_cache = phi_forward(q[idx][rows])  # recompute, (chunk, f)
            ds += phi_q.T @ dy[idx][rows]  # forward: y = phi_q s
            dq[idx][rows] = phi_backward(dy[idx][rows] @ s.T, q_cache)
        for rows in _rows(k.shape[-2], chunk):
            phi_k, k_cache = phi_forward(k[idx][rows])
            v1 = with_ones(v[idx][rows])  # (chunk, d_v + 1)
            dk[idx][rows] = phi_backward(v1 @ ds.T, k_cache)  # s = phi_k^T v1
            dv[idx][rows] = phi_k @ ds[:, :-1]

    threads.run_slices(lead, work, workers)
    return dq, dk, dv


def _features_and_values(q, k, v, phi_forward):
    """phi(q), phi(k) with their caches, and [v, 1], for one chunk of rows."""
    phi_q, q_cache = phi_forward(q)  # (rows, f)
    phi_k, k_cache = phi_forward(k)
    return phi_q, q_cache, phi_k, k_cache, with_ones(v)  # v1 (rows, d_v + 1)


def causal_streaming_forward(
    q, k, v, phi, *, eps, shapes, chunk_size, workers=None, chunk=CHUNK
):
    """Causal chunkwise linear attention of broadcast q, k, v (N == M); (out, cache).

    Chunks of ``chunk`` rows (rounded to a multiple of ``chunk_size``) go through the
    chunkwise product one after the other; only the (f, d_v + 1) state crosses.
    """
    chunk = max(1, chunk // chunk_size) * chunk_size
    out = np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)  # (..., N, d_v)
    den = np.empty(q.shape[:-1] + (1,), q.dtype)  # (..., N, 1)

    def work(idx):
        s, states = None, []
        for rows in _rows(q.shape[-2], chunk):
            phi_q, _, phi_k, _, v1 = _features_and_values(
                q[idx][rows], k[idx][rows], v[idx][rows], phi[0]
            )
            if s is None:
                s = np.zeros((phi_q.shape[-1], v1.shape[-1]), q.dtype)
            y, _ = kp.chunkwise_forward(phi_q, phi_k, v1, chunk_size=chunk_size)
            y += phi_q @ s  # (rows, d_v + 1): what the earlier chunks contribute
            states.append(s)
            s = s + phi_k.T @ v1  # a new array: the stored state stays as it was
            den[idx][rows] = y[:, -1:] + eps
            out[idx][rows] = y[:, :-1] / den[idx][rows]
        return states

    all_states = threads.run_slices(q.shape[:-2], work, workers)
    cache = CausalStreamingCache(
        (q, k, v), phi, all_states, out, den, shapes, chunk, chunk_size, workers
    )
    return out, cache


def _causal_slice_backward(idx, dy, cache, grads):
    """One (batch, head) slice of causal_streaming_backward: fills grads' slices."""
    (q, k, v), (phi_forward, phi_backward), states = cache[:3]
    dq, dk, dv = grads
    chunks = list(_rows(q.shape[-2], cache.chunk))
    # g (f, d_v + 1): sum of phi_q^T dy over the chunks after the current one
    g = np.zeros_like(states[0]) if states else None
    for rows, s in zip(reversed(chunks), reversed(states), strict=True):
        phi_q, q_cache, phi_k, k_cache, v1 = _features_and_values(
            q[idx][rows], k[idx][rows], v[idx][rows], phi_forward
        )
        _, product_cache = kp.chunkwise_forward(  # recompute the chunk's product
            phi_q, phi_k, v1, chunk_size=cache.chunk_size
        )
        dy_rows = dy[idx][rows]
        dphi_q, dphi_k, dv1 = kp.chunkwise_backward(dy_rows, product_cache)
        dphi_q += dy_rows @ s.T  # forward: y += phi_q s
        dphi_k += v1 @ g.T  # forward: later chunks read s + phi_k^T v1
        dv1 += phi_k @ g
        g += phi_q.T @ dy_rows
        dq[idx][rows] = phi_backward(dphi_q, q_cache)
        dk[idx][rows] = phi_backward(dphi_k, k_cache)
        dv[idx][rows] = dv1[:, :-1]  # the ones column is a constant


def causal_streaming_backward(dout, cache):
    """dq, dk, dv (broadcast shapes) of causal_streaming_forward."""
    q, k, v = cache.inputs
    grads = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    dy = ratio_backward(dout, cache.out, cache.den)  # (..., N, d_v + 1)
    lead = q.shape[:-2]
    states = dict(zip(np.ndindex(lead), cache.states, strict=True))

    def work(idx):
        _causal_slice_backward(idx, dy, cache._replace(states=states[idx]), grads)

    threads.run_slices(lead, work, cache.workers)
    return grads

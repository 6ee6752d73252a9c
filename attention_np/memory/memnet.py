"""End-to-end memory networks (Sukhbaatar, Szlam, Weston, Fergus 2015), K hops with
adjacent weight tying.

Each sentence i of the story is a bag of words x_i1..x_iJ; the question is q_1..q_J.

    u^1   = sum_j l_j o E_0[q_j]                                    (B, d)
    hop k = 1..K:
      m_i = sum_j l_j o E_{k-1}[x_ij] + T_{k-1}[i]     memory keys      (B, n, d)
      c_i = sum_j l_j o E_k[x_ij]     + T_k[i]         memory values    (B, n, d)
      p   = softmax_i(u^k . m_i)                       unscaled, masked (B, n)
      u^{k+1} = u^k + sum_i p_i c_i
    logits = u^{K+1} E_K^T                                              (B, V)

Adjacent tying: hop k's output embedding is hop k+1's input embedding (A^{k+1} = C^k),
the question embedding is the first input embedding (B = A^1) and the answer matrix
is the last output embedding (W^T = C^K), so K hops need K + 1 tables E_0..E_K and,
with temporal encoding, K + 1 tables T_0..T_K. One hop is scaled dot-product
attention with scale 1: query u, keys m, values c. l_j is the position encoding
l_kj = (1 - j/J) - (k/d)(1 - 2j/J) (1-based), or all ones (plain bag of words).
Word id 0 is padding: its embedding is treated as zero and gets no gradient. Ids must
lie in [0, V): a negative id would silently index a table from the end.

Call: ``logits, cache = memnet_forward(story, question, params, mask=None, *,
position_enc)`` and ``grads = memnet_backward(dout, cache)`` (story and question are
integer ids: no gradient entries, so the backward returns the params dict alone).

Shape legend: B batch, n memory slots (sentences), J words per sentence, d embedding
width, V vocabulary size, K hops.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V
from ..softmax import softmax_backward, softmax_forward


def position_encoding(J, d, *, dtype=np.float64):
    """(J, d) weights l_kj = (1 - j/J) - (k/d)(1 - 2j/J), with j and k 1-based."""
    J, d = V.positive_int("J", J), V.positive_int("d", d)
    dtype = V.dtype_arg(dtype)
    j = np.arange(1, J + 1, dtype=dtype)[:, None]  # (J, 1)
    k = np.arange(1, d + 1, dtype=dtype)[None, :]  # (1, d)
    return (1 - j / J) - (k / d) * (1 - 2 * j / J)  # (J, d)


def init_memnet_params(
    vocab_size, d, *, n_hops, n_memories, rng, std=0.1, dtype=np.float64
):
    """Tables E_0..E_K (V, d) and temporal encodings T_0..T_K (n, d) ~ N(0, std^2)."""
    Vs, d = V.positive_int("vocab_size", vocab_size), V.positive_int("d", d)
    K, n = V.positive_int("n_hops", n_hops), V.positive_int("n_memories", n_memories)
    V.rng_arg(rng)
    std, dtype = V.real("std", std, lo=0.0), V.dtype_arg(dtype)
    params = {f"E_{k}": std * rng.standard_normal((Vs, d)) for k in range(K + 1)}
    params.update({f"T_{k}": std * rng.standard_normal((n, d)) for k in range(K + 1)})
    return {key: w.astype(dtype) for key, w in params.items()}


def _embed(ids, E, l):
    """sum_j l_j o E[ids_j] with padding ids (0) contributing nothing: (..., d)."""
    vec = np.where((ids > 0)[..., None], E[ids], 0.0)  # (..., J, d)
    return np.sum(vec * l, axis=-2)


def _embed_backward(dE, ids, dout, l):
    """Scatter-add the gradient of _embed into dE (in place)."""
    contrib = dout[..., None, :] * l * (ids > 0)[..., None]  # (..., J, d)
    np.add.at(dE, ids.reshape(-1), contrib.reshape(-1, dE.shape[1]))


def _check_ids(story, question, vocab_size):
    """Integer ids in [0, V): negative ids would index the tables from the end."""
    story = V.int_array("story", story, ndim=3, lo=0, hi=vocab_size)
    question = V.int_array("question", question, ndim=2, lo=0, hi=vocab_size)
    if 0 in story.shape or 0 in question.shape:
        raise ValueError(
            f"story{story.shape} and question{question.shape} need non-empty axes"
        )
    if question.shape[0] != story.shape[0]:
        raise ValueError(f"story{story.shape} and question{question.shape} share B")
    return story, question


def _check_params(params, n):
    """E_0..E_K (V, d) and T_0..T_K (n_max >= n, d); returns (params, K, V)."""
    if not isinstance(params, dict) or np.ndim(params.get("E_0")) != 2:
        raise ValueError(
            "params must hold E_0..E_K (V, d) and T_0..T_K (init_memnet_params)"
        )
    K = sum(1 for key in params if str(key).startswith("E_")) - 1
    if K < 1:
        raise ValueError(f"params need E_0..E_K with K >= 1 hops, got K = {K}")
    E0 = V.float_array("params['E_0']", params["E_0"])
    (Vs, d), n_max = E0.shape, np.shape(params.get("T_0", ()))[:1] or (0,)
    if n_max[0] < n:
        raise ValueError(f"temporal tables T_k have {n_max[0]} rows, the story n = {n}")
    shapes = {f"E_{k}": (Vs, d) for k in range(K + 1)}
    shapes.update({f"T_{k}": (n_max[0], d) for k in range(K + 1)})
    return V.check_params(params, shapes, dtype=E0.dtype), K, Vs


class MemNetCache(NamedTuple):
    story: np.ndarray  # (B, n, J) ids
    question: np.ndarray  # (B, J_q) ids
    params: dict
    l_story: np.ndarray  # (J, d) position weights
    l_question: np.ndarray  # (J_q, d)
    u: list  # u^1 .. u^{K+1}, each (B, d)
    m: list  # per hop (B, n, d) memory keys
    c: list  # per hop (B, n, d) memory values
    soft: list  # per hop softmax cache; soft[k][0] is p (B, n)

    @property
    def hop_weights(self):
        """(B, K, n) attention over the memories at every hop, for heatmaps."""
        return np.stack([s[0] for s in self.soft], axis=1)


def memnet_forward(story, question, params, mask=None, *, position_enc=False):
    """Answer logits of a K-hop memory network (module docstring).

    Args:
        story: (B, n, J) integer word ids in [0, V) of n sentences, 0 = padding.
        question: (B, J_q) integer word ids in [0, V).
        params: E_0..E_K (V, d) and T_0..T_K (n_max, d) with n_max >= n.
        mask: (B, n) True = a real sentence; default: slots with any word.
        position_enc: weight words by the position encoding (else a plain sum).

    Returns:
        logits (B, V), cache (``cache.hop_weights`` is (B, K, n)).
    """
    story = V.int_array("story", story, ndim=3)
    p, K, Vs = _check_params(params, story.shape[1])
    story, question = _check_ids(story, question, Vs)
    d, dtype = p["E_0"].shape[1], p["E_0"].dtype
    if mask is None:
        mask = (story > 0).any(axis=-1)  # (B, n) a slot without words is empty
    V.bool_mask("mask", mask, story.shape[:2])
    n, J, Jq = story.shape[1], story.shape[2], question.shape[1]
    position_enc = V.bool_arg("position_enc", position_enc)
    pe = (
        position_encoding
        if position_enc
        else lambda J, d, dtype: np.ones((J, d), dtype)
    )
    l_s, l_q = pe(J, d, dtype=dtype), pe(Jq, d, dtype=dtype)
    us, ms, cs, soft = [_embed(question, p["E_0"], l_q)], [], [], []  # u^1 (B, d)
    for k in range(1, K + 1):
        m = _embed(story, p[f"E_{k - 1}"], l_s) + p[f"T_{k - 1}"][:n]  # (B, n, d)
        c = _embed(story, p[f"E_{k}"], l_s) + p[f"T_{k}"][:n]  # (B, n, d)
        w, sc = softmax_forward(np.einsum("bnd,bd->bn", m, us[-1]), mask)  # (B, n)
        us.append(us[-1] + np.einsum("bn,bnd->bd", w, c))  # u^{k+1} = u^k + o^k
        ms.append(m), cs.append(c), soft.append(sc)
    logits = us[-1] @ p[f"E_{K}"].T  # (B, V) answer matrix W = E_K^T
    return logits, MemNetCache(story, question, p, l_s, l_q, us, ms, cs, soft)


def memnet_backward(dout, cache):
    """Gradients of memnet_forward: a dict keyed like params (the ids get none).

    Args:
        dout: (B, V) upstream gradient of the answer logits.
        cache: from ``memnet_forward``.
    """
    story, question, p, l_s, l_q, us, ms, cs, soft = cache
    V.grad_shape("dout", dout, (story.shape[0], p["E_0"].shape[0]))  # (B, V)
    dlogits = dout
    K, n = len(ms), story.shape[1]
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    grads[f"E_{K}"] += dlogits.T @ us[-1]  # forward: logits = u E_K^T
    du = dlogits @ p[f"E_{K}"]  # (B, d)
    for k in reversed(range(1, K + 1)):
        m, c, sc, u = ms[k - 1], cs[k - 1], soft[k - 1], us[k - 1]
        # forward: u^{k+1} = u^k + p c,  p = softmax(m u^k)
        dc = sc[0][..., None] * du[:, None, :]  # (B, n, d)
        ds = softmax_backward(np.einsum("bd,bnd->bn", du, c), sc)  # (B, n)
        dm = ds[..., None] * u[:, None, :]  # (B, n, d)
        du = du + np.einsum("bn,bnd->bd", ds, m)
        _embed_backward(grads[f"E_{k - 1}"], story, dm, l_s)
        _embed_backward(grads[f"E_{k}"], story, dc, l_s)
        grads[f"T_{k - 1}"][:n] += dm.sum(axis=0)
        grads[f"T_{k}"][:n] += dc.sum(axis=0)
    _embed_backward(grads["E_0"], question, du, l_q)
    return grads

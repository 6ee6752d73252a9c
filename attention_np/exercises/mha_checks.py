"""Checkers for exercises 07 and 08: multi-head self-attention, forward and backward.

Student signatures (params as from ``init_mha_params``: W_q, W_k, W_v, W_o of shape
(D, D), used as ``x @ W + b``, and biases b_q, b_k, b_v, b_o of shape (D,)):
    mha_forward(x, params, n_heads, mask=None) -> out          x, out (B, N, D)
    mha_backward(dout, x, params, n_heads, mask=None) -> (dx, grads)
        dout, dx (B, N, D); grads a dict with the keys and shapes of params.
The mask is boolean, broadcastable to (B, H, N, N), True = may attend.
"""

import numpy as np

from ..attention import attention_backward, attention_forward
from ..gradcheck import numerical_grads
from ..masks import causal_mask, padding_mask
from ..multihead import (
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    split_heads,
)
from .framework import Case, Checker
from .hints import kind, matches, matches_any, when


def _inputs(rng, B, N, D, H):
    params = init_mha_params(D, H, rng=rng)
    params = {k: w + 0.2 * rng.standard_normal(w.shape) for k, w in params.items()}
    return rng.standard_normal((B, N, D)), params  # non-zero biases


SETUPS = [  # name, (B, N, D, H), mask
    ("2 heads, no mask", (2, 3, 8, 2), None),
    ("3 heads, causal mask", (1, 4, 6, 3), causal_mask(4)),
    ("2 heads, padding lengths [4, 2]", (2, 4, 8, 2), padding_mask([4, 2], 4)),
    ("4 heads, sequence 1 all padding", (2, 3, 8, 4), padding_mask([3, 0], 3)),
]


def _forward_cases(rng):
    out = []
    for name, (B, N, D, H), mask in SETUPS:
        x, params = _inputs(rng, B, N, D, H)
        expected = mha_forward(x, x, params, H, mask)[0]
        out.append(Case(f"{name}: x {x.shape}", (x, params, H, mask), expected))
    return out


def _mha(
    c,
    *,
    split=split_heads,
    merge=merge_heads,
    scale=None,
    proj=True,
    bias=True,
    w_t=False,
):
    """Multi-head attention with one planted mistake (the keyword arguments)."""
    x, params, H, mask = c.args
    W = lambda n: params[n].T if w_t else params[n]
    b = lambda n: params[n] if bias else 0.0
    q, k, v = (x @ W(f"W_{n}") + b(f"b_{n}") for n in "qkv")  # (B, N, D)
    heads = [split(t, H) for t in (q, k, v)]  # (B, H, N, d)
    o = merge(attention_forward(*heads, mask, scale=scale)[0])  # (B, N, D)
    return o @ W("W_o") + b("b_o") if proj else o


def _split_no_t(t, H):
    return t.reshape(t.shape[0], H, t.shape[1], -1)


def _merge_no_t(t):
    return t.reshape(t.shape[0], t.shape[2], -1)


MHA_HINTS = (
    matches(
        lambda c: _mha(c, split=_split_no_t, merge=_merge_no_t),
        "heads split without the transpose: reshape q, k, v to (B, N, H, d), then "
        ".transpose(0, 2, 1, 3) to (B, H, N, d); merge undoes both steps.",
    ),
    matches(
        lambda c: _mha(c, merge=_merge_no_t),
        "heads merged without the transpose: o.transpose(0, 2, 1, 3) before "
        "reshaping to (B, N, D).",
    ),
    matches(
        lambda c: _mha(c, split=lambda t, H: t[:, None]),
        "this is one head of width D: split q, k and v into n_heads heads of width "
        "d = D / n_heads, each with scale 1/sqrt(d).",
    ),
    matches(
        lambda c: _mha(c, scale=1 / np.sqrt(c.args[0].shape[-1])),
        "the scale uses the head width d = D / n_heads, not D: 1/sqrt(d).",
    ),
    matches(lambda c: _mha(c, scale=1.0), "missing scale 1/sqrt(d) in each head."),
    matches(
        lambda c: _mha(c, proj=False),
        "the output projection is missing: out = merge(o) @ W_o + b_o.",
    ),
    matches(
        lambda c: _mha(c, bias=False),
        "the biases are missing: q = x @ W_q + b_q, and so on for k, v and out.",
    ),
    matches(
        lambda c: _mha(c, w_t=True),
        "weights are (D_in, D_out) and used as x @ W + b, with no transpose.",
    ),
    matches(
        lambda c: mha_forward(c.args[0], c.args[0], *c.args[1:3], None)[0],
        "the mask is ignored: pass it to the attention of every head.",
    ),
)

MHA_FORWARD = Checker(
    title="mha_forward(x, params, n_heads, mask=None) -> out",
    make_cases=_forward_cases,
    outputs=("out",),
    arg_names=("x", "params"),
    hints=MHA_HINTS,
    fallback="project (x @ W + b), split into heads, attend per head, merge, "
    "project with W_o, b_o.",
)


def check_mha_forward(fn):
    """Check a student's ``mha_forward(x, params, n_heads, mask=None) -> out``.

    Self-attention: x (B, N, D) gives the queries, keys and values; params as from
    ``init_mha_params`` (with non-zero biases); out (B, N, D). Returns True when
    every case passes.
    """
    return MHA_FORWARD.run(fn)


def _backward_cases(rng):
    out = []
    for name, (B, N, D, H), mask in SETUPS:
        x, params = _inputs(rng, B, N, D, H)
        y, cache = mha_forward(x, x, params, H, mask)
        dout = rng.standard_normal(y.shape)  # random, never ones
        dx_q, dx_kv, grads = mha_backward(dout, cache)

        def f(p, params=params, H=H, mask=mask):
            return mha_forward(p["x"], p["x"], {k: p[k] for k in params}, H, mask)[0]

        fd = numerical_grads(f, {"x": x, **params}, dout)
        fd = (fd.pop("x"), fd)
        case = Case(
            f"{name}: x {x.shape}",
            (dout, x, params, H, mask),
            (dx_q + dx_kv, grads),
            fd=fd,
        )
        out.append(case)
    return out


def _paths(c):
    """dx through each of the three projections: {"q": ..., "k": ..., "v": ...}."""
    dout, x, params, H, mask = c.args
    cache = mha_forward(x, x, params, H, mask)[1]
    do = split_heads(dout @ params["W_o"].T, H)  # (B, H, N, d)
    dh = attention_backward(do, cache.attn_cache)
    return {
        n: merge_heads(g) @ params[f"W_{n}"].T for n, g in zip("qkv", dh, strict=True)
    }


def _partial_sums(c):
    p = _paths(c)
    sums = [p["q"], p["k"], p["v"], p["q"] + p["k"], p["q"] + p["v"], p["k"] + p["v"]]
    return [{"dx": s} for s in sums]


MHA_BACKWARD_HINTS = (
    matches_any(
        _partial_sums,
        "x feeds three paths, the query, key and value projections, so its gradient "
        "is the sum of all three: dx = dq_cat W_q^T + dk_cat W_k^T + dv_cat W_v^T.",
    ),
    matches(
        lambda c: {f"grads['{n}']": g.T for n, g in c.expected[1].items()},
        "dW is the transpose of what it should be: for out = x @ W, "
        "dW = x^T dout, shape (D_in, D_out) like W.",
    ),
    when(
        lambda f: kind("shape")(f) and f.name.startswith("grads['b_"),
        "a bias gradient sums dout over every axis but the last: "
        "dout.reshape(-1, D).sum(axis=0), shape (D,).",
    ),
    when(
        lambda f: kind("shape")(f) and f.name.startswith("grads['W_"),
        "a weight gradient sums over the batch and positions too: flatten to "
        "(B*N, D) first, dW = x2^T dout2, shape (D_in, D_out).",
    ),
    when(
        kind("key"),
        "grads needs exactly the keys of params: W_q, W_k, W_v, W_o, b_q, b_k, b_v, "
        "b_o.",
    ),
)

MHA_BACKWARD = Checker(
    title="mha_backward(dout, x, params, n_heads, mask=None) -> (dx, grads)",
    make_cases=_backward_cases,
    outputs=("dx", "grads"),
    arg_names=("dout", "x", "params"),
    hints=MHA_BACKWARD_HINTS,
    fallback="go back through the forward in reverse: output projection, merge, "
    "attention backward per head, split, the three input projections.",
)


def check_mha_backward(fn):
    """Check a student's ``mha_backward(dout, x, params, n_heads, mask=None)``.

    Returns (dx, grads): dx (B, N, D) for the self-attention input and grads with
    the keys and shapes of params. Compared with the reference and with central
    finite differences. Returns True when every case passes.
    """
    return MHA_BACKWARD.run(fn)

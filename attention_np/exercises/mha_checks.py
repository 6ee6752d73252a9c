"""Checkers for exercises 05b and 07c: multi-head self-attention, forward and backward.

Student signatures (params: W_q, W_k, W_v, W_o of shape (D, D), used as
``x @ W + b``, and biases b_q, b_k, b_v, b_o of shape (D,)):
    mha_forward(x, params, n_heads, mask=None) -> out          x, out (B, N, D)
    mha_backward(dout, x, params, n_heads, mask=None) -> (dx, grads)
        dout, dx (B, N, D); grads a dict with the keys and shapes of params.
The mask is boolean, broadcastable to (B, H, N, N), True = may attend.
"""

import numpy as np

from . import _ref, answer_key
from .framework import Case, Checker, grade
from .hints import kind, matches, matches_any, when

NAMES = ("W_q", "W_k", "W_v", "W_o", "b_q", "b_k", "b_v", "b_o")


def _inputs(rng, B, N, D):
    g = rng.standard_normal
    params = {n: g((D, D)) / np.sqrt(D) for n in NAMES[:4]}
    params.update({n: 0.3 * g(D) for n in NAMES[4:]})  # non-zero biases
    return g((B, N, D)), params


def _head_mask(rng, B, H, N):
    mask = rng.random((B, H, N, N)) > 0.4
    mask[..., 0] = True  # every query keeps at least one key
    return rng.permuted(mask, axis=-1)


def _setups(rng):
    """name, (B, N, D, H), mask."""
    return [
        ("2 heads, no mask", (2, 3, 8, 2), None),
        ("3 heads, causal mask (N, N)", (1, 4, 6, 3), _ref.causal_allow(4, 4)),
        (
            "2 heads, padding lengths [4, 2]",
            (2, 4, 8, 2),
            _ref.padding_allow([4, 2], 4),
        ),
        (
            "4 heads, sequence 1 all padding",
            (2, 3, 8, 4),
            _ref.padding_allow([3, 0], 3),
        ),
        ("2 heads, a different mask per head", (2, 3, 4, 2), _head_mask(rng, 2, 2, 3)),
    ]


def _forward_cases(rng):
    out = []
    for name, (B, N, D, H), mask in _setups(rng):
        x, params = _inputs(rng, B, N, D)
        expected = _ref.mha_forward(x, params, H, mask)[0]
        out.append(Case(f"{name}: x {x.shape}", (x, params, H, mask), expected))
    return out


def _mha(c, *, split=_ref.split_heads, merge=_ref.merge_heads, scale=None,
         proj=True, bias=True, w_t=False, mask=True):  # fmt: skip
    """Multi-head attention with one planted mistake (the keyword arguments)."""
    x, params, H, allow = c.args
    W = lambda n: params[n].T if w_t else params[n]
    b = lambda n: params[n] if bias else 0.0
    heads = [split(x @ W(f"W_{n}") + b(f"b_{n}"), H) for n in "qkv"]  # (B, H, N, d)
    o = merge(_ref.attention(*heads, allow if mask else None, scale)[0])  # (B, N, D)
    return o @ W("W_o") + b("b_o") if proj else o


def _split_no_t(t, H):
    return t.reshape(t.shape[0], H, t.shape[1], -1)


def _merge_no_t(t):
    return t.reshape(t.shape[0], t.shape[2], -1)


MHA_HINTS = (
    matches(
        lambda c: _mha(c, split=_split_no_t, merge=_merge_no_t),
        "heads split without the transpose: a plain reshape to (B, H, N, d) mixes "
        "positions and features (exercise 05a).",
    ),
    matches(
        lambda c: _mha(c, merge=_merge_no_t),
        "heads merged without the transpose: positions must come back before "
        "heads before the reshape to (B, N, D).",
    ),
    matches(
        lambda c: _mha(c, split=lambda t, H: t[:, None], scale=None),
        "this is one head of width D: split q, k and v into n_heads heads of width "
        "d = D / n_heads, each scaled by 1/sqrt(d).",
    ),
    matches(
        lambda c: _mha(c, scale=1 / np.sqrt(c.args[0].shape[-1])),
        "the scale uses the head width d = D / n_heads, not D.",
    ),
    matches(
        lambda c: _mha(c, scale=1.0), "the scale 1/sqrt(d) is missing in each head."
    ),
    matches(
        lambda c: _mha(c, proj=False),
        "the output projection is missing: the merged heads go through W_o and b_o.",
    ),
    matches(
        lambda c: _mha(c, bias=False),
        "the biases are missing: every projection is x @ W + b.",
    ),
    matches(
        lambda c: _mha(c, w_t=True),
        "weights are (D_in, D_out) and used as x @ W + b, with no transpose.",
    ),
    matches(
        lambda c: _mha(c, mask=False),
        "the mask is ignored: pass it to the attention of every head.",
    ),
)

MHA_FORWARD = Checker(
    title="mha_forward(x, params, n_heads, mask=None) -> out",
    make_cases=_forward_cases,
    outputs=("out",),
    arg_names=("x", "params", "n_heads", "mask"),
    hints=MHA_HINTS,
    forbidden=answer_key.MHA + answer_key.REFERENCE,
    call="check_mha_forward(mha_forward)",
)


def check_mha_forward(fn, *, seed=None):
    """Check a student's ``mha_forward(x, params, n_heads, mask=None) -> out``.

    Self-attention: x (B, N, D) gives the queries, keys and values; params W_* (D, D)
    and non-zero b_* (D,); out (B, N, D). Raises AssertionError unless every case
    passes.
    """
    __tracebackhide__ = True
    grade(MHA_FORWARD, fn, seed=seed)


def _backward_cases(rng):
    out = []
    for name, (B, N, D, H), mask in _setups(rng)[:4]:
        x, params = _inputs(rng, B, N, D)
        dout = rng.standard_normal(x.shape)  # random, never ones

        def f(p, params=params, H=H, mask=mask):
            return _ref.mha_forward(p["x"], {k: p[k] for k in params}, H, mask)[0]

        fd = _ref.numerical_grads(f, {"x": x, **params}, dout)
        fd = (fd.pop("x"), fd)
        expected = _ref.mha_backward(dout, x, params, H, mask)
        args = (dout, x, params, H, mask)
        out.append(Case(f"{name}: x {x.shape}", args, expected, fd=fd))
    return out


def _paths(c):
    """dx through each of the three projections: {"q": ..., "k": ..., "v": ...}."""
    dout, x, params, H, mask = c.args
    heads, P, _ = _ref.mha_forward(x, params, H, mask)[1]
    do = _ref.split_heads(dout @ params["W_o"].T, H)  # (B, H, N, d)
    dh = _ref.attention_backward(do, *heads, P)
    return {
        n: _ref.merge_heads(g) @ params[f"W_{n}"].T
        for n, g in zip("qkv", dh, strict=True)
    }


def _partial_sums(c):
    p = _paths(c)
    sums = [p["q"], p["k"], p["v"], p["q"] + p["k"], p["q"] + p["v"], p["k"] + p["v"]]
    return [{"dx": s} for s in sums]


MHA_BACKWARD_HINTS = (
    matches_any(
        _partial_sums,
        "x feeds three paths, the query, key and value projections, so its gradient "
        "is the sum of the gradients through all three.",
    ),
    matches_any(
        lambda c: [{f"grads['{n}']": g.T for n, g in c.expected[1].items()}],
        "dW is the transpose of what it should be: for out = x @ W the gradient "
        "has W's shape (D_in, D_out), rows indexed like x's features.",
    ),
    when(
        lambda f: kind("shape")(f) and f.name.startswith("grads['b_"),
        "a bias is added to every (batch, position) row, so its gradient sums "
        "dout over every axis but the last: shape (D,).",
    ),
    when(
        lambda f: kind("shape")(f) and f.name.startswith("grads['W_"),
        "a weight is shared by every (batch, position) row, so its gradient sums "
        "over the batch and the positions too: shape (D_in, D_out).",
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
    arg_names=("dout", "x", "params", "n_heads", "mask"),
    hints=MHA_BACKWARD_HINTS,
    forbidden=answer_key.MHA + answer_key.REFERENCE,
    call="check_mha_backward(mha_backward)",
)


def check_mha_backward(fn, *, seed=None):
    """Check a student's ``mha_backward(dout, x, params, n_heads, mask=None)``.

    Returns (dx, grads): dx (B, N, D) for the self-attention input and grads with
    the keys and shapes of params. Compared with the reference and with central
    finite differences. Raises AssertionError unless every case passes.
    """
    __tracebackhide__ = True
    grade(MHA_BACKWARD, fn, seed=seed)

"""The layers that ``python -m attention_np gradcheck`` checks, core package part.

Each case is a function ``case(rng) -> (forward, backward, inputs)`` where ``forward``
takes a dict of float64 arrays and returns ``(out, cache)`` and ``backward`` returns a
dict of gradients keyed like the inputs. Sizes are small and all different
(B, H, N, M, d = 2, 3, 4, 5, 6) so that a transposition bug cannot hide.
Sub-packages keep their own ``gradcheck_cases`` module with a ``CASES`` dict; the
command line finds every such module by itself.
"""

import numpy as np

from .attention import attention_backward, attention_forward
from .linear import linear_backward, linear_forward
from .masks import causal_mask, combine_masks, padding_mask
from .multihead import (
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    split_heads,
)
from .softmax import softmax_backward, softmax_forward

B, H, N, M, d, d_v = 2, 3, 4, 5, 6, 7


def _linear(rng, bias=True):
    inputs = {"x": rng.standard_normal((B, N, 6)), "W": rng.standard_normal((6, 7))}
    if bias:
        inputs["b"] = rng.standard_normal(7)

    def backward(dout, cache):
        dx, dW, db = linear_backward(dout, cache)
        return {"x": dx, "W": dW, **({"b": db} if bias else {})}

    return lambda p: linear_forward(p["x"], p["W"], p.get("b")), backward, inputs


def _softmax(rng, masked=False):
    mask = None
    if masked:
        mask = rng.random((B, N, M)) > 0.3
        mask[0, 1] = False  # one fully masked row
    forward = lambda p: softmax_forward(p["x"], mask)
    backward = lambda dout, cache: {"x": softmax_backward(dout, cache)}
    return forward, backward, {"x": 3 * rng.standard_normal((B, N, M))}


def _attention(rng, mask=None, dropout_p=0.0, k_heads=H):
    inputs = {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, k_heads, M, d)),
        "v": rng.standard_normal((B, k_heads, M, d_v)),
    }

    def forward(p):  # a fresh Generator per call: the same dropout mask every time
        rng_drop = np.random.default_rng(7) if dropout_p else None
        return attention_forward(
            p["q"], p["k"], p["v"], mask, dropout_p=dropout_p, rng=rng_drop
        )

    def backward(dout, cache):
        return dict(zip(("q", "k", "v"), attention_backward(dout, cache), strict=False))

    return forward, backward, inputs


def _fully_masked_mask(rng):
    mask = rng.random((B, H, N, M)) > 0.4
    mask[1, 2, 3] = False  # query 3 of batch 1, head 2 sees no key
    return mask


def _split_merge(rng):
    forward = lambda p: (split_heads(p["x"], H), None)
    backward = lambda dout, cache: {"x": merge_heads(dout)}  # merge is split's adjoint
    return forward, backward, {"x": rng.standard_normal((B, N, H * d))}


def _mha(rng, cross=False):
    D, d_kv = H * 2, (5 if cross else H * 2)
    params = init_mha_params(D, H, rng=rng, d_kv=d_kv)
    # perturb every parameter: non-zero biases
    params = {k: w + 0.1 * rng.standard_normal(w.shape) for k, w in params.items()}
    x_q = rng.standard_normal((B, N, D))
    if cross:
        inputs = {"x_q": x_q, "x_kv": rng.standard_normal((B, M, d_kv)), **params}
        mask = padding_mask([M, 2], M)
    else:
        inputs = {"x": x_q, **params}
        mask = causal_mask(N)

    def forward(p):
        x_q, x_kv = (p["x_q"], p["x_kv"]) if cross else (p["x"], p["x"])
        weights = {k: p[k] for k in params}
        return mha_forward(x_q, x_kv, weights, H, mask)

    def backward(dout, cache):
        dx_q, dx_kv, grads = mha_backward(dout, cache)
        dx = {"x_q": dx_q, "x_kv": dx_kv} if cross else {"x": dx_q + dx_kv}
        return {**dx, **grads}

    return forward, backward, inputs


CASES = {
    "linear": _linear,
    "linear (no bias)": lambda rng: _linear(rng, bias=False),
    "softmax": _softmax,
    "softmax (masked, fully masked row)": lambda rng: _softmax(rng, masked=True),
    "attention": _attention,
    "attention (causal, N != M)": lambda rng: _attention(rng, causal_mask(N, M)),
    "attention (causal, bottom-right)": lambda rng: _attention(
        rng, causal_mask(N, M, align="bottom_right")
    ),
    "attention (padding + causal)": lambda rng: _attention(
        rng,
        combine_masks(padding_mask([3, 0], M), causal_mask(N, M, align="bottom_right")),
    ),
    "attention (fully masked row)": lambda rng: _attention(
        rng, _fully_masked_mask(rng)
    ),
    "attention (dropout 0.3)": lambda rng: _attention(rng, dropout_p=0.3),
    "attention (shared k/v across heads)": lambda rng: _attention(rng, k_heads=1),
    "split/merge heads": _split_merge,
    "multi-head self-attention (causal)": _mha,
    "multi-head cross-attention (padding)": lambda rng: _mha(rng, cross=True),
}

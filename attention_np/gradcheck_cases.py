"""The layers that ``python -m attention_np gradcheck`` checks, core package part.

Each case is a function ``case(rng)`` returning a ``gradcheck.LayerCase``: the public
forward and backward themselves, called exactly as the package's contract says (so
the check also checks the contract). A case that is not one layer may instead return
``(forward, backward, inputs)``, ``forward`` taking a dict of float64 arrays and
returning ``(out, cache)``, ``backward`` returning a dict keyed like the inputs.
Sizes are small and all different (B, H, N, M, d = 2, 3, 4, 5, 6) so that a
transposition bug cannot hide.
Sub-packages keep their own ``gradcheck_cases`` module with a ``CASES`` dict; the
command line finds every such module by itself.
"""

import numpy as np

from .additive import (
    additive_attention_backward,
    additive_attention_forward,
    init_additive_params,
    luong_attention_backward,
    luong_attention_forward,
)
from .attention import attention_backward, attention_forward
from .decoding import gqa_attention_backward, gqa_attention_forward
from .gradcheck import LayerCase
from .linear import linear_backward, linear_forward
from .masks import padding_mask
from .multihead import (
    init_mha_params,
    merge_heads,
    mha_backward,
    mha_forward,
    split_heads,
)
from .positional import rope_backward, rope_forward
from .softmax import softmax_backward, softmax_forward

B, H, N, M, d, d_v = 2, 3, 4, 5, 6, 7


def _linear(rng, bias=True):
    arrays = {"x": rng.standard_normal((B, N, 6)), "W": rng.standard_normal((6, 7))}
    arrays["b"] = rng.standard_normal(7) if bias else None  # None: left out
    return LayerCase(linear_forward, linear_backward, arrays)


def _softmax(rng, masked=False):
    mask = None
    if masked:
        mask = rng.random((B, N, M)) > 0.3
        mask[0, 1] = False  # one fully masked row
    arrays = {"x": 3 * rng.standard_normal((B, N, M))}
    return LayerCase(softmax_forward, softmax_backward, arrays, options={"mask": mask})


def _attention(rng, mask=None, dropout_p=0.0, k_heads=H, **options):
    arrays = {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, k_heads, M, d)),
        "v": rng.standard_normal((B, k_heads, M, d_v)),
    }
    options = {"causal": False, "mask": mask, **options}
    if dropout_p:

        def forward(q, k, v, **kw):  # a fresh Generator per call: the same dropout
            rng_drop = np.random.default_rng(7)
            return attention_forward(q, k, v, dropout_p=dropout_p, rng=rng_drop, **kw)

        return LayerCase(forward, attention_backward, arrays, options=options)
    return LayerCase(attention_forward, attention_backward, arrays, options=options)


def _fully_masked_mask(rng):
    mask = rng.random((B, H, N, M)) > 0.4
    mask[1, 2, 3] = False  # query 3 of batch 1, head 2 sees no key
    return mask


def _split_merge(rng):
    forward = lambda p: (split_heads(p["x"], H), None)
    backward = lambda dout, cache: {"x": merge_heads(dout)}  # merge is split's adjoint
    return forward, backward, {"x": rng.standard_normal((B, N, H * d))}


def _mha(rng, cross=False, bias=True, n_kv_heads=None, positions=False):
    D, d_kv = H * 2, (5 if cross else H * 2)
    params = init_mha_params(D, H, rng=rng, d_kv=d_kv, n_kv_heads=n_kv_heads, bias=bias)
    # perturb every parameter: non-zero biases
    params = {k: w + 0.1 * rng.standard_normal(w.shape) for k, w in params.items()}
    x_q = rng.standard_normal((B, N, D))
    x_kv = rng.standard_normal((B, M, d_kv)) if cross else x_q.copy()
    options = {"n_heads": H, "n_kv_heads": n_kv_heads, "causal": not cross}
    if cross:
        options["mask"] = padding_mask([M, 2], M)
    if positions is True:
        options["positions"] = np.array([3, 1, 4, 1])  # any positions, repeats too
    elif positions is not False:
        options["positions"] = positions
    arrays = {"x_q": x_q, "x_kv": x_kv}
    return LayerCase(mha_forward, mha_backward, arrays, params, options)


def _gqa(rng, G=1, **options):
    arrays = {
        "q": rng.standard_normal((B, 4, N, d)),  # H = 4 query heads
        "k": rng.standard_normal((B, G, M, d)),
        "v": rng.standard_normal((B, G, M, d_v)),
    }
    options = {"causal": True, "align": "bottom_right", **options}
    return LayerCase(
        gqa_attention_forward, gqa_attention_backward, arrays, None, options
    )


def _additive(rng, **options):
    params = init_additive_params(3, 5, 6, rng=rng)
    arrays = {
        "q": rng.standard_normal((B, N, 3)),
        "k": rng.standard_normal((B, M, 5)),
        "v": rng.standard_normal((B, M, d_v)),
    }
    options = {"mask": rng.random((B, N, M)) > 0.3, "causal": False, **options}
    return LayerCase(
        additive_attention_forward, additive_attention_backward, arrays, params, options
    )


def _luong(rng, general=True, **options):
    arrays = {
        "q": rng.standard_normal((B, N, 3 if general else 5)),
        "k": rng.standard_normal((B, M, 5)),
        "v": rng.standard_normal((B, M, d_v)),
        "W_a": 0.5 * rng.standard_normal((3, 5)) if general else None,
    }
    options = {"causal": False, **options}
    return LayerCase(
        luong_attention_forward, luong_attention_backward, arrays, None, options
    )


def _rope(rng, layout="interleaved", positions=(0, 5, 2, 9)):
    arrays = {"x": rng.standard_normal((B, H, N, d))}
    options = {"positions": np.array(positions), "layout": layout}
    return LayerCase(rope_forward, rope_backward, arrays, None, options)


CASES = {
    "linear": _linear,
    "linear (no bias)": lambda rng: _linear(rng, bias=False),
    "softmax": _softmax,
    "softmax (masked, fully masked row)": lambda rng: _softmax(rng, masked=True),
    "attention": _attention,
    "attention (causal, N != M)": lambda rng: _attention(rng, causal=True),
    "attention (causal, bottom-right)": lambda rng: _attention(
        rng, causal=True, align="bottom_right"
    ),
    "attention (padding + causal)": lambda rng: _attention(
        rng, padding_mask([3, 0], M), causal=True, align="bottom_right"
    ),
    "attention (fully masked row)": lambda rng: _attention(
        rng, _fully_masked_mask(rng)
    ),
    "attention (dropout 0.3)": lambda rng: _attention(rng, dropout_p=0.3),
    "attention (shared k/v across heads)": lambda rng: _attention(rng, k_heads=1),
    "split/merge heads": _split_merge,
    "multi-head attention (x_q = x_kv, causal)": _mha,
    "multi-head attention (no biases)": lambda rng: _mha(rng, bias=False),
    "multi-head attention (GQA, G = 1, RoPE)": lambda rng: _mha(
        rng, n_kv_heads=1, positions=True
    ),
    "multi-head cross-attention (padding)": lambda rng: _mha(rng, cross=True),
    "multi-head attention (RoPE positions (B, N), no biases)": lambda rng: _mha(
        rng, bias=False, positions=np.array([[3, 1, 4, 1], [0, 1, 2, 3]])
    ),
    "grouped-query attention (G = 2, bottom-right causal)": lambda rng: _gqa(rng, 2),
    "multi-query attention (G = 1, bottom-right causal)": _gqa,
    "grouped-query attention (G = 2, top-left causal, padding)": lambda rng: _gqa(
        rng, 2, align="top_left", mask=padding_mask([4, 2], M)
    ),
    "additive (Bahdanau) attention (masked)": _additive,
    "additive (Bahdanau) attention (causal, bottom-right)": lambda rng: _additive(
        rng, mask=None, causal=True, align="bottom_right"
    ),
    "Luong general attention": _luong,
    "Luong dot attention (causal)": lambda rng: _luong(rng, False, causal=True),
    "RoPE (interleaved)": _rope,
    "RoPE (rotate-half)": lambda rng: _rope(rng, "half"),
    "RoPE (positions (B, N), float)": lambda rng: _rope(
        rng, positions=[[0, 5, 2, 9], [1.5, 0.0, 7.25, 3.0]]
    ),
}

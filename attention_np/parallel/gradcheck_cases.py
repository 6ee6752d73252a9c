"""Gradient-check cases of ``attention_np.parallel`` for ``python -m attention_np
gradcheck``: each ``case(rng) -> (forward, backward, inputs)``, tiny and with all
sizes different (B, H, N, d, d_v = 1, 2, 8, 3, 4; N = 8 splits into 2 x 2 zigzag
chunks). The ring backward travels the ring with dK, dV accumulators; the merge
backward is the softmax Jacobian of the two log-sum-exps.
"""

from functools import partial

import numpy as np

from .merge import merge_partials, merge_partials_backward
from .ring_sim import ring_attention_backward, ring_attention_forward
from .ulysses import ulysses_attention_backward, ulysses_attention_forward

B, H, N, d, d_v = 1, 2, 8, 3, 4


def _qkv(rng):
    return {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, H, N, d)),
        "v": rng.standard_normal((B, H, N, d_v)),
    }


def _ring(rng, layout, causal=True, n_ranks=2):
    options = {"n_ranks": n_ranks, "layout": layout, "causal": causal}
    options.update(block_q=3, block_k=2)  # tiles that do not divide the shards

    def forward(p):
        return ring_attention_forward(p["q"], p["k"], p["v"], **options)

    def backward(dout, cache):
        return dict(zip("qkv", ring_attention_backward(dout, cache), strict=True))

    return forward, backward, _qkv(rng)


def _ulysses(rng, causal=True):
    def forward(p):
        return ulysses_attention_forward(
            p["q"], p["k"], p["v"], n_ranks=2, causal=causal
        )

    def backward(dout, cache):
        return dict(zip("qkv", ulysses_attention_backward(dout, cache), strict=True))

    return forward, backward, _qkv(rng)


def merge_case(inputs):
    """merge_partials with o and lse stacked into one output (..., N, d_v + 1).

    ``inputs``: {"o_a", "lse_a", "o_b", "lse_b"} arrays; returns a case's
    (forward, backward, inputs).
    """
    names = ("o_a", "lse_a", "o_b", "lse_b")

    def forward(p):
        o, lse = merge_partials(*(p[n] for n in names))
        return np.concatenate([o, lse[..., None]], axis=-1), p

    def backward(dout, p):
        grads = merge_partials_backward(
            dout[..., :-1], dout[..., -1], *(p[n] for n in names)
        )
        return dict(zip(names, grads, strict=True))

    return forward, backward, inputs


def _merge(rng):
    return merge_case(
        {
            "o_a": rng.standard_normal((B, H, N, d_v)),
            "lse_a": rng.standard_normal((B, H, N)),
            "o_b": rng.standard_normal((B, H, N, d_v)),
            "lse_b": rng.standard_normal((B, H, N)),
        }
    )


CASES = {
    "merge_partials (o and lse of two key blocks)": _merge,
    "ring attention, zigzag causal, 2 ranks": partial(_ring, layout="zigzag"),
    "ring attention, striped causal, 4 ranks": partial(
        _ring, layout="striped", n_ranks=4
    ),
    "ring attention, contiguous not causal, 2 ranks": partial(
        _ring, layout="contiguous", causal=False
    ),
    "ulysses attention, causal, 2 ranks": _ulysses,
}

"""Gradient-check cases of ``attention_np.efficient`` for ``python -m attention_np
gradcheck``: each ``case(rng) -> (forward, backward, inputs)``, small, all sizes
different (B, H, N, M, d, d_v = 2, 3, 5, 4, 6, 7), tiles that do not divide N or M.
"""

from ..masks import padding_mask
from .banded import sliding_window_attention_backward, sliding_window_attention_forward
from .block_attention import block_attention_backward, block_attention_forward
from .flash import flash_attention_backward, flash_attention_forward
from .linear_attention import linear_attention_backward, linear_attention_forward
from .performer import favor_backward, favor_forward, favor_omega

B, H, N, M, d, d_v = 2, 3, 5, 4, 6, 7


def _qkv(rng, k_heads=H):
    return {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, k_heads, M, d)),
        "v": rng.standard_normal((B, k_heads, M, d_v)),
    }


def _grads(names, grads):
    return dict(zip(names, grads, strict=True))


def _flash(rng, mask=None, k_heads=H, **options):
    def forward(p):
        return flash_attention_forward(
            p["q"], p["k"], p["v"], mask, block_q=2, block_k=3, **options
        )

    backward = lambda dout, cache: _grads("qkv", flash_attention_backward(dout, cache))
    return forward, backward, _qkv(rng, k_heads)


def _fully_masked(rng):
    mask = rng.random((B, H, N, M)) > 0.4
    mask[1, 2, 3] = False  # query 3 of batch 1, head 2 sees no key
    return mask


def _block(rng, causal_offset):
    """block_attention_backward with out, lse of the same (whole) key block."""
    options = {"causal_offset": causal_offset, "block_q": 3, "block_k": 2}

    def forward(p):
        out, lse = block_attention_forward(p["q"], p["k"], p["v"], **options)
        return out, (p, out, lse)

    def backward(dout, cache):
        p, out, lse = cache
        grads = block_attention_backward(
            dout, p["q"], p["k"], p["v"], out, lse, **options
        )
        return _grads("qkv", grads)

    return forward, backward, _qkv(rng)


def _linear(rng, feature_map="elu+1", causal=False, form="parallel", m=None):
    omega = None if m is None else favor_omega(d, m, rng=rng)
    inputs = {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, H, N, d)),  # causal forms need M = N
        "v": rng.standard_normal((B, H, N, d_v)),
    }
    options = dict(feature_map=feature_map, causal=causal, form=form, omega=omega)

    def forward(p):
        return linear_attention_forward(p["q"], p["k"], p["v"], chunk_size=2, **options)

    backward = lambda dout, cache: _grads("qkv", linear_attention_backward(dout, cache))
    return forward, backward, inputs


def _favor(rng, stabilize):
    omega = favor_omega(d, 8, rng=rng)
    forward = lambda p: favor_forward(p["x"], omega, stabilize=stabilize)
    backward = lambda dphi, cache: {"x": favor_backward(dphi, cache)}
    return forward, backward, {"x": rng.standard_normal((B, N, d))}


def _banded(rng, causal, mask=None):
    inputs = _qkv(rng, k_heads=1)
    inputs["k"] = rng.standard_normal((B, 1, N, d))  # self-attention: M = N
    inputs["v"] = rng.standard_normal((B, 1, N, d_v))

    def forward(p):
        return sliding_window_attention_forward(
            p["q"], p["k"], p["v"], mask, window=3, causal=causal
        )

    backward = lambda dout, cache: _grads(
        "qkv", sliding_window_attention_backward(dout, cache)
    )
    return forward, backward, inputs


CASES = {
    "flash attention": _flash,
    "flash attention (causal, N != M)": lambda rng: _flash(rng, causal=True),
    "flash attention (causal bottom-right)": lambda rng: _flash(
        rng, causal=True, align="bottom_right"
    ),
    "flash attention (padding + causal)": lambda rng: _flash(
        rng, padding_mask([3, 0], M), causal=True
    ),
    "flash attention (fully masked row)": lambda rng: _flash(rng, _fully_masked(rng)),
    "flash attention (shared k/v across heads)": lambda rng: _flash(rng, k_heads=1),
    "block attention (causal offset -2, empty rows)": lambda rng: _block(rng, -2),
    "block attention (no causal rule)": lambda rng: _block(rng, None),
    "linear attention (elu+1)": _linear,
    "linear attention (relu, causal parallel)": lambda rng: _linear(rng, "relu", True),
    "linear attention (dpfp, causal recurrent)": lambda rng: _linear(
        rng, "dpfp", True, "recurrent"
    ),
    "linear attention (elu+1, causal recurrent)": lambda rng: _linear(
        rng, causal=True, form="recurrent"
    ),
    "linear attention (elu+1, causal chunkwise)": lambda rng: _linear(
        rng, causal=True, form="chunkwise"
    ),
    "performer FAVOR+ attention (causal chunkwise)": lambda rng: _linear(
        rng, "favor+", True, "chunkwise", m=7
    ),
    "FAVOR+ features (query stabiliser)": lambda rng: _favor(rng, "row"),
    "FAVOR+ features (key stabiliser)": lambda rng: _favor(rng, "all"),
    "sliding-window attention (causal, banded)": lambda rng: _banded(rng, True),
    "sliding-window attention (bidirectional, banded, padding)": lambda rng: _banded(
        rng, False, padding_mask([N, 2], N)
    ),
}

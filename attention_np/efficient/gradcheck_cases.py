"""Gradient-check cases of ``attention_np.efficient`` for ``python -m attention_np
gradcheck``: each ``case(rng) -> (forward, backward, inputs)``, small, all sizes
different (B, H, N, M, d, d_v = 2, 3, 5, 4, 6, 7), tiles that do not divide N or M.
"""

from ..masks import padding_mask
from .block_attention import block_attention_backward, block_attention_forward
from .flash import flash_attention_backward, flash_attention_forward

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
}

"""Gradient-check cases of ``attention_np.efficient`` for ``python -m attention_np
gradcheck``: each ``case(rng)`` is a ``gradcheck.LayerCase`` that calls the public
forward and backward by the contract. Small, all sizes different (B, H, N, M, d,
d_v = 2, 3, 5, 4, 6, 7), tiles that do not divide N or M.
"""

from ..gradcheck import LayerCase
from ..masks import padding_mask
from .banded import sliding_window_attention_backward, sliding_window_attention_forward
from .flash import flash_attention_backward, flash_attention_forward
from .linear_attention import linear_attention_backward, linear_attention_forward
from .performer import favor_backward, favor_forward, favor_omega

B, H, N, M, d, d_v = 2, 3, 5, 4, 6, 7


def _qkv(rng, k_heads=H, m=M):
    return {
        "q": rng.standard_normal((B, H, N, d)),
        "k": rng.standard_normal((B, k_heads, m, d)),
        "v": rng.standard_normal((B, k_heads, m, d_v)),
    }


def _flash(rng, mask=None, k_heads=H, causal=False, **options):
    options = dict(mask=mask, causal=causal, block_q=2, block_k=3, **options)
    arrays = _qkv(rng, k_heads)
    return LayerCase(
        flash_attention_forward, flash_attention_backward, arrays, options=options
    )


def _fully_masked(rng):
    mask = rng.random((B, H, N, M)) > 0.4
    mask[1, 2, 3] = False  # query 3 of batch 1, head 2 sees no key
    return mask


def _linear(rng, feature_map="elu+1", causal=False, form="parallel", m=N, **options):
    omega = favor_omega(d, 7, rng=rng) if feature_map == "favor+" else None
    options = dict(feature_map=feature_map, causal=causal, form=form, **options)
    options.update(omega=omega, chunk_size=2)
    arrays = _qkv(rng, m=m)  # m = N by default: the causal forms' usual case
    return LayerCase(
        linear_attention_forward, linear_attention_backward, arrays, options=options
    )


def _favor(rng, stabilize):
    arrays = {"x": rng.standard_normal((B, N, d)), "omega": favor_omega(d, 8, rng=rng)}
    options = {"stabilize": stabilize}
    return LayerCase(favor_forward, favor_backward, arrays, options=options)


def _banded(rng, causal, mask=None):
    arrays = _qkv(rng, k_heads=1, m=N)  # self-attention: M = N
    options = {"mask": mask, "window": 3, "causal": causal}
    return LayerCase(
        sliding_window_attention_forward,
        sliding_window_attention_backward,
        arrays,
        options=options,
    )


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
    "flash attention (shared k/v across heads, 2 threads)": lambda rng: _flash(
        rng, k_heads=1, workers=2
    ),
    "linear attention (elu+1)": _linear,
    "linear attention (elu+1, N != M)": lambda rng: _linear(rng, m=M),
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
    "linear attention (elu+1, causal chunkwise, N != M)": lambda rng: _linear(
        rng, causal=True, form="chunkwise", m=M
    ),
    "linear attention (relu, causal recurrent, N != M, bottom-right)": lambda rng: (
        _linear(rng, "relu", True, "recurrent", m=M + 3, align="bottom_right")
    ),
    "performer FAVOR+ attention (causal chunkwise)": lambda rng: _linear(
        rng, "favor+", True, "chunkwise"
    ),
    "FAVOR+ features (query stabiliser)": lambda rng: _favor(rng, "row"),
    "FAVOR+ features (key stabiliser)": lambda rng: _favor(rng, "all"),
    "sliding-window attention (causal, banded)": lambda rng: _banded(rng, True),
    "sliding-window attention (bidirectional, banded, padding)": lambda rng: _banded(
        rng, False, padding_mask([N, 2], N)
    ),
}

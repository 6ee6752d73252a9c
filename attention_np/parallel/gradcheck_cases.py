"""Gradient-check cases of ``attention_np.parallel`` (and of block attention, ring
attention's unit) for ``python -m attention_np gradcheck``.

Each case is a ``gradcheck.LayerCase``: the public forward and backward themselves,
called by the package's contract. Sizes are small and all different (B, H, N, M, d,
d_v = 2, 3, 4, 8, 5, 6: N and M split into 2 x 2 zigzag chunks); tiles do not divide
the shards. The ring cases use B, H = 1, 2 (each forward is P^2 steps of block
attention: finite differences call it once per input element). The MPI layers run
on ``OneRankComm``, a one-rank stand-in for an mpi4py communicator (no MPI needed).
"""

import numpy as np

from ..efficient.block_attention import (
    block_attention_backward,
    block_attention_forward,
)
from ..gradcheck import LayerCase
from ..masks import padding_mask
from .merge import merge_partials_backward, merge_partials_forward
from .ring_mpi import ring_attention_mpi_backward, ring_attention_mpi_forward
from .ring_sim import ring_attention_backward, ring_attention_forward
from .ulysses import ulysses_attention_backward, ulysses_attention_forward
from .ulysses_mpi import ulysses_mpi_backward, ulysses_mpi_forward

B, H, N, M, d, d_v = 2, 3, 4, 8, 5, 6
TILES = {"block_q": 3, "block_k": 2}


class OneRankComm:
    """An mpi4py-like communicator of size 1: Alltoall is a copy; no send happens."""

    def Get_size(self):
        return 1

    def Get_rank(self):
        return 0

    def Alltoall(self, send, recv):
        recv[...] = send


def _qkv(rng, n=N, m=M, lead=(B, H)):
    return {
        "q": rng.standard_normal(lead + (n, d)),
        "k": rng.standard_normal(lead + (m, d)),
        "v": rng.standard_normal(lead + (m, d_v)),
    }


def _random_mask(rng, n=N, m=M, batch=B):
    mask = rng.random((batch, 1, n, m)) > 0.3
    mask[-1, 0, 2] = False  # query 2 of the last sequence sees no key
    return mask


def _block(rng, **options):
    return LayerCase(
        block_attention_forward,
        block_attention_backward,
        _qkv(rng, 5, 7),
        options={"mask": None, "workers": 1, **TILES, **options},
    )


def _block_positions(rng, q_positions, k_positions, mask=False):
    """Causal by global positions (5 queries, 7 keys), optionally with a mask."""
    return _block(
        rng,
        causal=True,
        q_positions=np.array(q_positions),
        k_positions=np.array(k_positions),
        mask=_random_mask(rng, 5, 7) if mask else None,
    )


def _merge(rng, form):
    arrays = {
        "o_a": rng.standard_normal((B, H, N, d_v)),
        "lse_a": rng.standard_normal((B, H, N)),
        "o_b": rng.standard_normal((B, H, N, d_v)),
        "lse_b": rng.standard_normal((B, H, N)),
    }
    arrays["lse_b"][1, 2, 3] = -np.inf  # block b is empty for one row
    arrays["o_b"][1, 2, 3] = 0.0
    options = {"form": form}
    return LayerCase(
        merge_partials_forward, merge_partials_backward, arrays, options=options
    )


def _ring(rng, n=N, m=M, mask=None, **options):
    options = {"n_ranks": 2, "mask": mask, **TILES, **options}
    arrays = _qkv(rng, n, m, lead=(1, 2))
    return LayerCase(
        ring_attention_forward, ring_attention_backward, arrays, options=options
    )


def _ulysses(rng):
    options = {"n_ranks": 3, "causal": True, "align": "bottom_right"}
    options["mask"] = _random_mask(rng, N, 5)
    arrays = _qkv(rng, N, 5)  # 5 keys over 3 ranks: slices of 2, 2 and 1
    return LayerCase(
        ulysses_attention_forward, ulysses_attention_backward, arrays, options=options
    )


def _ring_mpi(rng):
    options = {"comm": OneRankComm(), "causal": True, "align": "bottom_right"}
    options.update(layout="striped", mask=_random_mask(rng, batch=1), **TILES)
    return LayerCase(
        ring_attention_mpi_forward,
        ring_attention_mpi_backward,
        _qkv(rng, lead=(1, 2)),
        options=options,
    )


def _ulysses_mpi(rng):
    options = {"comm": OneRankComm(), "causal": True, "mask": _random_mask(rng)}
    return LayerCase(
        ulysses_mpi_forward, ulysses_mpi_backward, _qkv(rng), options=options
    )


CASES = {
    "block attention (not causal)": lambda rng: _block(rng, causal=False),
    "block attention (causal bottom-right, padding)": lambda rng: _block(
        rng, causal=True, align="bottom_right", mask=padding_mask([7, 3], 7)
    ),
    "block attention (striped positions, an empty row)": lambda rng: _block_positions(
        rng, [1, 4, 7, 10, 13], [2, 5, 8, 11, 14, 17, 20]
    ),
    "block attention (zigzag positions, mask)": lambda rng: _block_positions(
        rng, [0, 1, 2, 13, 14], [0, 1, 2, 3, 12, 13, 14], mask=True
    ),
    "merge_partials (exp form, an empty block row)": lambda rng: _merge(rng, "exp"),
    "merge_partials (sigmoid form)": lambda rng: _merge(rng, "sigmoid"),
    "ring attention (zigzag, causal bottom-right, N != M, mask, 2 ranks)": (
        lambda rng: _ring(
            rng,
            mask=_random_mask(rng, batch=1),
            layout="zigzag",
            causal=True,
            align="bottom_right",
        )
    ),
    "ring attention (contiguous, causal top-left, N != M, 2 ranks)": lambda rng: _ring(
        rng, layout="contiguous", causal=True
    ),
    "ring attention (striped, causal, self-attention, 4 ranks)": lambda rng: _ring(
        rng, m=N, layout="striped", causal=True, n_ranks=4
    ),
    "ring attention (zigzag, not causal, padding, 2 ranks)": lambda rng: _ring(
        rng, layout="zigzag", causal=False, mask=padding_mask([5], M)
    ),
    "ulysses attention (causal bottom-right, mask, N != M, 3 ranks)": _ulysses,
    "ring attention over MPI (one-rank communicator)": _ring_mpi,
    "ulysses over MPI (one-rank communicator)": _ulysses_mpi,
}

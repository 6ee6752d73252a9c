"""Context parallelism: exact attention over a sequence split across ranks.

- ``merge``: the exact log-sum-exp merge of partial attention over disjoint keys
  (``Partial(out, lse)``; ``merge_partials_forward/backward`` as a layer).
- ``layouts``: contiguous, zigzag and striped token -> rank maps, and the score
  tiles each ring step needs under a causal mask (with their work counts).
- ``ring_sim``: ring attention simulated in one process, forward and backward, with
  explicit rank states and message buffers (``ring_state``); ``ring_trace`` reads
  its trace. ``ring_step`` is what one rank computes at one step (shared with MPI).
- ``ring_mpi``: the same ring over real processes with mpi4py (optional);
  ``python -m attention_np.parallel.ring`` runs it under ``mpiexec`` and
  ``ring_check`` compares the result with one process on rank 0.
- ``ulysses``, ``ulysses_mpi``: sequence parallelism by two all-to-alls (simulated,
  or MPI Alltoall).
- ``stats``: ``CommStats``, one rank's account of an MPI pass (``cache.stats`` of a
  forward, ``grads.stats`` of a backward's ``GradsWithStats``).

Every attention function here takes ``mask``, ``causal`` (required) and ``align``
like ``attention_forward`` and gives the same result.
- ``volume``: communication volume per rank, ring vs Ulysses.

mpi4py is imported only inside the MPI functions: everything else needs NumPy only.
"""

from .layouts import (
    LAYOUTS,
    Tile,
    layout_positions,
    shard,
    step_tiles,
    tile_pairs,
    token_owner,
    unshard,
    work_formula,
)
from .merge import (
    Partial,
    merge_partials,
    merge_partials_backward,
    merge_partials_forward,
)
from .ring_mpi import ring_attention_mpi_backward, ring_attention_mpi_forward
from .ring_sim import (
    RingCache,
    forward_steps,
    ring_attention_backward,
    ring_attention_forward,
    ring_backward_trace,
)
from .ring_state import init_states
from .ring_step import make_plan
from .ring_trace import bytes_sent, coverage, holder_table, work_table
from .stats import CommStats, GradsWithStats
from .ulysses import (
    alltoall,
    check_heads,
    ulysses_attention_backward,
    ulysses_attention_forward,
)
from .ulysses_mpi import ulysses_mpi_backward, ulysses_mpi_forward
from .volume import comm_table, ring_elements, ring_step_elements, ulysses_elements

__all__ = [
    "LAYOUTS",
    "CommStats",
    "GradsWithStats",
    "Partial",
    "RingCache",
    "Tile",
    "alltoall",
    "bytes_sent",
    "check_heads",
    "comm_table",
    "coverage",
    "forward_steps",
    "holder_table",
    "init_states",
    "layout_positions",
    "make_plan",
    "merge_partials",
    "merge_partials_backward",
    "merge_partials_forward",
    "ring_attention_backward",
    "ring_attention_forward",
    "ring_attention_mpi_backward",
    "ring_attention_mpi_forward",
    "ring_backward_trace",
    "ring_elements",
    "ring_step_elements",
    "shard",
    "step_tiles",
    "tile_pairs",
    "token_owner",
    "ulysses_attention_backward",
    "ulysses_attention_forward",
    "ulysses_elements",
    "ulysses_mpi_backward",
    "ulysses_mpi_forward",
    "unshard",
    "work_formula",
    "work_table",
]

"""Peak memory of one call, as seen by ``tracemalloc``.

NumPy reports its array allocations to ``tracemalloc``, so the peak traced during a
call is the memory the call needed on top of what existed before it (its inputs
included). Tests use it to show that tiled or banded attention never builds an
(N, M) array; the efficiency benchmark plots it against N.
"""

import tracemalloc


def peak_bytes(fn):
    """Peak bytes allocated while ``fn()`` runs (tracing stops afterwards)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

"""Peak memory of one call, as seen by ``tracemalloc``.

NumPy reports its array allocations to ``tracemalloc``, so the peak traced during a
call is the memory the call needed on top of what existed before it (its inputs
included). Tests use it to show that tiled or banded attention never builds an
(N, M) array; the efficiency benchmark plots it against N.
"""

import tracemalloc


def peak_bytes(fn):
    """Peak bytes allocated while ``fn()`` runs, above what was allocated before.

    Starts tracing if needed and stops it afterwards; when the caller is already
    tracing, it stays on (only its peak is reset).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable with no arguments, got {fn!r}")
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()

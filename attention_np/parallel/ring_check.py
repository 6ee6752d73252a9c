"""Rank 0's side of ``python -m attention_np.parallel.ring``: check and report.

The gathered MPI results are compared with single-process attention
(``attention_forward`` and ``attention_backward``, one (batch, head) at a time) and,
with ``--compare-sim``, with the one-process simulation of the same ring or Ulysses
run, which must agree bit for bit. ``report`` prints the per-rank table and the
verdict.
"""

import numpy as np

from .. import attention_backward, attention_forward
from .ring_sim import ring_attention_backward, ring_attention_forward
from .ulysses import ulysses_attention_backward, ulysses_attention_forward

NAMES = ("out", "dq", "dk", "dv")


def ring_options(args):
    """The ring's keyword options from the command line (MPI and simulation alike)."""
    return {
        "layout": args.layout,
        "causal": args.causal,
        "block_q": args.block_q,
        "block_k": args.block_k,
    }


def reference(args, q, k, v, dout):
    """Single-process attention, one (batch, head) at a time (bounded memory)."""
    results = [np.empty_like(x) for x in (dout, q, k, v)]  # out, dq, dk, dv
    for idx in np.ndindex(q.shape[:-2]):
        out, cache = attention_forward(q[idx], k[idx], v[idx], causal=args.causal)
        grads = attention_backward(dout[idx], cache)
        for res, x in zip(results, (out, *grads), strict=True):
            res[idx] = x
    return results


def simulated(args, q, k, v, dout):
    """The same computation by the one-process simulation (ring or Ulysses)."""
    if args.algorithm == "ulysses":
        out, cache = ulysses_attention_forward(
            q, k, v, n_ranks=args.n_ranks, causal=args.causal
        )
        return (out, *ulysses_attention_backward(dout, cache))
    opts = ring_options(args)
    out, cache = ring_attention_forward(q, k, v, n_ranks=args.n_ranks, **opts)
    return (out, *ring_attention_backward(dout, cache))


def _rank_rows(stats):
    """One line per rank: work per step and in all, MB sent, compute / wait / total s.

    Ring: one entry per ring step; Ulysses: one entry (its heads' whole sequence).
    """
    title = "pairs per step (forward, per head)"
    steps = [str(s["pairs"]) for s in stats]
    w = max(len(x) for x in steps + [title])
    lines = [f"rank  {title:<{w}}  {'pairs':<9}sent MB  compute s  wait s  total s"]
    for r, (s, per_step) in enumerate(zip(stats, steps, strict=True)):
        work = f"{per_step:<{w}}  {sum(s['pairs']):<9}"
        timing = f"{s['compute']:9.3f}  {s['wait']:6.3f}  {s['seconds']:7.3f}"
        lines.append(f"{r:4d}  {work}{s['sent'] / 1e6:7.2f}  {timing}")
    return lines


def report(args, stats, errors, sim_error):
    """Rank 0's printout; returns True when the MPI result matches."""
    N, P = args.seq_len, args.n_ranks
    kind = "causal" if args.causal else "not causal"
    how = f"layout {args.layout}" if args.algorithm == "ring" else "all-to-all"
    print(
        f"{args.algorithm} attention over MPI: {P} rank{'s' * (P > 1)}, {how}, "
        f"{kind}, N={N} ({N // P} tokens per rank), B={args.batch}, H={args.heads}, "
        f"d={args.head_dim}, {args.dtype}, {args.blas_threads} BLAS thread(s) per rank"
    )
    print("\n".join(_rank_rows(stats)))
    slowest = max(s["seconds"] for s in stats)
    print(f"forward + backward, slowest rank: {slowest:.3f} s")
    listed = ", ".join(f"{n} {e:.1e}" for n, e in zip(NAMES, errors, strict=True))
    print(f"max |MPI - single process|: {listed}")
    if sim_error is not None:
        same = "bit-identical" if sim_error == 0 else "NOT bit-identical"
        print(f"max |MPI - simulated {args.algorithm}|: {sim_error:.1e} ({same})")
    worst = max(errors)
    ok = worst <= args.tol
    verdict = "exact match" if ok else "MISMATCH"
    sign = "<=" if ok else ">"
    print(
        f"{verdict} with single-process attention: max abs error {worst:.1e} "
        f"({sign} tol {args.tol:.0e})"
    )
    return ok


def _max_errors(full, other):
    return [float(np.abs(a - b).max()) for a, b in zip(full, other, strict=True)]


def check(args, inputs, full, stats):
    """Rank 0: compare the gathered results with one process (and the simulation)."""
    errors = _max_errors(full, reference(args, *inputs))
    sim_error = None
    if args.compare_sim:
        sim_error = max(_max_errors(full, simulated(args, *inputs)))
    return report(args, stats, errors, sim_error)

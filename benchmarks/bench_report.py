"""Tables, targets and the stacked-bar figure of attention_bench.py (printing only).

A row is a dict: cores, dtype, causal, N; fwd, fb (ours), fwd_floor, fb_floor,
tiled, fwd_torch and fb_torch (when torch ran), and parts_fwd / parts_fb, the
{category: seconds} of attention_breakdown.breakdown. Times are in seconds.
"""

from attention_breakdown import CATEGORIES

PARTS = CATEGORIES + ("other",)


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def with_other(parts, total):
    """The parts plus "other": the measured total minus everything the clock saw."""
    return {**parts, "other": total - sum(parts.values())}


def bar_parts(parts, total):
    """The parts as stacked bars: non-negative and adding up to the measured total.

    The replay's clocks can add up to more than the real call took (``other`` < 0);
    then the parts are scaled down together, so that a bar is as tall as ours / floor
    in the table, never taller.
    """
    parts = with_other(parts, total)
    if parts["other"] >= 0:
        return parts
    scale = total / (total - parts["other"])
    return {**{name: max(s, 0.0) * scale for name, s in parts.items()}, "other": 0.0}


def _table(head, lines):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in lines:
        print("| " + " | ".join(cells) + " |")


def _key(r):
    return [str(r["cores"]), r["dtype"], "yes" if r["causal"] else "no", str(r["N"])]


def print_main(rows):
    head = "cores dtype causal N fwd floor ratio torch /torch".split()
    head += "fwd+bwd floor ratio torch /torch tiled".split()
    lines = []
    for r in rows:
        ft, bt = r.get("fwd_torch"), r.get("fb_torch")
        lines.append(
            _key(r)
            + [ms(r["fwd"]), ms(r["fwd_floor"]), ratio(r["fwd"], r["fwd_floor"])]
            + [ms(ft), ratio(r["fwd"], ft)]
            + [ms(r["fb"]), ms(r["fb_floor"]), ratio(r["fb"], r["fb_floor"])]
            + [ms(bt), ratio(r["fb"], bt), ms(r["tiled"])]
        )
    _table(head, lines)


def print_breakdown(rows, which):
    """Where the time goes (ms): the floor, then every part of ours, then the total."""
    total, floor = ("fwd", "fwd_floor") if which == "forward" else ("fb", "fb_floor")
    print(f"\nWhere the time goes, {which} (ms; the parts add up to ours)\n")
    head = "cores dtype causal N floor".split() + list(PARTS) + ["ours"]
    lines = []
    for r in rows:
        parts = with_other(r["parts_" + total], r[total])
        cells = [ms(parts[name]) for name in PARTS]
        lines.append(_key(r) + [ms(r[floor])] + cells + [ms(r[total])])
    _table(head, lines)


def targets(rows):
    """(text, value, goal, ok) for issue 20's targets: float32, the most cores."""
    top = max(r["cores"] for r in rows)
    pick = {
        (r["N"], r["causal"]): r
        for r in rows
        if r["cores"] == top and r["dtype"] == "float32"
    }
    lines = []
    for N in (1024, 2048):
        for causal in (False, True):
            r, kind = pick.get((N, causal)), "causal" if causal else "full"
            if r is None:
                continue
            lines.append(
                (f"core forward / floor, N={N} {kind}", r["fwd"] / r["fwd_floor"], 1.3)
            )
            lines.append(
                (f"core fwd+bwd / floor, N={N} {kind}", r["fb"] / r["fb_floor"], 1.3)
            )
        r = pick.get((N, False))
        if r is not None and r.get("fwd_torch"):
            lines.append(
                (
                    f"core forward / torch SDPA, N={N} full",
                    r["fwd"] / r["fwd_torch"],
                    1.5,
                )
            )
    lines += _tiled_targets(pick)
    return top, [(text, value, goal, _met(value, goal)) for text, value, goal in lines]


def _tiled_targets(pick):
    lines = []
    for causal, speedup in ((False, 1.2), (True, 2.5)):
        r, kind = pick.get((2048, causal)), "causal" if causal else "full"
        if r is None:
            continue
        lines.append(
            (f"core / tiled forward, N=2048 {kind}", r["fwd"] / r["tiled"], -speedup)
        )
        if r.get("fwd_torch"):
            lines.append(
                (
                    f"tiled / torch SDPA forward, N=2048 {kind}",
                    r["tiled"] / r["fwd_torch"],
                    1.3,
                )
            )
    return lines


def _met(value, goal):
    """goal > 0: at most goal; goal < 0: at least -goal."""
    return value <= goal if goal > 0 else value >= -goal


def print_targets(rows, quick=False):
    top, lines = targets(rows)
    print(f"\nTargets (issue 20: float32, B=1 H=8 d=64, {top} cores, this run)\n")
    if quick:
        print("(--quick: sizes far below the targets' N; a smoke test, not a verdict)")
    if not lines:
        print("(no target size was measured: run with N = 1024 and 2048)")
    for text, value, goal, ok in lines:
        bound = f"<= {goal}" if goal > 0 else f">= {-goal}"
        print(f"- {text}: {value:.2f} (target {bound})  {'ok' if ok else 'MISSED'}")


def print_all(rows, setup, load, quick=False):
    before, after, seconds, others = load
    print(setup)
    print(
        f"load average (1 min): {before:.2f} before, {after:.2f} after this "
        f"{seconds:.0f} s run (which counts its own threads)"
    )
    if others is not None:
        print(f"other processes kept {others:.2f} cores busy on average (want ~0)")
    print()
    print_main(rows)
    print(
        "\n(ratio = ours / floor; /torch = ours / torch SDPA; tiled = forward of "
        "flash_attention_forward, default tiles)"
    )
    print_breakdown(rows, "forward")
    print_breakdown(rows, "forward+backward")
    print_targets(rows, quick)


def plot_breakdown(rows, directory=None, name="bench_breakdown"):
    """Stacked bars (float32): each part of ours over the floor; torch as a marker."""
    import matplotlib.pyplot as plt

    from attention_np.viz import save_figure

    rows = [r for r in rows if r["dtype"] == "float32"]
    cores = sorted({r["cores"] for r in rows})
    fig, axes = plt.subplots(
        len(cores), 2, figsize=(12, 3.2 * len(cores)), squeeze=False,
        sharey=True, layout="constrained",
    )  # fmt: skip
    for axis_row, c in zip(axes, cores, strict=True):
        mine = [r for r in rows if r["cores"] == c]
        for ax, which in zip(axis_row, ("fwd", "fb"), strict=True):
            _bars(ax, mine, which)
            title = "forward" if which == "fwd" else "forward + backward"
            ax.set_title(f"{title}, {c} core{'s' if c > 1 else ''}")
    axes[0, 0].set_ylabel("time / matrix-product floor")
    axes[0, 1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Where attention's time goes (float32, B=1 H=8 d=64)")
    save_figure(fig, name, directory)
    plt.close(fig)


def _bars(ax, rows, which):
    """One bar per (N, causal): the parts stacked, divided by the floor."""
    floor_key, torch_key = which + "_floor", which + "_torch"
    for x, r in enumerate(rows):
        parts = bar_parts(r["parts_" + which], r[which])
        bottom = 0.0
        for i, part in enumerate(PARTS):
            height = parts[part] / r[floor_key]
            label = part if x == 0 else None
            ax.bar(x, height, bottom=bottom, color=f"C{i}", label=label, width=0.7)
            bottom += height
        if r.get(torch_key):
            label = "torch SDPA" if x == 0 else None
            ax.plot(x, r[torch_key] / r[floor_key], "kD", ms=5, label=label)
    ax.axhline(1.0, color="k", lw=1, label="floor")
    ax.axhline(1.3, color="k", lw=1, ls="--", label="target 1.3")
    labels = [f"{r['N']}\n{'causal' if r['causal'] else 'full'}" for r in rows]
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)

"""Drawing helpers behind ``attention_np.viz``: one (N, M) matrix onto one Axes.

Private: the public functions (and the style constants, re-exported there) are in
``viz.py``. matplotlib is imported inside the functions. Shape legend: N query
positions, M key positions.
"""

import numpy as np

from . import validate as V

SEQUENTIAL = "viridis"  # weights, 0..1
DIVERGING = "RdBu_r"  # scores and gradients, symmetric around 0
MASKED_COLOR = "#d9d9d9"  # light grey: in neither colormap
HATCH_COLOR = "#8c8c8c"
HATCH = "///"
ALLOWED_COLOR = "#3b528b"  # plot_mask: a viridis blue for "may attend"
ANNOTATE_MAX = 8  # write the values in the cells when N and M are both <= this
HATCH_MAX = 32  # hatch masked cells when N and M are both <= this (else grey only)
CROWDED_ROOM = 0.25  # inches per tick below which rotated token labels shrink


def drop_leading_ones(name, x, ndim):
    """(1, 1, N, M) -> (N, M): drop leading length-1 axes until ``ndim`` remain."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":  # strings, objects, complex numbers
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {np.shape(x)}")
    return arr


def full_mask(mask, shape):
    """Boolean mask broadcast to ``shape`` (True = may attend); None -> all True."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True = may attend), got {m.dtype}")
    while m.ndim > len(shape) and m.shape[0] == 1:
        m = m[0]
    try:
        return np.broadcast_to(m, shape)
    except ValueError:
        raise ValueError(
            f"mask{np.shape(mask)} does not broadcast to the weights' {shape}"
        ) from None


def heads_grid(weights, mask, head_titles):
    """weights (H, N, M) or (L, H, N, M) as float (L, H, N, M), with its full mask;
    ``head_titles``, when given, must hold H titles."""
    arr = drop_leading_ones("weights", weights, np.ndim(weights)).astype(np.float64)
    if arr.ndim == 3:
        arr = arr[None]  # (1, H, N, M)
    arr = drop_leading_ones("weights (H, N, M) or (L, H, N, M)", arr, 4)
    H = arr.shape[1]
    if head_titles is not None and len(head_titles) != H:
        raise ValueError(
            f"head_titles must hold H = {H} titles, got {len(head_titles)}"
        )
    return arr, full_mask(mask, arr.shape)


def check_flags(**flags):
    """TypeError unless every flag is True or False (``annotate=None``: automatic)."""
    for name, value in flags.items():
        if not (name == "annotate" and value is None):
            V.bool_arg(name, value)


def check_options(vmax=None, fmt=".2f", label=None):
    """vmax None or finite > 0; fmt a number format spec; label None or a string."""
    if vmax is not None:
        V.real("vmax", vmax, lo=0.0, lo_open=True)
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string like '.2f', got {fmt!r}")
    try:
        format(0.5, fmt)
    except ValueError:
        raise ValueError(
            f"fmt must be a number format like '.2f', got {fmt!r}"
        ) from None
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a string or None, got {label!r}")


def color_limits(values, diverging, vmax):
    """(cmap name, vmin, vmax): 0..1 for weights, symmetric around 0 if diverging."""
    if not diverging:
        return SEQUENTIAL, 0.0, 1.0 if vmax is None else float(vmax)
    if vmax is None:
        finite = np.abs(values[np.isfinite(values)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return DIVERGING, -float(vmax), float(vmax)


def set_ticks(axis, n, labels, room=None):
    """Token labels when given (rotated if long), else integer positions.

    ``room`` is the axis length per tick in inches, when known: rotated labels
    get a smaller font below ``CROWDED_ROOM``, so neighbours do not touch.
    """
    from matplotlib.ticker import MaxNLocator

    if labels is None:
        if n == 1:  # the locator would split the range -0.5..0.5 into fractions
            axis.set_ticks([0])
        else:
            axis.set_major_locator(MaxNLocator(integer=True))
        return
    labels = [str(t) for t in labels]
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for an axis of length {n}")
    width = max(map(len, labels), default=0)
    long = axis.axis_name == "x" and (width > 3 or width * n > 16)
    axis.set_ticks(range(n), labels, rotation=45 if long else 0)
    if long:
        for t in axis.get_ticklabels():
            t.set_horizontalalignment("right")
        if room is not None and room < CROWDED_ROOM:
            axis.set_tick_params(labelsize="small")


def hatch_cells(ax, masked):
    """Hatch the masked cells on top of their grey, so they read as 'not allowed'."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    if max(masked.shape) > HATCH_MAX:  # too small to read: grey only, no patches
        return
    cells = [Rectangle((j - 0.5, i - 0.5), 1, 1) for i, j in np.argwhere(masked)]
    if cells:
        patches = PatchCollection(cells, facecolor="none", hatch=HATCH, linewidth=0)
        patches.set_edgecolor(HATCH_COLOR)  # the hatch lines take the edge colour
        ax.add_collection(patches)


def annotate_cells(ax, image, values, masked, fmt):
    """Write each unmasked value in its cell: dark text on light cells, and back."""
    rgba = image.cmap(image.norm(values))  # (N, M, 4)
    light = rgba[..., :3] @ np.array([0.299, 0.587, 0.114]) > 0.5  # (N, M)
    for i, j in np.argwhere(~masked):
        color = "black" if light[i, j] else "white"
        ax.text(
            j,
            i,
            format(values[i, j], fmt),
            ha="center",
            va="center",
            color=color,
            fontsize=8,
        )


def draw_matrix(ax, values, mask, *, cmap, vmin, vmax, annotate, fmt):
    """Draw one (N, M) matrix; masked or non-finite cells become hatched grey."""
    import matplotlib as mpl

    masked = ~mask | ~np.isfinite(values)  # a -inf score is a masked score
    data = np.ma.masked_array(np.where(masked, 0.0, values), mask=masked)
    colormap = mpl.colormaps[cmap].with_extremes(bad=MASKED_COLOR)
    image = ax.imshow(
        data, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    hatch_cells(ax, masked)
    if annotate is None:
        annotate = max(values.shape) <= ANNOTATE_MAX
    if annotate:
        annotate_cells(ax, image, np.where(masked, 0.0, values), masked, fmt)
    return image


def label_axes(ax, shape, q_labels, k_labels, title, room=None):
    set_ticks(ax.yaxis, shape[0], q_labels)
    set_ticks(ax.xaxis, shape[1], k_labels, room)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)


def default_label(diverging):
    return None if diverging else "weight"


def panel_size(shape, base=0.6, lo=3.0, hi=7.0):
    """(width, height) in inches that gives roughly square cells."""
    n, m = shape
    return (min(hi, max(lo, base * m)) + 1.0, min(hi, max(lo, base * n)))


def solid_cmap(color):
    from matplotlib.colors import ListedColormap

    return ListedColormap([color]).with_extremes(bad=MASKED_COLOR)


def settle_layout(fig, passes=3):
    """Re-run the figure's layout engine until the axes stop moving.

    Constrained layout with fixed-aspect panels and a shared colorbar needs more
    than the single pass a save makes: after one pass a suptitle, the next row's
    titles or a colorbar label can overlap. Cheap: nothing is rasterised.
    """
    if fig.get_layout_engine() is None:
        return
    for _ in range(passes):
        before = axes_boxes(fig)
        fig.draw_without_rendering()
        after = axes_boxes(fig)
        if before.shape == after.shape and np.allclose(before, after, atol=1e-6):
            return


def axes_boxes(fig):
    """(number of axes, 4) positions of every Axes, in figure fractions."""
    return np.array([ax.get_position().bounds for ax in fig.axes]).reshape(-1, 4)

"""Attention heatmaps (matplotlib is imported inside the functions, only when drawing).

Every figure of the course follows the same conventions, so pictures compare by eye:

- queries on the y axis (rows), keys on the x axis (columns), exactly like P[i, j];
- weights on a fixed 0..1 scale in one sequential colormap (``SEQUENTIAL``); scores and
  gradients in one diverging colormap (``DIVERGING``) with limits symmetric around 0;
- masked cells (mask False, or a -inf score) in hatched light grey, a colour that is in
  neither colormap, so "not allowed" never looks like "weight 0".

``save_figure`` writes ``figures/<name>.png`` with no timestamp or version metadata,
so re-running a notebook reproduces the same bytes. Set ``ATTENTION_NP_FIGURES`` to
send figures elsewhere (the tests do).

Shape legend: L layers, H heads, N query positions, M key positions.
"""

import os
from pathlib import Path

import numpy as np

from . import validate as V
from ._heatmap import (
    ALLOWED_COLOR,
    ANNOTATE_MAX,
    DIVERGING,
    HATCH,
    HATCH_COLOR,
    MASKED_COLOR,
    SEQUENTIAL,
    check_flags,
    check_options,
    color_limits,
    default_label,
    draw_matrix,
    drop_leading_ones,
    full_mask,
    hatch_cells,
    heads_grid,
    label_axes,
    panel_size,
    settle_layout,
    solid_cmap,
)

FIGURES_ENV = "ATTENTION_NP_FIGURES"

__all__ = [
    "ALLOWED_COLOR",
    "ANNOTATE_MAX",
    "DIVERGING",
    "FIGURES_ENV",
    "HATCH",
    "HATCH_COLOR",
    "MASKED_COLOR",
    "SEQUENTIAL",
    "explore_attention",
    "figures_dir",
    "plot_attention",
    "plot_heads",
    "plot_mask",
    "save_figure",
]


def plot_attention(
    weights,
    q_labels=None,
    k_labels=None,
    *,
    ax=None,
    title=None,
    mask=None,
    diverging=False,
    vmax=None,
    annotate=None,
    fmt=".2f",
    colorbar=True,
    label=None,
):
    """Heatmap of one (N, M) matrix: queries on y, keys on x, with a colorbar.

    Args:
        weights: (N, M) attention weights (leading length-1 axes are dropped).
        q_labels, k_labels: N and M token labels for the axes.
        ax: axes to draw into (default: a new figure).
        mask: boolean, broadcastable to (N, M); False cells are drawn hatched grey.
        diverging: scores or gradients: ``DIVERGING`` colormap, limits -vmax..vmax
            (vmax default max |value|) instead of the fixed 0..1 weight scale.
        annotate: write values in the cells (default: when N, M <= ANNOTATE_MAX).
        label: colorbar label (default "weight", or none when diverging).

    Returns:
        the matplotlib Axes (``ax.figure`` is the figure).
    """
    check_flags(diverging=diverging, annotate=annotate, colorbar=colorbar)
    check_options(vmax, fmt, label)
    values = drop_leading_ones("weights", weights, 2).astype(np.float64)
    mask = full_mask(mask, values.shape)
    import matplotlib.pyplot as plt  # after the checks: a bad call costs no import

    if ax is None:
        _, ax = plt.subplots(figsize=panel_size(values.shape), layout="constrained")
    cmap, vmin, vmax = color_limits(values, diverging, vmax)
    image = draw_matrix(
        ax, values, mask, cmap=cmap, vmin=vmin, vmax=vmax, annotate=annotate, fmt=fmt
    )
    label_axes(ax, values.shape, q_labels, k_labels, title)
    if colorbar:
        # an inset in axes coordinates: exactly as tall as the (square-celled) image
        cax = ax.inset_axes([1.04, 0.0, 0.05, 1.0])
        ax.figure.colorbar(image, cax=cax, label=label or default_label(diverging))
    return ax


def plot_heads(
    weights,
    q_labels=None,
    k_labels=None,
    *,
    mask=None,
    title=None,
    diverging=False,
    vmax=None,
    annotate=False,
    fmt=".2f",
    label=None,
    panel=2.4,
    head_titles=None,
):
    """Grid of heatmaps, one per head (H, N, M) or layer x head (L, H, N, M).

    All panels share one colour scale and ONE colorbar. Arguments as in
    ``plot_attention``; ``mask`` broadcasts to the weights' shape; ``panel`` is
    the size of one panel in inches; ``head_titles`` (H strings) replace the
    default "head h" titles. Returns the Figure.
    """
    check_flags(diverging=diverging, annotate=annotate)
    check_options(vmax, fmt, label)
    panel = V.real("panel", panel, lo=0.0, lo_open=True)
    arr, mask = heads_grid(weights, mask, head_titles)  # (L, H, N, M) each
    L, H, N, M = arr.shape
    import matplotlib.pyplot as plt  # after the checks: a bad call costs no import

    cmap, vmin, vmax = color_limits(arr, diverging, vmax)
    fig, axes = plt.subplots(
        L,
        H,
        figsize=(panel * H + 0.8, panel * L + 0.4),
        squeeze=False,
        layout="compressed",  # square panels side by side, colorbar close by
    )
    for (l, h), ax in np.ndenumerate(axes):
        image = draw_matrix(
            ax,
            arr[l, h],
            mask[l, h],
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            annotate=annotate,
            fmt=fmt,
        )
        name = f"head {h}" if head_titles is None else head_titles[h]
        name = name if L == 1 else f"layer {l}, {name}"
        label_axes(ax, (N, M), q_labels, k_labels, name, room=panel / M)
        if h:  # query labels on the first column only
            ax.set_ylabel("")
            ax.tick_params(labelleft=False)
    fig.colorbar(
        image,
        ax=axes,
        label=label or default_label(diverging),
        shrink=0.9,
        pad=0.1 / H,  # a fraction of the whole grid: about a quarter inch
    )
    if title:
        fig.suptitle(title)
    settle_layout(fig)  # one layout pass leaves titles and labels overlapping
    return fig


def plot_mask(mask, q_labels=None, k_labels=None, *, ax=None, title=None, legend=True):
    """Draw an (N, M) boolean mask: True (may attend) solid, False hatched grey.

    ``legend``: True puts the key to the right of the axes, "below" under the key
    labels (for a mask panel with more panels to its right), False leaves it out.
    Returns the Axes.
    """
    if legend is not True and legend is not False and legend != "below":
        raise TypeError(f"legend must be True, False or 'below', got {legend!r}")
    m = drop_leading_ones("mask", mask, 2)
    m = full_mask(m, m.shape)
    import matplotlib.pyplot as plt  # after the checks: a bad call costs no import
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=panel_size(m.shape), layout="constrained")
    ax.imshow(np.where(m, 1.0, np.nan), cmap=solid_cmap(ALLOWED_COLOR), vmin=0, vmax=1)
    hatch_cells(ax, ~m)
    ax.set_facecolor(MASKED_COLOR)  # NaN cells show the axes background
    label_axes(ax, m.shape, q_labels, k_labels, title)
    if legend:
        handles = [
            Patch(facecolor=ALLOWED_COLOR, label="True: may attend"),
            Patch(
                facecolor=MASKED_COLOR,
                edgecolor=HATCH_COLOR,
                hatch=HATCH,
                label="False: masked",
            ),
        ]
        if legend == "below":  # under the rotated key labels and the axis label
            place = dict(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=2)
        else:  # right of the axes: never over the labels
            place = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ax.legend(handles=handles, frameon=False, fontsize=8, **place)
    return ax


def figures_dir(directory=None):
    """Where figures go: ``directory``, else $ATTENTION_NP_FIGURES, else the repo's
    ``figures/`` (the first folder at or above the cwd holding ``attention_np/`` and
    ``figures/`` or ``pyproject.toml``), else ``./figures``. Created if needed."""
    if directory is None and os.environ.get(FIGURES_ENV):
        directory = os.environ[FIGURES_ENV]
    if directory is None:
        here = Path.cwd().resolve()
        found = (p for p in (here, *here.parents) if _is_repo(p))
        directory = next(found, here) / "figures"
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_repo(folder):
    """The repository root: it holds the package and figures/ (or pyproject.toml)."""
    marker = (folder / "figures").is_dir() or (folder / "pyproject.toml").is_file()
    return (folder / "attention_np").is_dir() and marker


def save_figure(fig, name, directory=None, *, dpi=120):
    """Write ``<figures dir>/<name>.png`` reproducibly (no date or version metadata).

    Args:
        fig: a Figure (or an Axes: its figure is saved).
        name: file stem such as "03_causal_mask" (".png" is added).
        directory: override the folder (see ``figures_dir``).

    Returns None, so a notebook cell that ends with it shows the figure and no
    path; the file is ``figures_dir(directory) / f"{name}.png"``.
    """
    V.real("dpi", dpi, lo=0.0, lo_open=True)
    name = str(name).removesuffix(".png")
    if not name or "/" in name or os.sep in name:
        raise ValueError(
            f"name must be a plain file stem like '01_softmax', got {name!r}"
        )
    path = figures_dir(directory) / f"{name}.png"
    fig = getattr(fig, "figure", fig)
    fig.savefig(
        path,
        format="png",
        dpi=dpi,
        bbox_inches="tight",
        facecolor="white",
        metadata={"Software": None},
    )


def explore_attention(weights, q_labels=None, k_labels=None, *, mask=None, title=None):
    """Show the weights as a static figure, then (in Jupyter, with ipywidgets)
    head and query selectors that redraw one head with one query's row.

    The static figure comes first because widgets do not render on GitHub or in
    a static viewer; without IPython or ipywidgets only the static figure is
    drawn. Args as in ``plot_heads``; weights (N, M) or (H, N, M). Returns None.
    """
    arr = drop_leading_ones("weights", weights, np.ndim(weights)).astype(np.float64)
    arr = arr[None] if arr.ndim == 2 else drop_leading_ones("weights", arr, 3)
    mask = full_mask(mask, arr.shape)  # (H, N, M)
    import matplotlib.pyplot as plt  # after the checks: a bad call costs no import

    if arr.shape[0] == 1:
        ax = plot_attention(arr[0], q_labels, k_labels, mask=mask[0], title=title)
        fig = ax.figure
    else:
        fig = plot_heads(arr, q_labels, k_labels, mask=mask, title=title)
    from ._explore import explore_controls, widgets_available

    if not widgets_available():  # no kernel or no ipywidgets: the static figure is all
        return None
    from IPython.display import display

    display(fig)  # the static view first (and close it, so it is not shown twice),
    plt.close(fig)
    display(explore_controls(arr, q_labels, k_labels, mask, title))  # then selectors
    return None

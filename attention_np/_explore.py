"""Interactive part of ``viz.explore_attention``: ipywidgets head/query selectors.

Private; imported only when ``explore_attention`` runs. Shape legend: H heads,
N query positions, M key positions.
"""

from ._heatmap import SEQUENTIAL, set_ticks


def query_figure(weights, query, q_labels, k_labels, mask, title):
    """Heatmap of one head with query row ``query`` outlined, next to its weights."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .viz import plot_attention

    N, M = weights.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    plot_attention(weights, q_labels, k_labels, ax=left, mask=mask, title=title)
    left.add_patch(Rectangle((-0.5, query - 0.5), M, 1, fill=False, ec="red", lw=2))
    row = weights[query]  # (M,)
    right.bar(range(M), row, color=plt.get_cmap(SEQUENTIAL)(row))
    right.set_ylim(0, 1)
    set_ticks(right.xaxis, M, k_labels)
    name = q_labels[query] if q_labels is not None else query
    right.set(xlabel="key", ylabel="weight", title=f"query {name}: one row of P")
    return fig


def widgets_available():
    """True inside an IPython kernel with ipywidgets installed."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def explore_controls(arr, q_labels, k_labels, mask, title):
    """ipywidgets head/query selectors over ``arr`` (H, N, M), with their view.

    Call it after the static figure is shown and closed: ipywidgets flushes every
    open figure to the cell when it draws the first view.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    H, N, _ = arr.shape
    names = q_labels if q_labels is not None else range(N)
    query = widgets.Dropdown(options=[(str(t), i) for i, t in enumerate(names)])
    head = widgets.Dropdown(options=[(f"head {h}", h) for h in range(H)])
    head.layout.display = None if H > 1 else "none"

    def draw(head, query):
        sub = f"{title}, head {head}" if title else f"head {head}"
        query_figure(arr[head], query, q_labels, k_labels, mask[head], sub)
        plt.show()

    out = widgets.interactive_output(draw, {"head": head, "query": query})
    return widgets.VBox([widgets.HBox([head, query]), out])

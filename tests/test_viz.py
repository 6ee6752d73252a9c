"""attention_np.viz: what a picture must show, checked on the Agg backend.

Every figure is written to a temporary folder (never into the repository's figures/).
"""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from attention_np import attention_weights, causal_mask, viz  # noqa: E402

TOKENS = ["the", "cat", "sat", "on", "it"]


@pytest.fixture(autouse=True)
def figures_in_tmp(tmp_path, monkeypatch):
    """Send every save_figure to a temporary folder; close figures afterwards."""
    monkeypatch.setenv(viz.FIGURES_ENV, str(tmp_path / "figs"))
    yield tmp_path / "figs"
    plt.close("all")


@pytest.fixture
def weights(rng):
    q, k = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    return attention_weights(q, k, causal_mask(5), causal=False)  # (5, 5)


def image_panels(fig):
    """The axes that hold a heatmap (colorbars hold no AxesImage)."""
    return [ax for ax in fig.axes if ax.images]


def rendered_rgb(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0  # (height, width, 3)


def cell_pixels(fig, ax, i, j):
    """RGB pixels of the inner half of cell (row i, column j)."""
    rgb = rendered_rgb(fig)
    height = rgb.shape[0]
    (x0, y0), (x1, y1) = ax.transData.transform(
        [(j - 0.25, i - 0.25), (j + 0.25, i + 0.25)]
    )
    rows = slice(int(height - max(y0, y1)), int(height - min(y0, y1)))
    cols = slice(int(min(x0, x1)), int(max(x0, x1)))
    return rgb[rows, cols].reshape(-1, 3)


def test_importing_the_package_does_not_import_matplotlib():
    code = (
        "import sys, attention_np, attention_np.viz; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_plot_attention_puts_queries_on_y_and_keys_on_x(weights):
    ax = viz.plot_attention(weights[:, :4], TOKENS, TOKENS[:4])
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS[:4]
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS
    assert ax.images[0].get_array().shape == (5, 4)  # N rows, M columns


def test_plot_attention_uses_a_fixed_zero_to_one_scale_with_a_colorbar(weights):
    ax = viz.plot_attention(weights * 0.3)  # the scale does not follow the data
    image = ax.images[0]
    assert image.get_clim() == (0.0, 1.0)
    assert image.cmap.name.startswith(viz.SEQUENTIAL)
    assert image.colorbar is not None


def test_diverging_option_has_symmetric_limits(rng):
    scores = rng.standard_normal((3, 4)) + 0.5
    ax = viz.plot_attention(scores, diverging=True)
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(scores).max())
    assert ax.images[0].cmap.name.startswith(viz.DIVERGING)


def test_masked_cell_is_drawn_distinctly_from_a_zero_weight():
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    mask = np.array([[True, False], [True, True]])
    ax = viz.plot_attention(weights, mask=mask, annotate=False, colorbar=False)
    fig = ax.figure
    masked, zero = cell_pixels(fig, ax, 0, 1), cell_pixels(fig, ax, 1, 0)
    grey = np.array(to_rgb(viz.MASKED_COLOR))
    is_grey = np.all(np.abs(masked - grey) < 0.02, axis=1)
    assert is_grey.mean() > 0.5  # mostly grey; the rest is hatching
    colormap = ax.images[0].cmap(np.linspace(0, 1, 256))[:, :3]
    assert np.min(np.abs(colormap - grey).max(axis=1)) > 0.1  # grey not in the cmap
    assert not np.any(np.all(np.abs(zero - grey) < 0.02, axis=1))


def test_minus_inf_scores_are_drawn_as_masked():
    scores = np.array([[0.5, -np.inf], [1.0, -1.0]])
    ax = viz.plot_attention(scores, diverging=True)
    assert ax.images[0].get_array().mask.tolist() == [[False, True], [False, False]]
    assert ax.images[0].get_clim() == (-1.0, 1.0)  # -inf ignored for the limits


def test_small_matrices_get_their_values_written_in_the_cells(weights):
    ax = viz.plot_attention(weights, mask=causal_mask(5))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 15  # the 15 allowed cells of a 5 x 5 causal mask
    assert f"{weights[4, 0]:.2f}" in texts
    big = viz.plot_attention(np.full((20, 20), 0.05))
    assert len(big.texts) == 0


def test_plot_heads_draws_one_panel_per_head_and_one_colorbar(rng):
    weights = attention_weights(
        rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 5, 2)), causal=False
    )
    fig = viz.plot_heads(weights, mask=causal_mask(4, 5))  # (H, N, M) = (3, 4, 5)
    panels = image_panels(fig)
    assert len(panels) == 3
    assert len(fig.axes) == 3 + 1  # the single shared colorbar
    assert {p.images[0].get_clim() for p in panels} == {(0.0, 1.0)}
    assert [p.get_title() for p in panels] == ["head 0", "head 1", "head 2"]


def test_plot_heads_accepts_layers_by_heads(rng):
    weights = rng.dirichlet(np.ones(3), size=(2, 4, 3))  # (L, H, N, M) = (2, 4, 3, 3)
    fig = viz.plot_heads(weights, diverging=True)
    panels = image_panels(fig)
    assert len(panels) == 8 and len(fig.axes) == 9
    assert len({p.images[0].get_clim() for p in panels}) == 1  # one shared scale
    assert panels[5].get_title() == "layer 1, head 1"


def test_plot_heads_takes_custom_head_titles(rng):
    weights = rng.dirichlet(np.ones(3), size=(2, 3))  # (H, N, M) = (2, 3, 3)
    fig = viz.plot_heads(weights, head_titles=["previous token", "grammar"])
    assert [p.get_title() for p in image_panels(fig)] == ["previous token", "grammar"]


def test_plot_heads_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="weights"):
        viz.plot_heads(np.zeros((2, 3)))


def test_plot_mask_draws_allowed_cells_and_a_legend():
    ax = viz.plot_mask(causal_mask(3), TOKENS[:3], TOKENS[:3])
    data = ax.images[0].get_array()
    assert np.ma.getmaskarray(data)[0, 1] and data[1, 0] == 1.0
    assert ax.get_legend() is not None
    assert ax.get_xlabel() == "key"


@pytest.mark.parametrize(("legend", "right"), [(True, True), ("below", False)])
def test_plot_mask_places_its_legend_right_or_below(legend, right):
    ax = viz.plot_mask(causal_mask(3), legend=legend)
    ax.figure.canvas.draw()
    box = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert (box.x0 >= axes_box.x1) == right
    assert (box.y1 <= axes_box.y0) == (not right)


def test_plot_mask_without_a_legend():
    assert viz.plot_mask(causal_mask(3), legend=False).get_legend() is None


def test_plot_attention_rejects_a_float_mask(weights):
    with pytest.raises(TypeError, match="mask must be boolean"):
        viz.plot_attention(weights, mask=np.ones((5, 5)))


def test_save_figure_bytes_are_reproducible(weights, figures_in_tmp):
    ax = viz.plot_attention(weights, TOKENS, TOKENS, title="same bytes")
    viz.save_figure(ax.figure, "twice")
    first = (figures_in_tmp / "twice.png").read_bytes()
    viz.save_figure(ax.figure, "twice")
    assert (figures_in_tmp / "twice.png").read_bytes() == first
    assert b"Software" not in first and b"Matplotlib" not in first
    fresh = viz.plot_attention(weights, TOKENS, TOKENS, title="same bytes")
    viz.save_figure(fresh.figure, "again")
    assert (figures_in_tmp / "again.png").read_bytes() == first


def test_save_figure_follows_the_environment_variable(weights, figures_in_tmp):
    assert viz.save_figure(viz.plot_attention(weights), "01_redirect") is None
    assert viz.figures_dir() == figures_in_tmp
    assert (figures_in_tmp / "01_redirect.png").read_bytes().startswith(b"\x89PNG")


def test_figures_dir_walks_up_to_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv(viz.FIGURES_ENV)
    (tmp_path / "attention_np").mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert viz.figures_dir() == tmp_path.resolve() / "figures"


def test_figures_dir_is_created_at_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.delenv(viz.FIGURES_ENV)
    (tmp_path / "attention_np").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert viz.figures_dir() == tmp_path.resolve() / "figures"
    assert (tmp_path / "figures").is_dir()


def test_save_figure_rejects_a_path_as_name(weights):
    with pytest.raises(ValueError, match="plain file stem"):
        viz.save_figure(viz.plot_attention(weights), "../escape")


def test_explore_attention_draws_a_static_figure_without_a_kernel(rng):
    weights = rng.dirichlet(np.ones(4), size=(2, 3))  # (H, N, M) = (2, 3, 4)
    before = len(plt.get_fignums())
    assert viz.explore_attention(weights, TOKENS[:3], TOKENS[:4]) is None
    assert len(plt.get_fignums()) == before + 1


def test_explore_attention_works_without_ipywidgets(rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import now fails
    weights = rng.dirichlet(np.ones(4), size=3)  # (N, M) = (3, 4)
    viz.explore_attention(weights)
    assert len(image_panels(plt.gcf())) == 1


def test_query_view_outlines_the_chosen_row(weights):
    from attention_np._explore import query_figure

    fig = query_figure(weights, 2, TOKENS, TOKENS, causal_mask(5), "head 0")
    heat, bars = fig.axes[0], fig.axes[1]
    assert len(bars.patches) == 5
    np.testing.assert_allclose([b.get_height() for b in bars.patches], weights[2])
    assert "sat" in bars.get_title()
    assert any(p.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for p in heat.patches)


def saved_boxes(fig, artists):
    """Save ``fig`` (into the temporary folder) and return the pixel boxes the
    ``artists`` had in the image written (read during the save's last draw)."""
    boxes = []

    def grab(event):
        boxes[:] = [a.get_window_extent(event.renderer) for a in artists]

    handler = fig.canvas.mpl_connect("draw_event", grab)
    viz.save_figure(fig, "layout_check")
    fig.canvas.mpl_disconnect(handler)
    return boxes


def test_plot_heads_suptitle_sits_above_the_panel_titles(rng):
    tokens = [f"t{i}" for i in range(12)]
    weights = rng.dirichlet(np.ones(12), size=(6, 12))  # (H, N, M) = (6, 12, 12)
    fig = viz.plot_heads(weights, tokens, tokens, title="six heads")
    (suptitle,) = [t for t in fig.texts if t.get_text() == "six heads"]
    sup, *titles = saved_boxes(fig, [suptitle] + [p.title for p in image_panels(fig)])
    assert sup.y0 > max(t.y1 for t in titles)


def test_two_row_grid_keeps_key_labels_clear_of_the_next_rows_titles(rng):
    labels = list("12743065|5603472")  # a reversal example: 16 one-character tokens
    weights = rng.dirichlet(np.ones(16), size=(2, 4, 16))  # (L, H, N, M)
    fig = viz.plot_heads(weights, labels, labels, mask=causal_mask(16), panel=2.6)
    panels = image_panels(fig)
    boxes = saved_boxes(
        fig, [p.xaxis.label for p in panels[:4]] + [p.title for p in panels[4:]]
    )
    for key, title_below in zip(boxes[:4], boxes[4:], strict=True):
        assert key.y0 > title_below.y1


def test_plot_heads_returns_a_settled_layout():
    # a save runs the layout once; if that pass still moved things, the colorbar
    # label could land on its tick labels (the ALiBi figure of notebook 08 did)
    bias = -np.abs(np.subtract.outer(np.arange(16), np.arange(16)))  # (N, M)
    slopes = np.array([0.5, 0.125, 0.03, 0.004])[:, None, None]  # (H, 1, 1)
    fig = viz.plot_heads(
        slopes * bias, mask=causal_mask(16), diverging=True, label="bias -m (i - j)"
    )
    before = [ax.get_position().bounds for ax in fig.axes]
    fig.draw_without_rendering()  # one more layout pass
    after = [ax.get_position().bounds for ax in fig.axes]
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_a_long_colorbar_label_clears_the_colorbar_tick_labels(rng):
    scores = rng.standard_normal((2, 5, 5))  # (H, N, M)
    fig = viz.plot_heads(scores, diverging=True, label="a long label for the scores")
    (cbar,) = [ax for ax in fig.axes if not ax.images]
    ticks = [t for t in cbar.get_yticklabels() if t.get_text()]
    label, *tick_boxes = saved_boxes(fig, [cbar.yaxis.label] + ticks)
    assert label.x0 > max(t.x1 for t in tick_boxes)


def test_a_single_row_without_labels_gets_one_tick_at_zero():
    ax = viz.plot_mask(np.array([[True, True, False, False, True]]))  # (N, M) = (1, 5)
    assert list(ax.get_yticks()) == [0]
    ax = viz.plot_attention(np.full((1, 4), 0.25))
    assert list(ax.get_yticks()) == [0]


def test_crowded_rotated_token_labels_get_a_smaller_font(rng):
    tokens = [f"t{i}" for i in range(12)]  # rotated: 12 labels of up to 3 characters
    weights = rng.dirichlet(np.ones(12), size=(3, 12))  # (H, N, M) = (3, 12, 12)
    crowded = viz.plot_heads(weights, tokens, tokens, panel=2.4)
    roomy = viz.plot_heads(weights, tokens, tokens, panel=4.0)
    size = image_panels(crowded)[0].get_xticklabels()[0].get_fontsize()
    assert size < image_panels(roomy)[0].get_xticklabels()[0].get_fontsize()

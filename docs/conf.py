"""Sphinx configuration of the offline course site (``make site``).

The sources are staged by docs/stage_site.py into build/site-src and built with
``sphinx-build -W -c docs build/site-src _site``. Nothing is fetched at run time:
MathJax 4 and its font are bundled into ``_static/mathjax`` by docs/bundle_mathjax.py.
"""

import os
import sys
from pathlib import Path

import attention_np

DOCS = Path(__file__).resolve().parent
MATHJAX = Path(os.environ.get("SITE_MATHJAX", DOCS.parent / "build" / "site-mathjax"))
if not (MATHJAX / "mathjax" / "tex-mml-chtml.js").exists():
    raise RuntimeError(
        f"no MathJax bundle in {MATHJAX}: run python docs/bundle_mathjax.py {MATHJAX}"
    )

project = "attention_np"
html_title = "Attention from scratch in NumPy"
author = "the attention_np authors"
copyright = "2026, the attention_np authors"
release = version = attention_np.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]

# notebooks: rendered from their committed outputs, never executed
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference from the docstrings (Google style; see stage_site.py for the pages)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
add_module_names = False
autosummary_generate = False
# literal blocks in docstrings are formulas and tables more often than code
highlight_language = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# MathJax 4 from _static; the loader's ``fonts`` path must point at the local copy,
# or the font files still come from a CDN (the page looks right all the same)
html_static_path = [str(MATHJAX)]
mathjax_path = "mathjax/tex-mml-chtml.js"
mathjax3_config = {"loader": {"paths": {"fonts": "[mathjax]/fonts"}}}

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_source_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
    # no footer links to sphinx-doc.org or the theme's site: the site is offline
    "footer_content_items": ["copyright"],
    "extra_footer": "",
}
# pydata-sphinx-theme 0.20 logs a console error on a first visit without a default mode
html_context = {"default_mode": "light"}
html_show_sphinx = False
html_show_sourcelink = False
html_copy_source = True
html_last_updated_fmt = None

# -- docstrings -----------------------------------------------------------------------
# The package's docstrings are plain-text Google style, read with help() as much as
# here: napoleon reads their sections, plaintext_docstrings.py the rest (indented
# blocks are preformatted, a list may follow its lead-in line, |x| is a norm).
sys.path.insert(0, str(DOCS))
from plaintext_docstrings import process_docstring  # noqa: E402


def setup(app):
    # priority 600: after napoleon (500) has turned the Google sections into fields
    app.connect("autodoc-process-docstring", process_docstring, priority=600)

"""Fixtures of the site tests: the built site, a local server, a headless Chromium.

``make test-site`` sets ATTENTION_NP_SITE_TESTS=full: every page of _site/ is opened,
and a missing _site/, Playwright or Chromium is an error. Under ``make test`` (the
variable unset) a representative subset runs when all three are there and skips with
the reason otherwise. ATTENTION_NP_SITE=DIR checks another built site.
"""

import os
from pathlib import Path

import pytest
import sitecheck

FULL = os.environ.get("ATTENTION_NP_SITE_TESTS") == "full"
SITE = Path(os.environ.get("ATTENTION_NP_SITE", sitecheck.SITE))
# what `make test` opens with every check: the landing page, a lesson, an exercise
# (the API test adds the core API page and its source page, the negative tests a
# lesson and an exercise, the search test the search page)
SUBSET = [
    "index.html",
    "notebooks/02_scaled_dot_product_attention.html",
    "notebooks/exercises/12_layernorm_backward.html",
]


def _unavailable(reason):
    if FULL:
        pytest.fail(f"{reason} (ATTENTION_NP_SITE_TESTS=full)")
    pytest.skip(reason)


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        pages = sitecheck.pages(SITE) if FULL and SITE.is_dir() else SUBSET
        metafunc.parametrize("page", pages)


def pytest_collection_modifyitems(config, items):
    if FULL:
        return
    only_full = pytest.mark.skip(reason="full site run only (make test-site)")
    for item in items:
        if "full_only" in item.keywords:
            item.add_marker(only_full)


def pytest_configure(config):
    config.addinivalue_line("markers", "full_only: runs in make test-site only")


@pytest.fixture(scope="session")
def site():
    """The built site's folder."""
    if not (SITE / "index.html").is_file():
        _unavailable(f"no built site in {SITE}: run make site")
    return SITE


@pytest.fixture(scope="session")
def browser(site):
    """A headless system Chromium in which only 127.0.0.1 answers."""
    why = sitecheck.missing_browser()
    if why:
        _unavailable(why)
    with sitecheck.browser() as b:
        yield b


@pytest.fixture(scope="session")
def base(site):
    """The URL at which the built site is served on 127.0.0.1."""
    with sitecheck.serve(site) as url:
        yield url

"""The course site (_site/, built by make site) works offline in a real browser.

Every page: no console error, no failed request, no request to any host but
127.0.0.1, MathJax finished with every math element rendered and no raw TeX left in
the prose, every image loaded; lesson pages have math and figures. Plus the lesson
order, search, the API reference, and broken copies of the site that must fail.

``make test-site`` sets ATTENTION_NP_SITE_TESTS=full: every page of _site/ is opened,
and a missing _site/, Playwright or Chromium is an error. Under ``make test`` (the
variable unset) a representative subset runs when all three are there and skips with
the reason otherwise. ATTENTION_NP_SITE=DIR checks another built site. (No
conftest.py here: the package tests import theirs as ``conftest``.)
"""

import os
import re
import sys
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
    "notebooks/exercises/09a_layernorm_backward.html",
]


def _unavailable(reason):
    if FULL:
        pytest.fail(f"{reason} (ATTENTION_NP_SITE_TESTS=full)")
    pytest.skip(reason)


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        pages = sitecheck.pages(SITE) if FULL and SITE.is_dir() else SUBSET
        metafunc.parametrize("page", pages)


full_only = pytest.mark.skipif(not FULL, reason="full site run only (make test-site)")


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


ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted(
    p.stem for p in (ROOT / "notebooks/exercises").glob("[0-9][0-9][a-z]_*.ipynb")
)


# -- static checks -------------------------------------------------------------------


def test_no_src_href_or_css_url_names_another_host(site):
    assert sitecheck.external_urls(site) == []


def test_the_static_scan_finds_external_urls_and_spares_local_ones(tmp_path):
    (tmp_path / "page.html").write_text(
        '<img src="https://cdn.example.org/x.png"><a href="//example.net/y">y</a>'
        '<link href="_static/a.css">'
        '<img srcset="a.png 1x, http://example.com/b.png 2x">'
        "<div style=\"background: url('http://example.com/c.png')\"></div>"
        '<a href="http://127.0.0.1:8000/">local</a>'
        '<img src="data:image/png;base64,AA==">'
    )
    (tmp_path / "a.css").write_text(
        "@import 'https://fonts.example.com/f.css'; .a { background: url(img/b.png) }"
    )
    found = sitecheck.external_urls(tmp_path)
    assert found == [
        "a.css: https://fonts.example.com/f.css",
        "page.html: https://cdn.example.org/x.png",
        "page.html: //example.net/y",
        "page.html: http://example.com/b.png",
        "page.html: http://example.com/c.png",
    ]


def test_every_notebook_has_its_page(site):
    for stem in LESSONS:
        assert (site / "notebooks" / f"{stem}.html").is_file(), stem
    for stem in EXERCISES:
        assert (site / "notebooks" / "exercises" / f"{stem}.html").is_file(), stem
    assert (site / "notebooks/exercises/README.html").is_file()  # teacher's guide
    assert sitecheck.lessons(site) == [f"notebooks/{stem}.html" for stem in LESSONS]


def test_exercise_pages_are_the_student_view(site):
    solution = (ROOT / "notebooks/exercises/01a_stable_softmax.ipynb").read_text()
    assert "### BEGIN SOLUTION" in solution
    for stem in EXERCISES:
        html = (site / "notebooks" / "exercises" / f"{stem}.html").read_text()
        assert "BEGIN SOLUTION" not in html, stem
        assert "NotImplementedError" in html or "YOUR ANSWER HERE" in html, stem
        assert re.search(r"check_\w+</span><span class=\"p\">\(", html), stem


def test_lessons_are_rendered_from_their_committed_outputs(site):
    # an output that only the committed, executed notebook has: its figures
    html = (site / "notebooks" / f"{LESSONS[0]}.html").read_text()
    assert re.search(r'<img[^>]+src="\.\./_images/[^"]+\.png"', html)
    assert not (ROOT / "jupyter_execute").exists() or not any(
        (ROOT / "jupyter_execute").iterdir()
    ), "make site leaves no jupyter_execute/ behind"


def test_every_public_name_is_in_the_api_reference_with_its_source(site):
    sys.path.insert(0, str(ROOT / "docs"))
    from stage_site import api_groups, public_names

    entries = {}  # dt id -> its HTML, over every API page
    for page in (site / "api").glob("*.html"):
        html = page.read_text()
        for match in re.finditer(
            r'<dt class="sig[^"]*" id="([^"]+)">(.*?)</dt>', html, re.S
        ):
            entries[match.group(1)] = match.group(2)
    for group, module in api_groups().items():
        for name in public_names(module):
            ids = [i for i in entries if i.endswith("." + name)]
            assert ids, f"{group}.{name} is not in the API reference"
            if callable(getattr(module, name)):
                assert any("viewcode-link" in entries[i] for i in ids), (
                    f"{name}: no source"
                )


# -- every page in the browser ---------------------------------------------------------


def test_page_works_offline(browser, base, page):
    report = sitecheck.check_page(browser, base, page, lesson=sitecheck.is_lesson(page))
    assert report.problems == [], "\n".join(report.problems)


@full_only
def test_next_links_walk_the_lessons_in_order(browser, base):
    first = f"notebooks/{LESSONS[0]}.html"
    seen = sitecheck.next_links(browser, base, first, len(LESSONS) - 1)
    assert seen == [f"notebooks/{stem}.html" for stem in LESSONS]


def test_search_for_softmax_returns_results(browser, base):
    titles = sitecheck.search(browser, base, "softmax")
    assert len(titles) >= 3, titles
    assert any("softmax" in t.lower() for t in titles), titles


def test_api_page_of_core_attention_shows_forward_and_backward(browser, base):
    with sitecheck.recording_page(browser) as (page, report):
        page.goto(base + "api/attention_np.html", wait_until="load")
        section = page.locator("section#attention-np-attention")
        for name in ("attention_forward", "attention_backward"):
            entry = section.locator(f"dt[id='attention_np.{name}']")
            assert entry.is_visible(), name
            assert name in entry.inner_text()
            source = entry.locator("a.reference.internal", has_text="[source]")
            href = source.get_attribute("href")
            assert href.startswith("../_modules/attention_np/attention.html#"), href
        page.locator(
            "dt[id='attention_np.attention_forward'] a", has_text="[source]"
        ).click()
        page.wait_for_load_state("load")
        assert "def attention_forward(" in page.inner_text("article")
    assert report.problems == []


# -- broken copies must fail -----------------------------------------------------------
# Each serves the built site with one page changed (sitecheck.serve's overrides).


def test_a_site_with_an_external_image_fails(site, browser):
    page = f"notebooks/{LESSONS[-1]}.html"
    html = (site / page).read_text()
    planted = '<img src="http://example.com/planted.png" alt="planted">'
    broken = re.sub(r"(<article[^>]*>)", r"\1" + planted, html, count=1)
    assert broken != html
    with sitecheck.serve(site, {page: broken}) as base:
        report = sitecheck.check_page(browser, base, page, lesson=True)
    assert report.external == ["http://example.com/planted.png"]
    assert "request to another host: http://example.com/planted.png" in report.problems
    assert "image not loaded: http://example.com/planted.png" in report.problems


def test_the_static_scan_finds_a_planted_external_image(site, tmp_path):
    page = tmp_path / "notebooks" / f"{LESSONS[0]}.html"
    page.parent.mkdir()
    html = (site / "notebooks" / page.name).read_text()
    page.write_text(
        html.replace("<article", '<img src="http://example.com/p.png"><article')
    )
    found = sitecheck.external_urls(tmp_path)
    assert found == [f"notebooks/{page.name}: http://example.com/p.png"]


def test_a_site_without_the_mathjax_font_path_fails(site, browser):
    page = f"notebooks/exercises/{EXERCISES[0]}.html"
    html = (site / page).read_text()
    config = '"loader": {"paths": {"fonts": "[mathjax]/fonts"}}, '
    assert config in html, "the MathJax config of conf.py changed: update this test"
    with sitecheck.serve(site, {page: html.replace(config, "")}) as base:
        report = sitecheck.check_page(browser, base, page)
    # the math still renders; only the requests for the font files give it away
    assert report.external, "MathJax fetched nothing from another host"
    assert all("/@mathjax/mathjax-newcm-font" in url for url in report.external)
    assert any(p.startswith("request to another host:") for p in report.problems)


@full_only
def test_a_formula_line_starting_with_plus_is_found_as_raw_tex(site, browser):
    # exercise 09a's RMSNorm formula once went over two lines, the second starting
    # with "+ \\varepsilon}$": Markdown made it a bullet and left the TeX raw.
    page = "notebooks/exercises/09a_layernorm_backward.html"
    html = (site / page).read_text()
    broken = html.replace("Which of the", "<ul><li>+ \\varepsilon}$. Which of the", 1)
    assert broken != html
    with sitecheck.serve(site, {page: broken}) as base:
        report = sitecheck.check_page(browser, base, page)
    assert any(p.startswith("raw TeX in prose:") for p in report.problems), report

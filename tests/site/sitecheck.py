"""Check the built course site (_site/) in headless Chromium, offline.

Used by tests/site/ (``make test-site``) and as a command line:

    python tests/site/sitecheck.py check [SITE]                 # every page, a report
    python tests/site/sitecheck.py screenshot SITE PAGE OUT.png [SELECTOR]

The site is served from 127.0.0.1 by a thread of this process; Chromium (Debian's
``chromium``, driven by Playwright's Python package with ``executable_path``: no
browser download) may reach that host only. Every other request is aborted and
recorded (a Playwright route, with a host-resolver rule behind it so that nothing
can leave even if a route were missed).
"""

import functools
import http.server
import io
import os
import re
import shutil
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_site"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
TIMEOUT_MS = 30_000


def chromium_path():
    """The system Chromium: $CHROMIUM, else chromium on PATH (None if absent)."""
    candidates = [os.environ.get("CHROMIUM"), shutil.which("chromium")]
    candidates += [shutil.which("chromium-browser"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and Path(c).exists()), None)


def missing_browser():
    """Why the browser checks cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-site.txt)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


# -- static scan -----------------------------------------------------------------------


def is_external(url):
    """True for a URL that names a host other than this machine."""
    url = url.strip()
    if url.startswith("//"):
        url = "http:" + url
    parts = urlsplit(url)
    if parts.scheme in ("", "data", "blob", "javascript", "about"):
        return False
    if parts.scheme == "file":
        return True
    host = (parts.hostname or "").lower()
    return parts.scheme in ("mailto", "tel") or host not in LOCAL_HOSTS


CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""")
URL_ATTRS = {"src", "href", "srcset", "poster", "data", "action", "formaction"}


class _UrlCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls, self._in_style = [], False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name == "srcset":
                parts = [part.split() for part in value.split(",")]
                self.urls += [part[0] for part in parts if part]
            elif name in URL_ATTRS:
                self.urls.append(value)
            elif name == "style":
                self.urls += css_urls(value)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += css_urls(data)


def css_urls(text):
    return [m.group(2) or m.group(4) for m in CSS_URL.finditer(text)]


def external_urls(site):
    """["file: url", ...] for every external URL in an src/href/CSS url() of site."""
    site, found = Path(site), []
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            collector = _UrlCollector()
            collector.feed(path.read_text(encoding="utf-8", errors="replace"))
            urls = collector.urls
        elif path.suffix == ".css":
            urls = css_urls(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        rel = path.relative_to(site)
        found += [f"{rel}: {url}" for url in urls if is_external(url)]
    return found


def pages(site):
    """Every HTML page of the site (not the files bundled under _static/)."""
    site = Path(site)
    return sorted(
        str(p.relative_to(site))
        for p in site.rglob("*.html")
        if p.relative_to(site).parts[0] != "_static"
    )


def is_lesson(path):
    """True for a lesson page, notebooks/NN_name.html."""
    return re.fullmatch(r"notebooks/\d\d_[^/]+\.html", path) is not None


def lessons(site):
    """The lesson pages in teaching order."""
    return [p for p in pages(site) if is_lesson(p)]


# -- serving and the browser ---------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    overrides = {}  # {path: text} served instead of the file (the broken copies)

    def send_head(self):
        path = urlsplit(self.path).path.lstrip("/")
        if path not in self.overrides:
            return super().send_head()
        body = self.overrides[path].encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, *args):
        pass


@contextmanager
def serve(directory, overrides=None):
    """Serve ``directory`` on 127.0.0.1 (a free port); yield the base URL.

    ``overrides`` maps page paths to the HTML served in their place: a copy of the
    site with a few pages changed, without copying the site.
    """
    handler_class = type("Handler", (_Handler,), {"overrides": dict(overrides or {})})
    handler = functools.partial(handler_class, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """One Chromium context for many pages; every non-local request is aborted and
    recorded in ``external`` (a context route also sees the pages' workers)."""

    def __init__(self, context):
        self.context, self.external = context, []
        context.route("**/*", self.route)

    def route(self, route):
        if is_external(route.request.url):
            self.external.append(route.request.url)
            route.abort()
        else:
            route.continue_()


@contextmanager
def browser():
    """A headless Chromium (the system one) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield Browser(chromium.new_context(viewport={"width": 1280, "height": 900}))
        finally:
            chromium.close()


@dataclass
class Report:
    """What one page did: every problem found, and what the other checks need."""

    url: str
    problems: list = field(default_factory=list)
    external: list = field(default_factory=list)
    math: int = 0
    images: int = 0
    next_href: str = ""
    pending: set = field(default_factory=set)  # requests in flight


def settle(page, report, quiet_ms=250):
    """Wait until no request of the page has been in flight for ``quiet_ms``."""
    pending = report.pending
    quiet, deadline = 0, TIMEOUT_MS
    while quiet < quiet_ms and deadline > 0:
        page.wait_for_timeout(50)
        quiet, deadline = (quiet + 50 if not pending else 0), deadline - 50


@contextmanager
def recording_page(browser):
    """A new page that records console errors, failed and non-local requests."""
    report, first = Report(url=""), len(browser.external)
    page = browser.context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems, pending = report.problems, set()
    page.on("request", lambda r: pending.add(r))
    page.on("requestfinished", lambda r: pending.discard(r))
    page.on("requestfailed", lambda r: pending.discard(r))
    report.pending = pending
    page.on(
        "console",
        lambda m: m.type == "error" and problems.append(f"console error: {m.text}"),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "requestfailed",
        lambda r: (
            is_external(r.url)
            or problems.append(f"failed request: {r.url} ({r.failure})")
        ),
    )
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
    )
    try:
        yield page, report
    finally:
        page.close()
        report.external += browser.external[first:]
        problems += [f"request to another host: {url}" for url in report.external]


# evaluated in the page once it has loaded and MathJax (if any) has finished
INSPECT_JS = """async () => {
  const out = {};
  out.mathjax = typeof window.MathJax !== 'undefined';
  if (out.mathjax) {
    if (!MathJax.startup || !MathJax.startup.promise) return {mathjaxBroken: true};
    try { await MathJax.startup.promise; }
    catch (e) { out.mathjaxFailed = String(e); }
  }
  await document.fonts.ready;
  // the article counts for "a lesson has math and figures"; everything is checked
  const root = document.querySelector('article') || document.body;
  const maths = [...document.body.querySelectorAll('.math')];
  out.math = root.querySelectorAll('.math').length;
  out.unrendered = maths.filter(m => !m.querySelector('mjx-container'))
                        .map(m => m.textContent.slice(0, 80));
  out.errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80));
  const imgs = [...document.images];
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  out.images = root.querySelectorAll('img').length;
  out.broken = imgs.filter(img => !(img.complete && img.naturalWidth > 0))
                   .map(img => img.getAttribute('src'));
  const skip = 'pre, code, script, style, mjx-container, .math, .highlight, textarea';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const tex = /\\\\[A-Za-z]{2,}|\\\\[()[\\]]|\\$[^$\\s][^$]*\\$/;
  out.rawTex = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    const m = n.textContent.match(tex);
    if (m) out.rawTex.push(n.textContent.trim().slice(0, 100));
  }
  const next = document.querySelector('a.right-next');
  out.next = next ? next.href : '';
  return out;
}"""


def check_page(browser, base, path, *, lesson=False):
    """Load one page and return its Report (``problems`` empty when all is well)."""
    with recording_page(browser) as (page, report):
        report.url = urljoin(base, path)
        page.goto(report.url, wait_until="load")
        found = page.evaluate(INSPECT_JS)
        settle(page, report)
        if found.get("mathjaxBroken"):
            report.problems.append("MathJax loaded but never started")
            found = {}
        report.math, report.images = found.get("math", 0), found.get("images", 0)
        report.next_href = found.get("next", "")
        problems = report.problems
        if "mathjaxFailed" in found:
            problems.append(f"MathJax failed: {found['mathjaxFailed']}")
        problems += [f"math not rendered: {t!r}" for t in found.get("unrendered", [])]
        problems += [f"MathJax error: {e!r}" for e in found.get("errors", [])]
        problems += [f"image not loaded: {src}" for src in found.get("broken", [])]
        problems += [f"raw TeX in prose: {t!r}" for t in found.get("rawTex", [])]
        if lesson and report.math == 0:
            problems.append("a lesson page without math")
        if lesson and report.images == 0:
            problems.append("a lesson page without figures")
    return report


def next_links(browser, base, first, count):
    """The pages reached by clicking 'next' ``count`` times from ``first``.

    The links are plain HTML, so this walk runs with JavaScript off (no MathJax to
    wait for); ``check_page`` has loaded every page with it on.
    """
    context = browser.context.browser.new_context(java_script_enabled=False)
    context.route("**/*", browser.route)
    page = context.new_page()
    try:
        page.goto(urljoin(base, first), wait_until="domcontentloaded")
        seen = [first]
        for _ in range(count):
            link = page.locator("a.right-next")
            if link.count() == 0:
                break
            with page.expect_navigation(wait_until="domcontentloaded"):
                link.first.click()
            seen.append(page.url[len(base) :].split("#")[0])
        return seen
    finally:
        context.close()


def search(browser, base, term):
    """The result titles of the site's own search for ``term``."""
    with recording_page(browser) as (page, report):
        page.goto(urljoin(base, f"search.html?q={term}"), wait_until="load")
        page.wait_for_function(
            "() => document.querySelectorAll('#search-results li').length > 0"
        )
        titles = page.locator("#search-results li a").all_inner_texts()
    if report.problems:
        raise AssertionError(report.problems)
    return titles


def screenshot(browser, base, path, out, *, scroll_to=None, height=1000):
    """A PNG of one page as a reader sees it, after MathJax has finished; the view
    starts at the element ``scroll_to`` (a CSS selector) when one is given."""
    with recording_page(browser) as (page, report):
        page.set_viewport_size({"width": 1280, "height": height})
        page.goto(urljoin(base, path), wait_until="load")
        page.evaluate(INSPECT_JS)
        settle(page, report)
        if scroll_to:
            page.locator(scroll_to).first.evaluate(
                "e => { e.scrollIntoView(); window.scrollBy(0, -70); }"
            )
            page.wait_for_timeout(300)
        page.screenshot(path=str(out))
        return report


# -- command line --------------------------------------------------------------------


def main(argv):
    if not argv or argv[0] not in ("check", "screenshot"):
        sys.exit(__doc__)
    why = missing_browser()
    if why:
        sys.exit(f"sitecheck: {why}")
    if argv[0] == "screenshot":
        site, path, out = argv[1:4]
        scroll_to = argv[4] if len(argv) > 4 else None
        with serve(site) as base, browser() as b:
            report = screenshot(b, base, path, out, scroll_to=scroll_to, height=1200)
        print(f"sitecheck: {out} ({len(report.problems)} problems)")
        return 1 if report.problems else 0
    site = Path(argv[1]) if len(argv) > 1 else SITE
    bad = external_urls(site)
    with serve(site) as base, browser() as b:
        for path in pages(site):
            report = check_page(b, base, path, lesson=is_lesson(path))
            bad += [f"{path}: {p}" for p in report.problems]
            print(f"{'FAIL' if report.problems else 'ok  '} {path}", flush=True)
    print("\n".join(bad) or "sitecheck: every page passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Copy MathJax 4 and its font out of docs/node_modules into the site's static files.

    python docs/bundle_mathjax.py OUT        # OUT/mathjax/... (html_static_path)

Runs ``npm ci`` in docs/ first when node_modules is missing or older than
package-lock.json (npm packages ``mathjax`` and ``@mathjax/mathjax-newcm-font``,
4.1.x). The site then loads ``_static/mathjax/tex-mml-chtml.js`` and, through the
loader path ``fonts`` set in conf.py, the font from ``_static/mathjax/fonts/``:
nothing comes from a CDN.

Only what the browser needs is copied: the combined TeX/MathML -> CHTML component,
the components it may load on demand (TeX extensions, a11y, menu, speech rule
engine) and the font's CHTML data and woff2 files (not its SVG or Node builds).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
MODULES = DOCS / "node_modules"
MATHJAX_FILES = ["tex-mml-chtml.js", "LICENSE", "package.json"]
MATHJAX_DIRS = ["a11y", "adaptors", "input", "output", "sre", "ui"]
FONT = "mathjax-newcm-font"
FONT_FILES = ["chtml.js", "package.json"]
FONT_DIRS = ["chtml"]


def npm_install():
    """``npm ci`` in docs/ unless node_modules is already up to date."""
    lock, stamp = DOCS / "package-lock.json", MODULES / ".package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bundle_mathjax: npm not found (install Node.js and npm)")
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(cmd, cwd=DOCS, check=True)


def version(package_dir):
    return json.loads((package_dir / "package.json").read_text())["version"]


def copy(src, dst, files, dirs):
    dst.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy2(src / name, dst / name)
    for name in dirs:
        shutil.copytree(src / name, dst / name)


def bundle(out):
    """Write ``out/mathjax``, the font in ``out/mathjax/fonts``; return the versions."""
    npm_install()
    mathjax, font = MODULES / "mathjax", MODULES / "@mathjax" / FONT
    target = Path(out) / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    copy(mathjax, target, MATHJAX_FILES, MATHJAX_DIRS)
    copy(font, target / "fonts" / FONT, FONT_FILES, FONT_DIRS)
    return version(mathjax), version(font)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python docs/bundle_mathjax.py OUT")
    mathjax, font = bundle(argv[0])
    print(f"bundle_mathjax: mathjax {mathjax}, {FONT} {font} -> {argv[0]}/mathjax")


if __name__ == "__main__":
    main()

"""The documentation builds without warnings, and its examples run and print what they show.

(a) Sphinx builds ``docs/`` to HTML with ``-W`` (every warning is an error; ``conf.py``
    sets ``nitpicky``, so a cross-reference to a function that does not exist fails
    too), and the API reference lists the public API.
(b) Every ```` ```pycon ```` block of ``docs/**/*.md`` is run as a doctest: the blocks of
    one page run in order in one namespace, with ``ELLIPSIS`` and
    ``NORMALIZE_WHITESPACE``. Bayesian sampling is never executed: the pages show it in
    ```` ```python ```` blocks (no prompts), with outputs copied from a recorded run.
"""
from __future__ import annotations

import doctest
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PYCON = re.compile(r"^```pycon[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Public names the API reference must document (HTML anchors are the full names).
API_NAMES = [
    "lmmcompare.lmer", "lmmcompare.bayes", "lmmcompare.compare", "lmmcompare.fit_both", "lmmcompare.anova",
    "lmmcompare.r2", "lmmcompare.icc",
    "lmmcompare.load_dataset", "lmmcompare.list_datasets", "lmmcompare.ModelSpec", "lmmcompare.LmerFit",
    "lmmcompare.LmerFit.summary", "lmmcompare.LmerFit.confint", "lmmcompare.BayesFit", "lmmcompare.Comparison",
    "lmmcompare.Comparison.table", "lmmcompare.load", "lmmcompare.LmerFit.save", "lmmcompare.BayesFit.save",
    "lmmcompare.Comparison.save", "lmmcompare.emmeans", "lmmcompare.Comparison.emmeans", "lmmcompare.Comparison.pairs", "lmmcompare.set_default_contrasts", "lmmcompare.LmerFit.update",
    "lmmcompare.BayesFit.update", "lmmcompare.freq.make_devfun", "lmmcompare.freq.optimize_lmer",
    "lmmcompare.freq.make_fit", "lmmcompare.core.factor.factorize", "lmmcompare.core.gradient.objective_and_gradient",
    "lmmcompare.freq.inference.satterthwaite_df", "lmmcompare.freq.inference.kenward_roger_df",
    "lmmcompare.bayesian.priors.default_priors", "lmmcompare.bayesian.model.build_model",
    "lmmcompare.validate.reml_posterior_identity", "lmmcompare.validate.coverage", "lmmcompare.validate.sbc",
]


def doc_examples(path: pathlib.Path) -> list[doctest.Example]:
    """The examples of every ```pycon block of a page, with line numbers in the page."""
    text = path.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    examples = []
    for match in PYCON.finditer(text):
        first_line = text.count("\n", 0, match.start(1))
        for ex in parser.get_examples(match.group(1)):
            ex.lineno += first_line
            examples.append(ex)
    return examples


def display_options():
    """pandas prints wide frames on one line, as the pages show them."""
    import pandas as pd

    return pd.option_context("display.width", 120, "display.max_columns", 20)


@pytest.fixture(scope="module")
def built_html(tmp_path_factory):
    import importlib.util

    missing = [m for m in ("sphinx", "myst_parser", "numpydoc", "sphinx-mathjax-offline")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: python3 -m pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("docs")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sphinx build failed (warnings are errors):\n{proc.stdout}\n{proc.stderr}"
    return out / "html"


def test_docs_build_without_warnings(built_html):
    for page in ["index.html", "theory.html", "api/index.html", "guide/first_fit.html", "guide/r_users.html"]:
        assert (built_html / page).is_file(), page
    assert "eq-reml-criterion" in (built_html / "theory.html").read_text(encoding="utf-8")


ASSET = re.compile(r'<script\b[^>]*\bsrc="([^"]*)"|<link\b(?=[^>]*\brel="stylesheet")[^>]*\bhref="([^"]*)"')


def page_assets(html: str) -> list[str]:
    """The src of every <script> and the href of every stylesheet <link> of a page."""
    return [a or b for a, b in ASSET.findall(html)]


def test_asset_pattern_finds_scripts_and_stylesheets():
    html = ('<script src="https://cdn.example/mathjax.js"></script><link rel="stylesheet" href="_static/a.css" />'
            '<link rel="next" href="b.html" /><script>inline()</script>')
    assert page_assets(html) == ["https://cdn.example/mathjax.js", "_static/a.css"]


def test_pages_load_no_remote_assets_and_mathjax_is_bundled(built_html):
    """Offline, a page with a CDN script shows its equations as raw LaTeX: every script and
    stylesheet is a file of the build, MathJax (with its fonts and TeX extensions) included."""
    for page in sorted(built_html.rglob("*.html")):
        for url in page_assets(page.read_text(encoding="utf-8")):
            assert not re.match(r"(?i)(https?:)?//", url), f"{page.relative_to(built_html)} loads {url}"
            assert (page.parent / url.split("?")[0]).is_file(), f"{page.relative_to(built_html)}: {url} missing"
    theory = (built_html / "theory.html").read_text(encoding="utf-8")
    mathjax = [url for url in page_assets(theory) if "mathjax" in url.lower()]
    assert mathjax == ["_static/mathjax/tex-chtml.js"]
    bundle = built_html / "_static" / "mathjax"
    assert (bundle / "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff").is_file()
    assert (bundle / "input/tex/extensions/boldsymbol.js").is_file()   # autoloaded from the bundle too


def test_api_reference_lists_public_api(built_html):
    html = "\n".join(p.read_text(encoding="utf-8") for p in (built_html / "api").glob("*.html"))
    missing = [name for name in API_NAMES if f'id="{name}"' not in html]
    assert not missing, f"not in the API reference: {missing}"


def test_pages_have_examples():
    # every page is in a toctree: Sphinx warns otherwise, which fails the build above
    assert PAGES, "no Markdown pages found under docs/"
    assert sum(len(doc_examples(p)) for p in PAGES) >= 50


EXAMPLE_PAGES = [p for p in PAGES if doc_examples(p)]   # performance.md shows code only (InstEval takes seconds)


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[str(p.relative_to(DOCS)) for p in EXAMPLE_PAGES])
def test_doc_examples(page):
    examples = doc_examples(page)
    test = doctest.DocTest(examples, {"__name__": "__docs__"}, name=str(page.relative_to(ROOT)),
                           filename=str(page), lineno=0, docstring=None)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    with display_options():
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)

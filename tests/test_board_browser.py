"""The board's static site in headless Chromium (DevTools protocol, as the report's browser test): the board,
a submission page and the compare page open from file:// with no console error and no dialog; the report test's
XSS payloads in captions, references, captioner names and notes stay text. Screenshots are saved in the test's
folder (and in $CAPEVAL_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_board import CAPTIONERS, FAST, thumb_board, thumb_subset  # noqa: F401  (fixtures)
from test_report import XSS, make_xss_run
from test_report_browser import CHROMIUM, DevTools, keep_screenshot

from capeval.board import add_submission, init_board
from capeval.board.site import build_site

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs the Debian "
                                                          "package `chromium`)")
NOTE = "<script>alert('note')</script><img src=x onerror=alert(6)>"


@pytest.fixture()
def devtools():
    browser = DevTools()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def xss_site(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("board-xss")
    run = make_xss_run(base / "run")
    refs = base / "refs.json"
    refs.write_text((run / "references.json").read_text())
    board = base / "board"
    init_board(board, refs, title="<b>board</b> " + XSS[0])
    for cap in json.loads((run / "manifest.json").read_text())["captioners"]:
        add_submission(board, run, captioners=[cap], note=NOTE + " " + cap)
    return build_site(board, base / "site", params=FAST)


def _no_injection(devtools: DevTools) -> None:
    devtools.pump(1.0)  # give an injected handler (img onerror) time to fire
    assert devtools.dialogs == [], devtools.dialogs
    assert devtools.errors() == []
    assert devtools.evaluate("document.querySelectorAll('img, [onerror], [onload]').length") == 0


def test_xss_payloads_stay_text_on_every_page(xss_site: Path, devtools: DevTools, tmp_path: Path):
    devtools.open(xss_site / "index.html")
    _no_injection(devtools)
    ev = devtools.evaluate
    assert ev("document.querySelectorAll('script').length") == 1  # the site's own board.js
    board_text = ev("document.querySelector('table.board').innerText")
    assert "<b>bold</b>" in board_text and 'evil"><img src=x onerror=alert(5)>' in board_text
    assert NOTE in board_text
    assert XSS[0] in ev("document.querySelector('h1').innerText")
    keep_screenshot(devtools.screenshot(tmp_path / "board-xss-index.png"))
    assert (tmp_path / "board-xss-index.png").stat().st_size > 10_000

    pages = sorted((xss_site / "s").glob("*.html"))
    assert len(pages) == 2
    for page in pages:
        devtools.open(page)
        _no_injection(devtools)
        assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "3"
        text = ev("document.querySelector('.browser').innerText")
        assert XSS[0] in text and XSS[2] in text  # references
        assert NOTE in ev("document.querySelector('p.note').innerText")
    caps = ev("[...document.querySelectorAll('.sample .caption')].map(e => e.textContent)")
    devtools.open(pages[0])
    caps0 = ev("[...document.querySelectorAll('.sample .caption')].map(e => e.textContent)")
    assert XSS[1] in caps0 + caps and XSS[0] in caps0 + caps
    keep_screenshot(devtools.screenshot(tmp_path / "board-xss-submission.png"))

    slugs = [p.stem for p in pages]
    devtools.open(xss_site / "compare.html")
    devtools.evaluate(f"var a = document.querySelector('.pick-a'); a.value = {json.dumps(slugs[0])};"
                      "a.dispatchEvent(new Event('change'))")
    devtools.pump(1.0)
    _no_injection(devtools)
    assert ev("document.querySelector('.compare').getAttribute('data-rendered')") == "3"
    text = ev("document.querySelector('.compare').innerText")
    assert "3 shared samples" in text
    for payload in XSS:
        assert payload in text
    keep_screenshot(devtools.screenshot(tmp_path / "board-xss-compare.png"))


def test_thumb_board_site_sorts_browses_and_compares(thumb_board: Path, tmp_path: Path,  # noqa: F811
                                                     devtools: DevTools):
    site = build_site(thumb_board, tmp_path / "site", params=FAST)
    doc = json.loads((site / "board.json").read_text())
    track = doc["tracks"][0]
    devtools.open(site / "index.html")
    ev = devtools.evaluate
    assert ev("document.querySelectorAll('table.board tbody tr').length") == 5
    # sort by CIDEr: best first; tier cells coloured by tier
    ev("[...document.querySelectorAll('table.board thead th')].find(t => t.textContent.trim() === 'cider').click()")
    order = ev("[...document.querySelectorAll('table.board tbody tr')].map(r => r.cells[1].querySelector('a')"
               ".textContent)")
    values = {s["name"]: s["metrics"]["cider"]["value"] for s in track["submissions"]}
    assert order == sorted(values, key=lambda n: -values[n])
    tiers = ev("[...document.querySelectorAll('table.board tbody tr')].map(r => r.cells[8].className)")
    ranks = {s["name"]: s["metrics"]["cider"]["rank"] for s in track["submissions"]}
    assert tiers == [f"num tier-{ranks[n]}" for n in order]
    keep_screenshot(devtools.screenshot(tmp_path / "board-thumb-index.png"))
    assert devtools.errors() == [] and devtools.dialogs == []

    sub = next(s for s in track["submissions"] if s["name"] == "VinVL-large")
    devtools.open(site / "s" / f"{sub['slug']}.html")
    assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "20"
    assert "100 of 100 samples" in ev("document.querySelector('.browser .status').textContent")
    ev("document.querySelector('.browser .next').click()")
    assert ev("document.querySelector('.browser .page').textContent") == "page 2 of 5"
    assert devtools.errors() == [] and devtools.dialogs == []

    other = next(s for s in track["submissions"] if s["name"] == "Human")
    devtools.open(site / "compare.html")
    ev(f"var a = document.querySelector('.pick-a'); a.value = {json.dumps(sub['slug'])};"
       "a.dispatchEvent(new Event('change'));"
       f"var b = document.querySelector('.pick-b'); b.value = {json.dumps(other['slug'])};"
       "b.dispatchEvent(new Event('change'))")
    devtools.pump(1.0)
    assert ev("document.querySelector('.compare').getAttribute('data-rendered')") == "100"
    assert ev("document.querySelectorAll('.wins .sample').length") == 10
    summary = ev("document.querySelector('.compare .summary').textContent")
    assert summary.startswith("VinVL-large vs Human on bleu_1: 100 shared samples")
    keep_screenshot(devtools.screenshot(tmp_path / "board-thumb-compare.png"))
    assert devtools.errors() == [] and devtools.dialogs == []

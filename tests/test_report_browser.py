"""The HTML report in headless Chromium: it renders, runs its JS without console errors, and injected markup
in captions never executes (the issue's render and XSS tests).

Chromium is driven two ways: plain command-line runs (``--screenshot``, ``--dump-dom``, ``--enable-logging``),
and the DevTools protocol over ``--remote-debugging-pipe`` (no extra package), which reports alert dialogs,
console messages and exceptions one by one and lets the test click through the sample browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from test_report import large_report, make_xss_run, thumb_run_dir

from capeval.report import build_report
from capeval.rundir import load_run

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs the Debian "
                                                          "package `chromium`)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.environ.get("CAPEVAL_SCREENSHOT_DIR")  # keep screenshots here to look at them

XSS = ["<script>alert(1)</script>", "</script><script>alert(2)</script>", '"><img src=x onerror=alert(3)>']


def run_chromium(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    """One command-line Chromium run with a fresh profile directory."""
    with tempfile.TemporaryDirectory(prefix="capeval-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


class DevTools:
    """Chromium driven through the DevTools protocol on a pipe (fds 3 and 4): NUL-separated JSON messages."""

    def __init__(self, width: int = 1400, height: int = 2000) -> None:
        self.profile = tempfile.mkdtemp(prefix="capeval-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:
            # In the child: Chromium reads commands on fd 3 and writes replies on fd 4. dup2 makes both
            # inheritable; everything else Python opened is close-on-exec, hence close_fds=False.
            read_copy, write_copy = os.dup(to_chrome_r), os.dup(from_chrome_w)  # a < b: no overlap below
            os.dup2(read_copy, 3)
            os.dup2(write_copy, 4)
            os.set_inheritable(3, True)  # dup2 onto itself (when read_copy == 3) keeps close-on-exec
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            close_fds=False, preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.dialogs: list[dict] = []
        self.console: list[dict] = []
        self.exceptions: list[dict] = []
        self.log_entries: list[dict] = []
        self.loaded = False

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _receive(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(params)
            self._send("Page.handleJavaScriptDialog", {"accept": False}, msg.get("sessionId"))
        elif method == "Runtime.consoleAPICalled":
            self.console.append(params)
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(params)
        elif method == "Log.entryAdded":
            self.log_entries.append(params.get("entry", {}))
        elif method == "Page.loadEventFired":
            self.loaded = True

    def call(self, method: str, params: dict | None = None, timeout: float = 60, page: bool = True) -> dict:
        """Send a command (to the page session by default) and return its result, handling events meanwhile."""
        mid = self._send(method, params, self.session if page else None)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(max(0.0, deadline - time.monotonic()))
            if msg is None:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def pump(self, seconds: float) -> None:
        """Handle events for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self._receive(deadline - time.monotonic())
            if msg is not None:
                self._event(msg)

    def open(self, path: Path, timeout: float = 90) -> float:
        """Load a file and wait until the report's JS has initialised; returns the seconds it took."""
        if not path.is_file():
            raise FileNotFoundError(path)
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 page=False)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(domain)
        started = time.monotonic()
        self.loaded = False
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, timeout=timeout)
        while time.monotonic() - started < timeout:
            if self.loaded and self.evaluate("document.body && document.body.getAttribute('data-ready')") == "1":
                return time.monotonic() - started
            self.pump(0.2)
        raise TimeoutError(f"{path} did not finish loading within {timeout} s")

    def evaluate(self, expression: str):
        """Evaluate JS in the page and return its (JSON) value."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport."""
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Console errors/assertions, uncaught exceptions and error log entries seen so far."""
        out = [f"console.{c['type']}: {c.get('args')}" for c in self.console if c.get("type") in ("error", "assert")]
        out += [f"exception: {e.get('exceptionDetails', {}).get('text')} "
                f"{e.get('exceptionDetails', {}).get('exception', {}).get('description')}" for e in self.exceptions]
        out += [f"log {e.get('source')}: {e.get('text')}" for e in self.log_entries if e.get("level") == "error"]
        return out

    def close(self) -> None:
        """Close the browser (killing it when it does not exit) and remove its profile."""
        try:
            self._send("Browser.close")
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=15)
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                with contextlib.suppress(OSError):
                    os.close(fd)
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture()
def devtools():
    browser = DevTools()
    try:
        yield browser
    finally:
        browser.close()


def keep_screenshot(path: Path) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENSHOTS) / path.name)


@pytest.fixture(scope="module")
def thumb_run(thumb, tmp_path_factory) -> Path:
    """A real run: 50 THumB images x 5 captioners, COCO metrics (shared with test_report.py)."""
    return thumb_run_dir(thumb, tmp_path_factory)


@pytest.fixture(scope="module")
def thumb_report(thumb_run, tmp_path_factory) -> Path:
    """Its report, with image thumbnails."""
    from PIL import Image, ImageDraw

    run = thumb_run
    base = tmp_path_factory.mktemp("thumb-report-images")
    images = base / "images"
    images.mkdir()
    for k, sid in enumerate(list(load_run(run).references)[:45]):  # 5 images missing on purpose
        img = Image.new("RGB", (320, 240), (40 + 4 * k, 90, 200 - 3 * k))
        ImageDraw.Draw(img).text((20, 100), f"image {sid}", fill=(255, 255, 255))
        img.save(images / f"COCO_val2014_{int(sid):012d}.jpg")
    return build_report([run], base / "report.html", images_dir=images)


def test_render_command_line_screenshot_and_dom(thumb_report: Path, tmp_path: Path):
    """The flags of the issue: a screenshot, no console output at all (the report logs nothing), and the DOM
    after the JS ran holds one rendered page of the sample browser with thumbnails."""
    shot = tmp_path / "report-thumb50.png"
    proc = run_chromium(["--enable-logging=stderr", "--v=0", "--window-size=1400,2000", f"--screenshot={shot}",
                         thumb_report.as_uri()])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 50_000  # a rendered page, not a blank one
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    keep_screenshot(shot)

    dom = run_chromium(["--dump-dom", "--virtual-time-budget=5000", thumb_report.as_uri()]).stdout
    assert 'data-ready="1"' in dom
    assert 'data-rendered="20"' in dom
    assert dom.count('<article class="sample">') == 20
    assert dom.count('src="data:image/jpeg;base64,') >= 18  # 45 of 50 images exist; page 1 shows 20 samples


def test_render_devtools_no_errors_and_browser_works(thumb_run: Path, thumb_report: Path, devtools: DevTools,
                                                      tmp_path: Path):
    """Every section renders; sorting, tabs, search, filters and paging work; no console error."""
    seconds = devtools.open(thumb_report)
    assert seconds < 30
    ev = devtools.evaluate
    assert ev("document.querySelectorAll('table.leaderboard tbody tr').length") == 5
    assert ev("document.querySelectorAll('.charts svg').length") == 7
    assert ev("document.querySelectorAll('.matrices svg').length") == 7
    assert ev("document.querySelectorAll('.matrices figure:not([hidden])').length") == 1
    assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "20"
    assert ev("document.querySelectorAll('.sample img').length") >= 18

    # sort the leaderboard by CIDEr: the first click puts the best first
    ev("[...document.querySelectorAll('table.leaderboard thead th')].find(t => t.textContent.trim() === 'cider')"
       ".click()")
    order = ev("[...document.querySelectorAll('table.leaderboard tbody tr')].map(r => r.cells[0].textContent)")
    summary = json.loads((thumb_run / "summary.json").read_text())["captioners"]
    assert order == sorted(summary, key=lambda c: -summary[c]["cider"]["mean"])
    # switch the pairwise matrix
    ev("document.querySelectorAll('.tabs button')[6].click()")
    assert ev("[...document.querySelectorAll('.matrices figure')].findIndex(f => !f.hidden)") == 6
    # page 2, then 3 (50 samples, 20 per page: 10 on the last page)
    ev("document.querySelector('.browser .pager button:last-child').click()")
    ev("document.querySelector('.browser .pager button:last-child').click()")
    assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "10"
    # search for one sample's caption
    run_caps = json.loads(ev("document.getElementById('g0-data').textContent"))["caps"]
    needle = run_caps[7][0]
    ev(f"var s = document.querySelector('.browser input[type=search]'); s.value = {json.dumps(needle)};"
       "s.dispatchEvent(new Event('input'))")
    devtools.pump(0.5)
    hits = ev("[...document.querySelectorAll('.sample td.caption')].map(td => td.textContent)")
    assert needle in hits
    # one captioner only, sorted by its CIDEr, lowest first
    ev("var s = document.querySelector('.browser input[type=search]'); s.value = ''; "
       "s.dispatchEvent(new Event('input'))")
    devtools.pump(0.5)
    ev("var c = document.querySelectorAll('.browser select')[0]; c.value = '2'; c.dispatchEvent(new Event('change'));"
       "var o = document.querySelectorAll('.browser select')[1]; o.value = 'v6'; o.dispatchEvent(new Event('change'))")
    rows = ev("[...document.querySelectorAll('.sample table.caps tbody tr')].map(r => r.cells[0].textContent)")
    assert set(rows) == {"VinVL-base"} and len(rows) == 20
    ciders = ev("[...document.querySelectorAll('.sample table.caps tbody tr')].map(r => parseFloat(r.cells[8]"
                ".textContent))")
    assert ciders == sorted(ciders)
    shot = devtools.screenshot(tmp_path / "report-thumb50-browser.png")
    keep_screenshot(shot)
    assert devtools.errors() == []
    assert devtools.dialogs == []


def test_xss_payloads_stay_text_in_chromium(tmp_path: Path, devtools: DevTools):
    """Captions, references, captioner names and judge reasons holding script payloads: no dialog, no error,
    no injected element; the payloads are visible as text."""
    report = build_report([make_xss_run(tmp_path / "run")], tmp_path / "xss.html")
    devtools.open(report)
    devtools.pump(1.0)  # give any injected handler (img onerror) time to fire
    assert devtools.dialogs == [], devtools.dialogs
    assert devtools.errors() == []
    ev = devtools.evaluate
    assert ev("document.querySelectorAll('img[src=x], [onerror], [onload]').length") == 0
    assert ev("document.querySelectorAll('script').length") == 2  # the JSON blob and the report's own JS
    text = ev("document.querySelector('.browser').innerText")
    for payload in XSS:
        assert payload in text
    leaderboard = ev("document.querySelector('table.leaderboard').innerText")
    assert "<b>bold</b>" in leaderboard
    keep_screenshot(devtools.screenshot(tmp_path / "report-xss.png"))


@pytest.mark.slow
def test_large_run_renders_in_chromium(tmp_path: Path, tmp_path_factory, devtools: DevTools):
    """10,000 images x 10 captioners: the page opens, shows page 1, pages and searches without errors."""
    report, _ = large_report(tmp_path_factory)
    seconds = devtools.open(report, timeout=120)
    print(f"\n10k x 10 report: {report.stat().st_size / 1e6:.1f} MB, ready in Chromium after {seconds:.1f} s")
    ev = devtools.evaluate
    assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "20"
    assert "of 10,000 matching" in ev("document.querySelector('.browser .status').textContent")
    ev("var j = document.querySelector('.browser .pager input'); j.value = '500'; j.dispatchEvent(new Event('change'))")
    assert ev("document.querySelector('.sample .sid').textContent") == "id 109980"
    ev("var s = document.querySelector('.browser input[type=search]'); s.value = '104242';"
       "s.dispatchEvent(new Event('input'))")
    devtools.pump(1.0)
    assert ev("document.querySelector('.browser').getAttribute('data-rendered')") == "1"
    keep_screenshot(devtools.screenshot(tmp_path / "report-10k.png"))
    assert devtools.errors() == []
    assert seconds < 60

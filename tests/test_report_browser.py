"""The report pages in a real headless Chromium (Debian's package), driven over the DevTools
protocol on a pipe (--remote-debugging-pipe: no port, no extra package): every tab opens, draws
at least one non-empty plot, the page logs no error, and nothing is fetched from the network.

The fixture installs ``chromium`` with apt when it is missing; where it cannot, the tests skip
(and fail under GROKKING_REQUIRE_SERVICES=1, as CI runs them). With GROKKING_REPORT_SCREENSHOTS=<dir>
the tab screenshots are kept there (docs/figures/report_*.png come from this).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FAST, REPO, run
from tests.services import unavailable

pytestmark = pytest.mark.slow

# small, real runs: an MLP that groks (a+b) mod 47, and a one-layer transformer on (a+b) mod 23
MLP_RUN = FAST + ["steps=300", "checkpoint_every=100"]
TRANSFORMER_RUN = ["model=transformer", "p=23", "frac=0.5", "model.width=32", "model.heads=2", "model.d_mlp=64",
                   "steps=150", "checkpoint_every=30", "progress=none"]
RUN_TABS = ("training", "fourier", "evolution", "model-output", "attention", "neurons", "progress-measures", "mechanism")


def find_chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path, installed from the Debian mirror when missing."""
    path = find_chromium()
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900)
        path = find_chromium()
    if path is None:
        unavailable("no chromium, and `apt-get install chromium` is not possible here")
    return path


class Browser:
    """One headless Chromium and one page, spoken to over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, executable: str, profile: Path):
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def wire():  # the child reads commands on fd 3 and answers on fd 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--hide-scrollbars", "--no-first-run", "--disable-extensions", "--window-size=1400,1000",
             f"--user-data-dir={profile}"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.events = b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path, timeout: float = 120) -> None:
        """Load ``path``; the events seen so far (of an earlier page) are dropped."""
        self.events = []
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        deadline = time.time() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.time() < deadline, f"{path} did not finish loading in {timeout} s"
            self.events.append(self._read())

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "") + str(params["exceptionDetails"].get("exception", {}).get("description", "")))
            elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._writer)
        os.close(self._reader)


@pytest.fixture
def browser(chromium, tmp_path):
    b = Browser(chromium, tmp_path / "profile")
    yield b
    b.close()


# what a tab shows: per plot div, whether plotly drew it and how many of its traces hold data
TAB_STATE = """(() => {
  const section = document.getElementById(%s);
  return Array.from(section.querySelectorAll('.plot')).map(div => ({
    drawn: !!div.querySelector('.main-svg'),
    traces: (div.data || []).filter(t => ['x', 'y', 'z', 'cells', 'values'].some(k => {
      const v = t[k]; return v && (v.length > 0 || (v.bdata && v.bdata.length > 0) || (v.values && v.values.length));
    })).length,
  }));
})()"""


def check_tabs(browser: Browser, page: Path, expected: dict[str, bool], shots: Path | None, prefix: str) -> dict:
    """Open ``page``, then each tab: those expected to apply draw a plot with data, the others say
    why they are absent. Returns tab -> plot states."""
    browser.open(page)
    states = {}
    for tab, applies in expected.items():
        browser.evaluate(f"showTab('tab-{tab}')")
        deadline = time.time() + 60
        while True:
            state = browser.evaluate(TAB_STATE % json.dumps(f"tab-{tab}"))
            if all(s["drawn"] for s in state) or time.time() > deadline:
                break
            time.sleep(0.2)
        states[tab] = state
        if applies:
            assert state and all(s["drawn"] for s in state), (tab, state)
            assert any(s["traces"] > 0 for s in state), (tab, state)
        else:
            why = browser.evaluate(f"document.querySelector('#tab-{tab} .absent-why').textContent")
            assert why.startswith("Not shown for this run:"), (tab, why)
        if shots:
            browser.screenshot(shots / f"{prefix}_{tab}.png")
    assert browser.errors() == []
    assert [u for u in browser.requested() if not u.startswith(("file:", "data:", "blob:"))] == []
    return states


def report(folder: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "grokking.report", str(folder), "--quiet"], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


def screenshots() -> Path | None:
    folder = os.environ.get("GROKKING_REPORT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) if folder else None


def test_transformer_report_opens_offline_with_every_tab_drawn(browser, tmp_path):
    run(tmp_path, TRANSFORMER_RUN)
    report(tmp_path)
    page = tmp_path / "report.html"
    assert 4e6 < page.stat().st_size < 10e6  # plotly.js inline, and the figures
    assert "<script src=" not in page.read_text()
    check_tabs(browser, page, {tab: tab != "mechanism" for tab in RUN_TABS}, screenshots(), "report_transformer")


def test_mlp_report_opens_offline_and_the_slider_moves(browser, tmp_path):
    run(tmp_path, MLP_RUN)
    report(tmp_path)
    page = tmp_path / "report.html"
    expected = {tab: tab not in ("attention", "progress-measures") for tab in RUN_TABS}
    expected["progress-measures"] = True  # the logits' cosine coefficients apply to any model on (a+b) mod p
    check_tabs(browser, page, expected, screenshots(), "report_mlp")
    browser.evaluate("showTab('tab-evolution')")
    slider = "document.querySelector('#tab-evolution .plot')"
    shown = f"{slider}.data.map((t, i) => t.visible === true || t.visible === undefined ? i : -1).filter(i => i >= 0)"
    last = browser.evaluate(shown)
    # what dragging the slider to its first step does: move the handle, apply that step's update
    browser.evaluate(f"Plotly.relayout({slider}, {{'sliders[0].active': 0}}).then(() => "
                     f"Plotly.update({slider}, ...{slider}.layout.sliders[0].steps[0].args)).then(() => true)")
    first = browser.evaluate(shown)
    assert last != first and len(first) == 3 == len(last)
    assert browser.errors() == []


def test_sweep_report_shares_one_plotly_and_links_every_run(browser, tmp_path):
    grid = ["-m", *FAST, "wd=0.3,1.0", "steps=200", "checkpoint_every=100", f"out_dir={tmp_path}", "sweep_name=tiny"]
    result = subprocess.run([sys.executable, "-m", "grokking.train", *grid], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweeps" / "tiny"
    report(sweep)
    assert (sweep / "plotly.min.js").stat().st_size > 3e6
    run_pages = sorted(sweep.glob("*/report.html"))
    assert len(run_pages) == 2 and all(p.stat().st_size < 3e6 for p in run_pages)
    assert all('<script src="../plotly.min.js">' in p.read_text() for p in run_pages)
    check_tabs(browser, sweep / "report.html", {"phase-diagram": True, "curves": True}, screenshots(), "report_sweep")
    cells = "Array.from(document.querySelectorAll('#tab-phase-diagram .textpoint')).map(t => t.textContent)"
    assert browser.evaluate(cells) == ["never 0/1", "never 0/1"]  # 200 steps: neither run grokked
    links = browser.evaluate("Array.from(document.querySelectorAll('table.runs a')).map(a => a.href)")
    assert sorted(Path(link.removeprefix("file://")).resolve() for link in links) == [p.resolve() for p in run_pages]
    rows = "Array.from(document.querySelectorAll('table.runs tbody tr')).map(r => r.cells[1].textContent)"
    browser.evaluate("sortTable(document.querySelectorAll('table.runs th')[1])")
    ascending = browser.evaluate(rows)
    browser.evaluate("sortTable(document.querySelectorAll('table.runs th')[1])")
    assert browser.evaluate(rows) == ascending[::-1] and ascending == sorted(ascending, key=float)
    check_tabs(browser, run_pages[0], {"training": True, "fourier": True}, None, "")

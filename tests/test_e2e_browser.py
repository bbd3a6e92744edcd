"""The studio end to end in a real browser: demo, live curves, Stop, refresh, second tab, a DKD run
picked on the Distill page with its terms on Live and its name on Compare, then a server restart,
the runs still listed, and a CSV download.

Starts ``streamlit run app.py`` on a free loopback port with its own DISTILL_STUDIO_HOME and
drives Debian's chromium through Playwright (never ``playwright install``). Outside CI a missing
browser skips the test; with CI=true it fails. Screenshots of every open page are saved when a
step fails (DISTILL_E2E_ARTIFACTS, default: the test's tmp folder).

The stopped run is the real demo preset; the run that goes to the end is the same preset
with fewer epochs from the URL, to keep the test short, distilled with DKD picked on the page.
DISTILL_E2E_FULL=1 runs the full preset.
"""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from studio.form import PRESETS

DEMO_BUTTON = f"Run the {PRESETS['demo'].label}"

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL = ("http://127.0.0.1:", "data:", "blob:", "about:")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHORT_RUN = "" if os.environ.get("DISTILL_E2E_FULL") else "?teacher_epochs=1&epochs=2"

# Number of points drawn in the live loss chart, read from Plotly's own graph div (in the frame of
# studio.live_view); -1 in any other frame.
LOSS_POINTS_JS = """() => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
    (p) => p.data && p.layout && p.layout.title && p.layout.title.text === 'Training loss');
  return plot ? plot.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : -1;
}"""


# The names of the live loss chart's lines (the distilled student's terms among them).
LOSS_NAMES_JS = """() => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
    (p) => p.data && p.layout && p.layout.title && p.layout.title.text === 'Training loss');
  return plot ? plot.data.map((t) => t.name) : [];
}"""


def loss_names(page) -> list[str]:
    names = []
    for frame in page.frames:
        try:
            names += frame.evaluate(LOSS_NAMES_JS)
        except Exception:  # a frame that is being replaced
            pass
    return names

# The Learn page's soft-target bars, as plotly drew them: each bar's SVG path ("" until drawn).
BARS_JS = """() => [...document.querySelectorAll('.js-plotly-plot .barlayer .point path')]
  .map((bar) => bar.getAttribute('d')).join(' ')"""


def need(condition: bool, reason: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser test must run)")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free loopback port; ``restart`` keeps the port and the home."""

    def __init__(self, home: Path, log_path: Path):
        self.home, self.log_path = home, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        user_home = self.log_path.parent / "user_home"  # what Streamlit writes of its own stays here
        user_home.mkdir(exist_ok=True)
        env = {**os.environ, "DISTILL_STUDIO_HOME": str(self.home), "HOME": str(user_home), "PYTHONUNBUFFERED": "1"}
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                pytest.fail(f"streamlit did not start; log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __add__(self, path: str) -> str:  # server + "/live"
        return self.url + path


@pytest.fixture
def server(studio_home, tmp_path):
    srv = Server(studio_home, tmp_path / "streamlit.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def browser(tmp_path_factory):
    need(Path(CHROMIUM).exists(), f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright Python package is not installed (pip install -r requirements.txt)")
    with sync_playwright() as p:
        # Chromium's profile, crash reports and caches go to a home of the test's own.
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                              env={**os.environ, "HOME": str(tmp_path_factory.mktemp("chromium_home"))})
        yield b
        b.close()


def wait_for_text(page, text: str | re.Pattern, timeout_s: float) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_s * 1000)


def button(page, name: str):
    """An app button (Streamlit's own header has a "Stop" button too)."""
    return page.get_by_test_id("stButton").get_by_role("button", name=name)


def loss_points(page) -> int:
    counts = [-1]
    for frame in page.frames:
        try:
            counts.append(frame.evaluate(LOSS_POINTS_JS))
        except Exception:  # a frame that is being replaced
            pass
    return max(counts)


def in_a_frame(page, text: str | re.Pattern) -> bool:
    """Whether one of the page's frames shows ``text`` (the Live page's frame is replaced as it reruns)."""
    for frame in page.frames:
        try:
            if frame.get_by_text(text).count():
                return True
        except Exception:  # a frame that is being replaced
            pass
    return False


def wait_until(check, timeout_s: float, what: str, interval: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def screenshot_pages(context, tmp_path: Path, prefix: str) -> Path:
    """Every page of a failed test's browser context, as <prefix>failure-<i>.png in
    $DISTILL_E2E_ARTIFACTS if set, else tmp_path/screenshots; returns that folder."""
    artifacts = Path(os.environ.get("DISTILL_E2E_ARTIFACTS", tmp_path / "screenshots"))
    artifacts.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(context.pages):
        try:
            p.screenshot(path=str(artifacts / f"{prefix}failure-{i}.png"), full_page=True)
        except Exception:  # noqa: BLE001 - a screenshot must not hide the real failure
            pass
    return artifacts


class Visit:
    """One test's browser context and first page; ``step`` says what the test is doing, for the report
    of a failure."""

    def __init__(self, context):
        self.context, self.page, self.step = context, context.new_page(), "open the first page"


@contextmanager
def visit(browser, tmp_path: Path, name: str, size=(1400, 1100), server_log: Path | None = None):
    """A fresh browser context for one test, closed at the end. When the test fails: the step it was
    at and the page's address, screenshots of every open page (``screenshot_pages``) and, given
    ``server_log``, the server log's last lines."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    # Nothing leaves this machine, even if a page asked for it (the tests that check that no page
    # asks still see the request).
    context.route(lambda url: not url.startswith(LOCAL), lambda route: route.abort())
    v = Visit(context)
    try:
        yield v
    except BaseException:
        artifacts = screenshot_pages(context, tmp_path, f"{name}-")
        print(f"e2e {name} failed at step: {v.step} (at {v.page.url}); screenshots in {artifacts}")
        if server_log is not None and server_log.exists():
            print(f"server log:\n{server_log.read_text()[-3000:]}")
        raise
    finally:
        context.close()


def test_demo_stop_refresh_second_tab_and_compare(server, browser, tmp_path):
    with visit(browser, tmp_path, "demo", server_log=server.log_path) as v:
        context, page = v.context, v.page
        outside = []  # requests that leave this machine: an offline workshop would wait on them
        context.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
            (server + "/", "data:", "blob:", "about:")) else None)
        v.step = "open a deep link on a fresh server"
        # A shared link as the very first request still goes through app.py's navigation.
        page.goto(server + "/compare")
        wait_for_text(page, "No finished run yet", 60)
        assert page.get_by_role("link", name="Live run").count() >= 1
        # The tab's icon is app.py's drawn SVG, inline: no emoji font needed, nothing fetched.
        wait_until(lambda: page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href")
                   .startswith("data:image/svg+xml"), 10, "the drawn favicon")

        v.step = "launch the demo from Home"
        page.goto(server + "/")
        button(page, DEMO_BUTTON).click()
        page.wait_for_url("**/live?job=*", timeout=30_000)
        job = page.url.split("job=")[1].split("&")[0]
        wait_for_text(page, "running", 30)

        v.step = "see the curves gain points while the user does nothing"
        first = wait_until(lambda: max(0, loss_points(page)), 90, "the first loss points")
        wait_until(lambda: loss_points(page) > first, 30, "the curve to gain points")

        v.step = "refresh and a second tab reattach to the running job"
        page.reload()
        wait_for_text(page, job, 30)
        wait_until(lambda: loss_points(page) > 0, 30, "the curves after a refresh")
        other = context.new_page()
        other.goto(server + "/live")  # no job id: shows the job that is running
        wait_for_text(other, job, 30)
        wait_for_text(other, "running", 30)
        other.close()

        v.step = "press Stop and see cancelled"
        button(page, "Stop").click()
        wait_for_text(page, re.compile("No model of this run finished before the stop|Kept from before the stop"), 60)

        v.step = "pick dkd on the Distill page, and run it to the end"
        page.goto(server + "/distill" + SHORT_RUN)
        start = button(page, "Start")
        start.wait_for(state="visible", timeout=30_000)
        page.get_by_test_id("stSelectbox").filter(has_text="Distillation method").click()
        page.get_by_role("option", name="dkd  ·  Decoupled KD (2022)").click()
        wait_for_text(page, "Decoupled Knowledge Distillation", 30)  # its paper, beside the selector
        wait_until(lambda: "method=dkd" in page.url, 30, "the method in the link")
        start.click()
        page.wait_for_url("**/live?job=*", timeout=30_000)
        assert page.url.split("job=")[1].split("&")[0] != job
        wait_for_text(page, "dkd · T = 4", 30)  # the Live header names the method and what it reads
        button(page, "See the comparison").wait_for(
            state="visible", timeout=(600 if not SHORT_RUN else 240) * 1000)
        names = wait_until(lambda: loss_names(page), 30, "the loss chart's lines")
        assert {"a·TCKD (target class)", "b·NCKD (other classes)", "CE (true labels)"} <= set(names), names

        v.step = "see the three rows on Compare"
        button(page, "See the comparison").click()
        page.wait_for_url("**/compare?run=*", timeout=30_000)
        table = page.locator("table").first
        table.wait_for(state="visible", timeout=30_000)
        rows = table.locator("tbody tr")
        assert rows.count() == 3, table.inner_text()
        cells = [rows.nth(i).inner_text() for i in range(3)]
        for row, name in zip(cells, ("teacher", "scratch student", "distilled student")):
            assert row.strip().startswith(name), cells
        wait_for_text(page, "KD gain over scratch", 10)
        assert "%" in cells[2]
        wait_for_text(page, "method dkd", 10)  # the header line
        wait_for_text(page, "The student distilled with dkd (Decoupled KD)", 10)  # what distillation bought
        finished = page.url.split("run=")[1].split("&")[0]

        v.step = "restart the server and find both runs still listed"
        server.restart()
        page.goto(server + "/runs")
        wait_for_text(page, "One run", 60)
        page.get_by_test_id("stDataFrame").first.wait_for(state="visible", timeout=30_000)
        for run_id in (job, finished):  # the newest runs are preselected for the overlay
            wait_until(lambda: run_id in page.content(), 30, f"run {run_id} in the Runs page")

        v.step = "download the finished run's metrics as CSV"
        with page.expect_download(timeout=60_000) as download:
            page.get_by_test_id("stDownloadButton").get_by_role("button", name="Metrics (CSV)").click()
        csv_text = Path(download.value.path()).read_text()
        header = csv_text.splitlines()[0].split(",")
        assert header[:3] == ["run_id", "model", "epoch"] and "val_accuracy" in header, header
        assert "train_tckd" in header and "train_nckd" in header, header  # DKD's own terms travel too
        body = csv_text.splitlines()[1:]
        assert body and all(line.startswith(finished) for line in body), body[:3]
        assert {"teacher", "student_scratch", "student_kd"} <= {line.split(",")[1] for line in body}

        v.step = "move the temperature on the Learn page and see the bars change"
        page.goto(server + f"/learn?run={finished}")
        wait_for_text(page, "1. What the teacher knows", 60)
        before = wait_until(lambda: page.evaluate(BARS_JS), 60, "the soft-target bars")
        page.get_by_role("slider", name="Temperature T").focus()
        page.keyboard.press("End")  # T = 20: the teacher's belief spreads over the classes
        wait_until(lambda: page.evaluate(BARS_JS) not in ("", before), 30, "the bars to follow the temperature")
        wait_for_text(page, "Soft targets at T = 20", 10)

        v.step = "nothing was fetched from outside this machine"
        assert not outside, sorted(set(outside))


def test_the_what_does_t_do_preset_runs_end_to_end_and_fills_the_heatmap(server, browser, tmp_path):
    """The workshop preset's grid (T in 1, 2, 4, 8, 16 at alpha 0.9, two seeds) at a reduced size: the
    recipe from the link (digits, small models, one epoch), so ten trials take a minute or two."""
    with visit(browser, tmp_path, "sweep", server_log=server.log_path) as v:
        page = v.page
        v.step = "open the sweep's link"
        page.goto(server + "/sweep?dataset=digits&teacher=cnn_small&student=cnn_tiny&epochs=1&teacher_epochs=1"
                           "&latency_repeats=5&latency_batch=8")
        button(page, "What does T do?").wait_for(state="visible", timeout=60_000)
        v.step = "apply the preset, then the reduced recipe again from the link"
        button(page, "What does T do?").click()
        wait_for_text(page, "10 trials: 5 T × 2 seeds", 30)
        assert "temperature=1%2C2%2C4%2C8%2C16" in page.url or "temperature=1,2,4,8,16" in page.url, page.url
        page.goto(server + "/sweep?dataset=digits&teacher=cnn_small&student=cnn_tiny&epochs=1&teacher_epochs=1"
                           "&latency_repeats=5&latency_batch=8&temperature=1,2,4,8,16&alpha=0.9&seeds=0,1")
        wait_for_text(page, "10 trials: 5 T × 2 seeds", 60)
        v.step = "start it and watch the heatmap fill in"
        button(page, "Start").click()
        v.step = "the Live page draws the running trial's curves, and names the trial"
        live = v.context.new_page()  # at once: the ten trials take about 15 s
        live.goto(server + "/live")  # no job id: the job running now, this sweep
        wait_for_text(live, "Below, the trial training now.", 60)
        wait_until(lambda: in_a_frame(live, re.compile(r"Trial \d+ of 10 \(")), 60, "the frame's label naming the trial")
        live.close()
        v.step = "the heatmap fills in"
        wait_for_text(page, "KD gain over scratch: mean ± std", 60)
        wait_for_text(page, "10 of 10 trials finished", 400)
        wait_for_text(page, re.compile("Best: |No cell gained from the teacher"), 30)  # the verdict
        assert page.locator(".js-plotly-plot").count() >= 1
        v.step = "open a cell's run in Compare"
        page.get_by_role("link", name="seed 0: KD").first.click()
        page.wait_for_url("**/compare?run=*", timeout=30_000)
        wait_for_text(page, "Over 2 seeds", 60)


def test_a_student_derived_from_the_teacher_with_the_weight_anchor(server, browser, tmp_path):
    """Distill's "derived from the teacher": pick it, keep a quarter of the channels, set the anchor, see the
    preview beside the teacher; the anchor is its own line on Live, and Compare says how the student was made."""
    with visit(browser, tmp_path, "derived", server_log=server.log_path) as v:
        page = v.page
        v.step = "open Distill with a small recipe from the link"
        page.goto(server + "/distill?dataset=digits&teacher=resnet8&epochs=2&teacher_epochs=1&latency_repeats=5"
                           "&latency_batch=8")
        start = button(page, "Start")
        start.wait_for(state="visible", timeout=60_000)
        v.step = "derive the student from the teacher"
        page.get_by_test_id("stSelectbox").filter(has_text="Student model").click()
        page.get_by_role("option", name="derived from the teacher").click()
        wait_for_text(page, "Blocks kept per stage", 30)
        wait_for_text(page, "cut from resnet8", 30)  # the preview card beside the teacher's
        # page.url is only refreshed while Playwright is called: the address bar itself is read.
        wait_until(lambda: "student=derived" in page.evaluate("location.href"), 60, "the derived student in the link")
        slider = page.get_by_role("slider", name="Channels kept")
        slider.focus()
        for _ in range(5):  # 0.5 -> 0.25, a step of 0.05 per key
            page.keyboard.press("ArrowLeft")
        wait_until(lambda: "derive_width=0.25" in page.evaluate("location.href"), 60, "a quarter of the channels in the link")
        anchor = page.get_by_role("spinbutton", name="Weight anchor μ")
        anchor.fill("0.01")
        anchor.press("Enter")
        wait_until(lambda: "weight_anchor=0.01" in page.evaluate("location.href"), 60, "the anchor in the link")
        v.step = "start it and see the anchor as its own term on Live"
        start.click()
        page.wait_for_url("**/live?job=*", timeout=30_000)
        button(page, "See the comparison").wait_for(state="visible", timeout=240_000)
        names = wait_until(lambda: loss_names(page), 30, "the loss chart's lines")
        assert any("weight anchor" in n for n in names), names
        v.step = "Compare says how the student was made"
        button(page, "See the comparison").click()
        page.wait_for_url("**/compare?run=*", timeout=30_000)
        wait_for_text(page, "Students: derived from resnet8", 60)
        wait_for_text(page, "initialised from the teacher's weights, weight anchor μ = 0.01", 10)

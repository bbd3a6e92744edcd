"""What does watching a run in the app cost? The same default run, headless and in the app.

    python benchmarks/ui_cost.py [--rounds 2] [--epochs N --teacher-epochs M]

Headless: ``python -m distill_core run`` with a fresh Distill Studio home (so the teacher trains).
App: ``streamlit run app.py`` with a fresh home, Debian's chromium (through Playwright) clicks the
default demo and keeps the Live page open, refreshing every second, until the run ends. With
``--epochs`` / ``--teacher-epochs`` (a longer or shorter run, to see how the cost scales), both
run the demo with those epochs: the app from the Distill page, set up by its URL, and Start.
Both times are the engine's own ``results["seconds"]``, so process start-up is not counted.
Rounds alternate, so drift in machine load hits both alike. Prints each time, the overhead of the
medians and the median of the paired differences, and the CPU time Chromium used from the click
to the end of the run (read from /proc, so Linux only): a steadier figure than wall time on a
busy machine, whose wall times here vary by 10 % or more from one run to the next, split into
opening the Live page (its first seconds) and each second after that. Also from
/proc: how long the run's process (the CLI, or the app's server from the click on) had threads
ready to run but waiting for a core, summed over its threads: the time the browser takes from
training shows there.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
OPENING_S = 4.0  # from the click: the page switch, the frame and plotly.js loading, the first draws


def chromium_cpu_s() -> float:
    """CPU seconds used so far by every running chromium process (0 where /proc is missing)."""
    if not os.path.isdir("/proc"):
        return 0.0
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"chromium" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            pass
    return total


def run_queue_wait_s(pid: int) -> float:
    """Seconds the threads of process ``pid`` spent ready to run but waiting for a core, summed.

    The second field of each thread's /proc schedstat; 0 where it is missing. Threads that
    ended are not counted, so sample before the process's threads end."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            pass
    return total


def headless(home: Path, epochs: dict) -> tuple[float, float]:
    out = home / "cli-run"
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(home)}
    flags = [arg for name, n in epochs.items() for arg in (f"--{name.replace('_', '-')}", str(n))]
    log = home / "cli-stderr.txt"  # a file, not a pipe: a pipe nobody reads until the end can fill and block
    with log.open("wb") as err:
        cli = subprocess.Popen([sys.executable, "-m", "distill_core", "run", "--quiet", "--out", str(out), *flags],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        waited = 0.0
        while cli.poll() is None:  # the last reading before the process ends
            waited = max(waited, run_queue_wait_s(cli.pid))
            time.sleep(0.2)
    if cli.returncode:
        raise SystemExit(f"the headless run failed: {log.read_text()[-2000:]}")
    return json.loads((out / "results.json").read_text())["seconds"], waited


def in_app(home: Path, epochs: dict) -> tuple[float, float, float, tuple[float, float]]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            if epochs:  # the Distill page, set up by its URL (studio/urlstate.py)
                page.goto(url + "/distill?" + "&".join(f"{name}={n}" for name, n in epochs.items()))
                start = page.get_by_role("button", name="Start", exact=True)
            else:
                page.goto(url)
                start = page.get_by_role("button", name=re.compile(r"^Run the .*CPU demo"))
            start.wait_for(state="visible", timeout=60_000)
            cpu_before, wait_before = chromium_cpu_s(), run_queue_wait_s(server.pid)
            clicked = time.time()
            start.click()
            page.wait_for_url("**/live?job=*", timeout=60_000)
            job = page.url.split("job=")[1].split("&")[0]
            results = home / "runs" / job / "results.json"
            while time.time() < clicked + OPENING_S:
                time.sleep(0.02)
            opening = chromium_cpu_s() - cpu_before
            deadline = time.time() + 600
            while not results.exists() and time.time() < deadline:  # written when the run ends
                time.sleep(0.1)
            cpu = chromium_cpu_s() - cpu_before
            rest_s = time.time() - clicked - OPENING_S
            waited = run_queue_wait_s(server.pid) - wait_before
            page.get_by_role("button", name="See the comparison").wait_for(state="visible", timeout=600_000)
            browser.close()
        return json.loads(results.read_text())["seconds"], cpu, waited, (opening, (cpu - opening) / rest_s)
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, help="student epochs (the demo's 8 if not given)")
    p.add_argument("--teacher-epochs", type=int, help="teacher epochs (the demo's 6 if not given)")
    args = p.parse_args()
    epochs = {name: n for name, n in (("epochs", args.epochs), ("teacher_epochs", args.teacher_epochs)) if n}
    times = {"headless (CLI)": [], "app, Live page open": []}
    browser_cpu, parts, waits = [], [], {name: [] for name in times}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            seconds, waited = headless(Path(a), epochs)
            times["headless (CLI)"].append(seconds)
            waits["headless (CLI)"].append(waited)
            seconds, cpu, waited, split = in_app(Path(b), epochs)
            parts.append(split)
            times["app, Live page open"].append(seconds)
            waits["app, Live page open"].append(waited)
            browser_cpu.append(cpu)
    base = statistics.median(times["headless (CLI)"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<22} median {med:6.1f} s  ({', '.join(f'{v:.1f}' for v in values)})  "
              f"overhead {100 * (med / base - 1):+.1f}%")
    paired = statistics.median(b - a for a, b in zip(*times.values()))
    print(f"median paired difference {paired:+.1f} s ({100 * paired / base:+.1f}%); Chromium CPU from the click "
          f"to the end of the run: median {statistics.median(browser_cpu):.1f} s "
          f"({', '.join(f'{c:.1f}' for c in browser_cpu)})")
    print(f"of which opening the Live page (the first {OPENING_S:g} s): median "
          f"{statistics.median(o for o, _ in parts):.2f} s; after that, per second of run: median "
          f"{1000 * statistics.median(r for _, r in parts):.0f} ms of Chromium CPU")
    for name, values in waits.items():
        print(f"{name:<22} threads waiting for a core: median {statistics.median(values):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()

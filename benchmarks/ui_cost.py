"""What does watching a run in the app cost? The same default run, headless and in the app.

    python benchmarks/ui_cost.py [--rounds 2]

Headless: ``python -m distill_core run`` with a fresh Distill Studio home (so the teacher trains).
App: ``streamlit run app.py`` with a fresh home, Debian's chromium (through Playwright) clicks the
one-minute demo and keeps the Live page open, refreshing every second, until the run ends.
Both times are the engine's own ``results["seconds"]``, so process start-up is not counted.
Rounds alternate, so drift in machine load hits both alike. Prints each time and the overhead.
"""
from __future__ import annotations

import argparse
import json
import os
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


def headless(home: Path) -> float:
    out = home / "cli-run"
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "distill_core", "run", "--quiet", "--out", str(out)], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    return json.loads((out / "results.json").read_text())["seconds"]


def in_app(home: Path) -> float:
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
            page.goto(url)
            page.get_by_role("button", name="Run the 1-minute CPU demo (offline)").click()
            page.wait_for_url("**/live?job=*", timeout=60_000)
            job = page.url.split("job=")[1].split("&")[0]
            page.get_by_role("button", name="See the comparison").wait_for(state="visible", timeout=600_000)
            browser.close()
        return json.loads((home / "runs" / job / "results.json").read_text())["seconds"]
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    times = {"headless (CLI)": [], "app, Live page open": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            times["headless (CLI)"].append(headless(Path(a)))
            times["app, Live page open"].append(in_app(Path(b)))
    base = statistics.median(times["headless (CLI)"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<22} median {med:6.1f} s  ({', '.join(f'{v:.1f}' for v in values)})  "
              f"overhead {100 * (med / base - 1):+.1f}%")


if __name__ == "__main__":
    main()

"""What the pages show at a 1024-pixel laptop's width: short labels and values that fit, with the
full wording in their help, and layouts that wrap instead of cutting text.

The widths themselves are seen in a browser (screenshots at 1024 and 1440 px); these tests pin the
choices that made the text fit, so that a later change to a label says why it is as it is.
"""
import json
from pathlib import Path

from distill_core import GAIN_WORDS, RunConfig, comparison_headline, gain_verdict, paths
from distill_core.runs.store import RunStore
from streamlit.proto.Metric_pb2 import Metric
from test_app_pages import TINY, engine, manager, navigation_mode, page, texts  # noqa: F401 - fixtures
from tiny_runs import fake_run

RUN = "20260101-090000-wide"


def stored_run() -> dict:
    return fake_run(RunStore(), RUN, paths.runs_dir())


# ---- Live ---------------------------------------------------------------------------------------
def test_live_header_gives_the_run_id_a_line_of_its_own(engine):
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py", job=job)
    (head,) = [m.value for m in at.markdown if f"`{job}`" in m.value]
    assert head.endswith(f"  \nrun `{job}`")


def test_live_numbers_go_two_by_two_in_a_narrow_frame():
    html = (Path(__file__).resolve().parent.parent / "studio" / "web" / "live_view.html").read_text()
    assert "@media (max-width: 880px) { #metrics { grid-template-columns: repeat(2, minmax(0, 1fr)); } }" in html

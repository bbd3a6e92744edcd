"""The Live page's moving parts: progress, four numbers and two plotly.js charts, in one frame.

Why a component, and why it fetches instead of being rerun: on a 2-core laptop the browser
shares the CPU with training. A fragment rerun every second cost Chromium about 4 % of a core
even with nothing new to show (React re-rendering the page), four changing metrics 3 % more, and
``st.plotly_chart`` remounted both charts on every new point (it hashes the figure into the
element's identity), about 20 %. Here the job manager publishes each running job's state once a
second (studio/live_feed.py) as a small JSON file in this component's folder, which Streamlit
already serves; the frame fetches it, updates a few numbers, and hands the charts to plotly.js,
which redraws in place and keeps the user's zoom. While only points change (the axes have fixed
ranges) it moves the lines with ``Plotly.animate`` and no redraw, half the CPU of
``Plotly.react``. Streamlit reruns the rest of the page only when the run's status or queue
place changes: the frame asks for it.

plotly.js is plotly's "basic" bundle (scatter, bar and pie traces; MIT licence), kept beside this
module, so nothing is downloaded. The full bundle inside the plotly package is four times larger:
parsing it cost Chromium 1.4 s of CPU each time the Live page opened, the basic one 0.3 s. A
component serves files from one folder, so the page, its script and plotly.js are copied into the
studio's home once per server.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional

import streamlit.components.v1 as components

from distill_core import paths, write_atomic

WEB = Path(__file__).with_name("web")
PLOTLY_JS = "plotly-basic.min.js"  # v4.1.1, from npm's plotly.js-basic-dist-min; its licence: plotly-basic.LICENSE
ASSETS = {"index.html": WEB / "live_view.html", "live_view.js": WEB / "live_view.js", PLOTLY_JS: WEB / PLOTLY_JS}
FEED = "feed"  # the sub-folder with one JSON file per job (studio/live_feed.py)


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if not (target.exists() and target.read_bytes() == data):
        write_atomic(target, data)


@functools.lru_cache(maxsize=None)
def assets_folder(home: Path) -> Path:
    """The component's folder in the studio's home, with this version's page, script and plotly.js."""
    folder = home / "web" / "live_view"
    (folder / FEED).mkdir(parents=True, exist_ok=True)
    for name, source in ASSETS.items():
        _copy_if_changed(source, folder / name)
    return folder


@functools.lru_cache(maxsize=None)
def _component(folder: Path) -> Callable:
    return components.declare_component("live_view", path=str(folder))


def live_view(job_id: str, stage: str, smoothing: float, key: str, log_scale: bool = False) -> Optional[str]:
    """Show job ``job_id``'s live state, redrawn from its feed about once a second.

    ``stage`` is what the rest of the page was drawn for (see ``live_feed.stage``). When the
    feed reaches another stage, the frame returns that stage once, which reruns the caller's
    fragment, so the status badge and buttons follow. ``smoothing`` is the loss curves' EMA,
    applied in the frame, so moving the slider needs no new data; ``log_scale`` likewise puts the
    loss axis on a log scale.
    """
    return _component(assets_folder(paths.home()))(feed=f"{FEED}/{job_id}.json", stage=stage,
                                                   smoothing=smoothing, log_scale=log_scale, key=key, default=None)

"""Live Plotly charts that redraw in place, for the Live page's once-a-second curves.

``st.plotly_chart`` hashes the figure into the element's identity, so new data remounts the
chart: a full rebuild every second, which cost a fifth of a CPU core in Chromium on the Live
page (benchmarks/ui_cost.py), CPU that training needs on a small laptop. This component keeps
one plotly.js graph in its own frame and hands each new spec to ``Plotly.react``, which updates
the graph in place, keeps the user's zoom, and skips a spec equal to the last one.

plotly.js is the copy inside the plotly Python package, so nothing is downloaded. A component
serves files from one folder, so the page and plotly.js are copied once into the studio's home.
"""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Callable

import plotly
import streamlit.components.v1 as components

from distill_core import paths

PAGE = Path(__file__).with_name("web") / "live_chart.html"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
CONFIG = {"displaylogo": False}


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.exists() and target.read_bytes() == source.read_bytes():
        return
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, partial)
    os.replace(partial, target)  # a reader never sees half a file, even with two servers


@functools.lru_cache(maxsize=None)
def assets_folder(home: Path) -> Path:
    """The component's folder in the studio's home, with this version's page and plotly.js."""
    folder = home / "web" / f"live_chart-plotly-{plotly.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    _copy_if_changed(PAGE, folder / "index.html")
    _copy_if_changed(PLOTLY_JS, folder / "plotly.min.js")
    return folder


@functools.lru_cache(maxsize=None)
def _component(folder: Path) -> Callable:
    return components.declare_component("live_chart", path=str(folder))


def live_chart(spec: dict, key: str) -> None:
    """Draw ``spec`` (a plotly.js figure: data and layout) in the chart named ``key``."""
    _component(assets_folder(paths.home()))(spec=spec, config=CONFIG, key=key, default=None)

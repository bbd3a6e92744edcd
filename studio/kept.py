"""Widget values that outlive a visit to another page.

Streamlit drops a widget's value from the session once a run does not draw the widget, so a
slider set on one page is back at its default when the user returns. ``keep`` is called before a
page draws its widgets: it copies their values into a key of its own, which Streamlit leaves alone,
and puts them back when Streamlit has dropped them. The widgets then take their values from the
session alone (no ``value=``/``default=``: Streamlit warns when a widget has both).
"""
from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

STORE = "kept_widgets"


def keep(defaults: Mapping[str, Any]) -> None:
    """For each widget key of ``defaults``: its value as it is, the kept copy where Streamlit
    dropped it, else the default."""
    ss = st.session_state
    copy = ss.setdefault(STORE, {})
    for key, default in defaults.items():
        if key in ss:
            copy[key] = ss[key]
        else:
            ss[key] = copy.get(key, default)

"""A page's widget values across visits to other pages, and its URL told apart from a link.

Streamlit forgets a widget's value while another page is shown: a page keeps a copy of its
widgets' values under one session key (``keep``, after it draws them) and puts back the missing
ones before it draws them again (``restore``). ``hold`` does both, with defaults, for widgets
that only the person at the page changes (drawn with no ``value=`` of their own: Streamlit warns
when a widget has both a value and a session state).

A page writes its state into the URL on every run (``write_url``). A URL it did not write came
from a link: a shared address, another page's link with parameters (``link``). The sidebar opens
a page with a bare URL, which is no link: the page carries on as it was left.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import streamlit as st


def restore(name: str) -> None:
    """Put back the kept values whose widgets Streamlit forgot."""
    ss = st.session_state
    for key, value in ss.get(name, {}).items():
        if key not in ss:
            ss[key] = value


def keep(name: str, keys: Iterable[str]) -> None:
    """Keep the widgets' values as they stand now."""
    ss = st.session_state
    ss[name] = {key: ss[key] for key in keys if key in ss}


def hold(name: str, defaults: Mapping[str, Any]) -> None:
    """Before the widgets are drawn: their values as left (kept under ``name``), else the defaults."""
    restore(name)
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    keep(name, defaults)


def link(name: str) -> Optional[dict[str, str]]:
    """The URL's parameters when they came from a link, not from this page's last ``write_url``."""
    params = st.query_params.to_dict()
    return params if params and params != st.session_state.get(name + "_url") else None


def write_url(name: str, params: dict[str, str]) -> None:
    """The address bar holds ``params``; remembered, so that the next run does not read them as a link."""
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[name + "_url"] = dict(params)

"""Make sure a page runs inside app.py's ``st.navigation``.

On a freshly started server, Streamlit (1.4x to 1.6x) runs the very first request for a URL such
as ``/distill`` straight from the ``pages/`` folder, in its old multipage mode, skipping app.py
and its page config (streamlit/streamlit#10276). Each page calls ``require_app()`` first: in
that case it switches Streamlit to ``st.navigation`` mode and reruns, which goes through app.py.
"""
from __future__ import annotations

import streamlit as st


def require_app() -> None:
    try:  # here, not at the top: a Streamlit without the old mode has no such module
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False  # what app.py's st.navigation call sets
        st.rerun()

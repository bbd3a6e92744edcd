"""One layout Streamlit has no widget for: a row of equal boxes that wraps where they do not fit.

``st.columns`` keeps its columns side by side down to a phone's width, so on a 1024-pixel laptop
four metric cards cut their numbers ("-3.1…"). A horizontal container wraps, but sizes each box
to its content; a line of CSS, on the container's key class (Streamlit's documented hook for
styling), gives the boxes equal shares of the row and a width below which they wrap instead.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st


def wrapping_row(key: str, min_rem: float, max_share: Optional[float] = None):
    """A container whose children share each row equally, none narrower than ``min_rem`` rem
    (and, with ``max_share``, none wider than that share of the row: a last box alone on its
    row keeps the others' width)."""
    row = st.container(horizontal=True, wrap=True, gap="small", key=key)
    widest = f" max-width: {100 * max_share:g}%;" if max_share else ""
    st.html(f"<style>.st-key-{key} > div {{ flex: 1 1 0; min-width: {min_rem:g}rem;{widest} }}</style>")
    return row

"""Distill Studio: teach a small image classifier from a big one, and see what it buys.

Run with ``streamlit run app.py``. The pages are in ``pages/``; shared UI helpers in
``studio/``; everything that trains and measures in ``distill_core``.
"""
# pandas and plotly are imported here, in the script thread, before any job thread exists:
# plotly takes pandas from sys.modules, and would find it half-imported while a job thread is
# importing the engine.
import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import streamlit as st

from studio.diagram import favicon_svg
from studio.health import banner

# Streamlit turns an SVG icon into a data URL: nothing to fetch, no font needed (diagram.py says more).
st.set_page_config(page_title="Distill Studio", page_icon=favicon_svg(), layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/distill.py", title="Distill", icon=":material/tune:", url_path="distill"),
    st.Page("pages/live.py", title="Live run", icon=":material/monitoring:", url_path="live"),
    st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:", url_path="compare"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/grid_on:", url_path="sweep"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]
# The menu is drawn with page links, and Streamlit's own menu is off (.streamlit/config.toml): on a
# server's first page load, before any script has called st.navigation, Streamlit's menu lists the
# files in pages/ by name ("app, compare, distill, ...") for a few seconds, and a workshop's first
# look at the studio should not be that.
page = st.navigation(pages, position="hidden")
with st.sidebar:
    for each in pages:
        st.page_link(each)
banner(page.url_path)  # a home that cannot be written, a damaged run store: said once, above every page
page.run()

"""Streamlit helpers shared by the pages: charts, formatting, the config form and its URL.

The pages in ``pages/`` are layout and widgets; anything longer than a few lines lives here,
and everything that trains or measures lives in ``distill_core``, which knows nothing of
Streamlit.
"""

"""Home: what distillation is, in one picture, and a one-click offline demo."""
import pandas as pd
import streamlit as st

from distill_core import RunConfig
from studio.diagram import distillation_svg
from studio.form import DEMO_SECONDS, PRESETS
from studio.health import start_blocker
from studio.methods_text import WHEN
from studio.manager import get_manager
from studio.nav import require_app

require_app()

st.title("Distill Studio")
st.markdown("#### Teach a small image classifier from a big one, and see what it buys you.")

st.image(distillation_svg(), width="stretch")

left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown(
        """
**Knowledge distillation** (Hinton, Vinyals and Dean, 2015) trains a small *student* network to copy a
large *teacher*. Instead of learning only from the true labels, the student also matches the teacher's
**soft targets**: the teacher's class probabilities, softened by a temperature *T*, which say not just
"this is a 7" but "a 7 that looks a little like a 1". That extra signal usually makes the student more
accurate than the same small network trained alone, while it stays many times smaller and faster.

Distill Studio trains all three side by side (the teacher, the student **from scratch**, and the student
**distilled** from the teacher) with the same recipe and data, then compares accuracy, size, FLOPs and
latency.
"""
    )
with right:
    demo = PRESETS["demo"]
    with st.container(border=True):
        st.markdown("##### Try it now")
        st.caption(demo.help + f" About {DEMO_SECONDS} s on a 2-core laptop.")
        blocked = start_blocker()
        if st.button(f"Run the {demo.label}", type="primary", icon=":material/play_arrow:", key="home_demo",
                     width="stretch", disabled=blocked is not None, help=blocked) and not blocked:
            job_id = get_manager().submit(RunConfig())
            st.session_state.job_id = job_id
            st.switch_page("pages/live.py", query_params={"job": job_id})
        if blocked:
            st.caption(blocked)
        # Short, so a narrow screen shows it whole.
        st.page_link("pages/distill.py", label="Or set up a run", icon=":material/tune:")

st.markdown("#### Which method when")
st.table(pd.DataFrame(WHEN, columns=["method", "when to pick it"]), hide_index=True)
st.caption("Every method is compared with the same student trained without a teacher, so the gain you see is the "
           "method's. On small data a method that wins on CIFAR-100 may not beat KD: try two or three on your pair "
           "(docs/benchmarks.md has our own numbers).")

# The engine's heavy imports (studio/manager.py), now, while the page is read: done at the click, they
# held the switch to the Live page back by over a second on a fresh server. The page is already drawn.
get_manager()

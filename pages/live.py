"""Live run: status, progress and curves of one job, redrawn every second by a fragment.

The job id lives in the URL (``?job=...``), so a refresh or a link reattaches; a page opened
without one shows the job that is running now.
"""
import streamlit as st

from studio import fmt
from studio.charts import accuracy_figure, loss_figure
from studio.live_chart import live_chart
from studio.manager import get_manager
from studio.nav import require_app
from studio.style import PHASE_LABEL, STATUS_BADGE

require_app()

manager = get_manager()
ss = st.session_state

asked = st.query_params.get("job") or ss.get("job_id")
snap = manager.snapshot(asked) if asked else None
st.title("Live run")
if snap is None:
    snap = manager.current()
    if asked and snap is not None:
        st.info(f"Run {asked} is not known to this server (it may have been restarted); showing the current "
                "run. Finished runs stay on the Compare page.", icon=":material/help:")
if snap is None:
    if asked:
        st.warning(f"Run {asked} is not known to this server (it may have been restarted). Finished runs are "
                   "still on the Compare page.", icon=":material/help:")
    else:
        st.info("Nothing is running yet.", icon=":material/info:")
    st.page_link("pages/home.py", label="Start the one-minute demo", icon=":material/play_arrow:")
    st.page_link("pages/distill.py", label="Set up a run", icon=":material/tune:")
    st.stop()

job_id = ss.job_id = snap.id
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id

cfg = snap.config
others = [j for j in manager.jobs() if j.id != job_id]
head = st.columns([4, 2], vertical_alignment="bottom")
head[0].markdown(f"**{cfg.dataset}**: `{cfg.teacher}` teaches `{cfg.student}` · T = {cfg.temperature:g}, "
                 f"α = {cfg.alpha:g} · {cfg.epochs} student epochs · {snap.device} · run `{job_id}`")
smoothing = head[1].slider("Loss smoothing (EMA)", 0.0, 0.99, 0.6, step=0.01, key="ema",
                           help="Exponential moving average of the per-step loss, as in TensorBoard.")
if others:
    with st.expander(f"Other runs on this server ({len(others)})"):
        for other in others[:20]:
            place = f", place {other.queue_position} in the {other.device} queue" if other.queue_position else ""
            st.page_link("pages/live.py", label=f"{other.id} · {other.config.dataset} · {other.config.teacher} → "
                                                f"{other.config.student} · {other.status}{place}",
                         query_params={"job": other.id})


def stop() -> None:
    manager.cancel(job_id)


# The progress bar animates each change of width, repainted frame by frame: at one update a second
# that cost Chromium about 5 % of a CPU core, taken from training. It jumps instead.
st.html("<style>[data-testid='stProgress'] * { transition: none !important; }</style>")


@st.fragment(run_every=1.0 if snap.active else None)
def live_view() -> None:
    now = manager.snapshot(job_id)
    if now is None:
        st.warning("This run is no longer known to the server.")
        return
    icon, color = STATUS_BADGE[now.status]
    row = st.columns([1.4, 4, 1.2], vertical_alignment="center")
    with row[0]:
        st.badge(now.status, icon=icon, color=color)
    row[1].markdown(now.message)
    row[2].button("Stop", icon=":material/stop_circle:", key="stop", on_click=stop, disabled=not now.active,
                  width="stretch", help="Ends the run within a few seconds; models that finished are kept.")

    if now.status == "queued":
        st.info(f"Waiting for the {now.device}: place {now.queue_position} in the queue. It starts by itself "
                "when the runs before it finish.", icon=":material/schedule:")
    phase = PHASE_LABEL.get(now.phase or "", now.phase or "starting")
    if now.finished:
        label = {"done": f"Finished in {fmt.duration(now.elapsed_s)}", "failed": "Failed",
                 "cancelled": "Cancelled"}[now.status]
    elif now.phase == "measure":
        label = "Measuring size, FLOPs and latency"
    elif now.phase and now.epochs:
        label = (f"Phase {now.phase_index + 1} of {now.phase_total}: {phase} · "
                 f"epoch {min(now.epoch + 1, now.epochs)} of {now.epochs}")
    elif now.phase:
        label = f"Phase {now.phase_index + 1} of {now.phase_total}: {phase}"
    else:
        label = "Waiting for the device" if now.status == "queued" else "Loading the data"
    st.progress(min(1.0, now.progress), text=label)
    m = st.columns(4)
    m[0].metric("Progress", f"{100 * now.progress:.0f} %")
    m[1].metric("Time left", fmt.duration(now.eta_s) if now.status == "running" else fmt.DASH)
    m[2].metric("Speed", fmt.rate(now.images_per_s) if now.status == "running" else fmt.DASH)
    m[3].metric("Elapsed", fmt.duration(now.elapsed_s) if now.started_at else fmt.DASH)

    if now.status == "failed":
        st.error(f"The run failed: {now.error}", icon=":material/error:")
    elif now.status == "cancelled":
        st.warning("Run cancelled. The models that finished before the stop are kept"
                   + (" and can be compared." if now.entries else "."), icon=":material/block:")

    c1, c2 = st.columns(2)
    with c1:
        live_chart(loss_figure(now.steps, now.history, cfg.alpha, smoothing), key="loss_chart")
    with c2:
        live_chart(accuracy_figure(now.history), key="accuracy_chart")
    points = sum(len(v) for v in now.steps.values())
    epochs_seen = sum(len(v) for v in now.history.values())
    st.caption(f"{points} loss points · {epochs_seen} epochs logged", help="Curves update every second.")

    if now.finished and now.results and any(now.results.get(r) for r in ("teacher", "student_kd")):
        if st.button("See the comparison", type="primary", icon=":material/leaderboard:", key="to_compare"):
            st.switch_page("pages/compare.py", query_params={"run": now.id})
    if now.finished and snap.active:
        st.rerun()  # the whole page again, now without the once-a-second timer


live_view()

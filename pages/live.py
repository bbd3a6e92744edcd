"""Live run: status, progress and curves of one job.

The job id lives in the URL (``?job=...``), so a refresh or a link reattaches; a page opened
without one shows the job that is running now. The numbers and curves redraw about once a second
inside one frame that reads the job's feed (studio/live_view.py says why: a fragment rerun every
second cost the browser several times more CPU, taken from training). The frame's label says
the phase, the epoch and "stopping". The rest (status badge, Stop, queue place, error) is a
fragment that reruns when the status or the queue place changes (the frame asks), and every
30 s as a safety net.
"""
import streamlit as st

from distill_core import CANCELLED, DONE, FAILED, FINISHED, INTERRUPTED, student_label

from studio import fmt, kept
from studio.form import DEMO_SECONDS
from studio.live_feed import kept_words, local_sweep, run_config, running_trial, stage, stopped_note
from studio.live_view import live_view
from studio.manager import get_manager
from studio.methods_text import method_setting
from studio.nav import require_app
from studio.runs import stored_results, stored_sweep, was_deleted
from studio.style import STATUS_BADGE, UNKNOWN_BADGE

SAFETY_NET_S = 30.0

require_app()

manager = get_manager()
ss = st.session_state

asked = st.query_params.get("job") or ss.get("job_id")
snap = manager.snapshot(asked) if asked else None
st.title("Live run")
if asked and snap is None and (sweep := stored_sweep(asked)) is not None:  # a sweep this server no longer runs
    st.warning(f"Sweep {fmt.code(asked)} is {sweep['status']}: its heatmap and its trials are on the Sweep page.",
               icon=":material/grid_on:")
    st.page_link("pages/sweep.py", label="Open the sweep", icon=":material/grid_on:", query_params={"sweep": asked})
    st.stop()
if asked and snap is None:
    # Not among this server's jobs: the run store knows a run from before a restart, or from the
    # CLI; a run deleted here is remembered as such; anything else was deleted elsewhere or never here.
    stored = stored_results(asked)
    if stored and stored.get("status") in FINISHED:
        said = {DONE: "finished. Its comparison", CANCELLED: "was cancelled. What it finished",
                FAILED: "failed. What it finished",
                INTERRUPTED: "was interrupted: its server stopped while it ran. What it finished"}[stored["status"]]
        st.warning(f"Run {fmt.code(asked)} {said} is on the Compare page.", icon=":material/block:")
        st.page_link("pages/compare.py", label="See what finished", icon=":material/leaderboard:",
                     query_params={"run": asked})
        st.stop()
    why = ("was deleted on the Runs page" if was_deleted(asked) else
           f"is {stored.get('status')} in another process (the command line, say): the Runs page follows it" if stored
           else "is not in this server's run history: it was deleted, or the link is from another server")
    snap = manager.current()
    st.warning(f"Run {fmt.code(asked)} {why}." + (" Showing the latest run on this server instead." if snap else ""),
               icon=":material/help:")
    ss.pop("job_id", None)
elif snap is None:
    snap = manager.current()
if snap is None:
    if not asked:
        st.info("Nothing is running yet.", icon=":material/info:")
    st.page_link("pages/home.py", label=f"Start the {DEMO_SECONDS}-second demo", icon=":material/play_arrow:")
    st.page_link("pages/distill.py", label="Set up a run", icon=":material/tune:")
    st.stop()

trial = running_trial(snap)
if snap.kind == "sweep":  # the sweep as a whole is on the Sweep page; here, the curves of its running trial
    st.info(f"This is sweep {snap.id}, {snap.status}: its heatmap and its trials are on the Sweep page."
            + (" Below, the trial training now." if trial else ""), icon=":material/grid_on:")
    st.page_link("pages/sweep.py", label="Open the sweep", icon=":material/grid_on:", query_params={"sweep": snap.id})
    if trial is None:  # queued, loading, finished, or on Ray (whose trials report to the Sweep page only)
        if snap.active and local_sweep(snap):
            @st.fragment(run_every=2.0)
            def wait_for_a_trial() -> None:  # the page follows as soon as a trial starts, or the sweep ends
                now = manager.snapshot(snap.id)
                if now is None or running_trial(now) or not now.active:
                    st.rerun()

            wait_for_a_trial()
        st.stop()

job_id = ss.job_id = snap.id
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id

cfg = run_config(snap)
what = "sweep" if snap.kind == "sweep" else "run"
others = [j for j in manager.jobs() if j.id != job_id]
head = st.columns([3.2, 2, 1.8], vertical_alignment="bottom")  # wide enough for "Log loss" at 1024 px
head[0].markdown(f"**{cfg.dataset}**: `{cfg.teacher}` teaches `{student_label(cfg)}` · "
                 f"{method_setting(cfg.to_dict())} · "
                 f"{fmt.things(cfg.epochs, 'student epoch')} · {snap.device}  \n"
                 f"{what} `{job_id}`")  # a line of its own: browsers break an id at its hyphens
kept.hold("live_kept", {"ema": 0.6, "log_loss": False})  # the viewer's settings, across other pages
smoothing = head[1].slider("Loss smoothing (EMA)", 0.0, 0.99, step=0.01, key="ema",
                           help="Exponential moving average of the per-step loss, as in TensorBoard.")
log_scale = head[2].toggle("Log loss", key="log_loss",
                           help="A log scale for the loss axis: the distilled student's terms can sit far apart "
                                "(KD's carries T², a feature method's its weight).")
if others:
    with st.expander(f"Other runs on this server ({len(others)})"):
        for other in others[:20]:
            place = f", place {other.queue_position} in the queue" if other.queue_position else ""
            st.page_link("pages/live.py", label=f"{other.id} · {other.config.dataset} · {other.config.teacher} → "
                                                f"{student_label(other.config)} · {other.status}{place}",
                         query_params={"job": other.id})


# A sweep's Stop ends its running trial and the sweep, as the Sweep page's does.
stop_help = ("Ends the trial running now and the sweep; the finished trials are kept, and the Sweep page can go "
             "on with it later." if what == "sweep" else
             "Ends the run within a few seconds; models that finished are kept.")


def stop() -> None:
    manager.cancel(job_id)


# The frame below asks for a rerun of this fragment as soon as the run changes stage (status or
# queue place); the slow timer is a safety net for a frame that could not load or a change it missed.
@st.fragment(run_every=SAFETY_NET_S if snap.active else None)
def live_parts() -> None:
    now = manager.snapshot(job_id)
    if now is None:
        st.warning("This run is no longer known to the server.")
        return
    if (running_trial(now) or {}).get("index") != (trial or {}).get("index"):
        st.rerun()  # a sweep's next trial, or its end: the page above names the trial
    icon, color = STATUS_BADGE.get(now.status, UNKNOWN_BADGE)
    row = st.columns([5.4, 1.2], vertical_alignment="center")
    with row[0]:
        st.badge(now.status, icon=icon, color=color)
    if now.active and now.requests > 1:  # Start with the same setup joined this run: it is theirs too
        with row[1].popover("Stop", icon=":material/stop_circle:", width="stretch"):
            st.markdown(f"This {what} was started {now.requests} times (the same setup joins the running "
                        f"{what} instead of training it twice), so others may be watching it. Stopping it stops "
                        f"it for everyone; {kept_words(now)}.")
            st.button("Stop for everyone", icon=":material/stop_circle:", key="stop", on_click=stop, type="primary")
    else:
        row[1].button("Stop", icon=":material/stop_circle:", key="stop", on_click=stop, disabled=not now.active,
                      width="stretch", help=stop_help)

    # The badge says the status and the frame's label the queue place or when it ended: a message
    # here adds only what they cannot, the error and what a stop kept.
    if now.status == FAILED:
        st.error(fmt.plain(fmt.sentence(now.error or "")), icon=":material/error:")
    elif now.status == CANCELLED:
        st.info(stopped_note(now), icon=":material/inventory_2:")

    # Progress, numbers and curves: redrawn by the frame itself, which reruns this fragment when
    # the run reaches another stage (so the badge, Stop and the messages above follow).
    live_view(job_id, stage(now), smoothing, key="live_view", log_scale=log_scale)

    if now.finished and now.results and any(now.results.get(r) for r in ("teacher", "student_kd")):
        if st.button("See the comparison", type="primary", icon=":material/leaderboard:", key="to_compare"):
            st.switch_page("pages/compare.py", query_params={"run": now.id})
    if now.finished and snap.active:
        st.rerun()  # the whole page, for the other runs' list


live_parts()

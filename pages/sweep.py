"""Sweep: one recipe over a grid of T, alpha and the other sweepable fields, several seeds each;
the heatmap of the gain fills in as trials finish. The definition lives in the URL."""
import pandas as pd
import streamlit as st

from distill_core import DONE, FAILED, QUEUED, SWEEPABLE, DistillError, RunConfig, RunStore, SweepSpec, estimate_seconds, probe_speed, \
    ray_available, summary_rows, trial_rows
from studio import folders, fmt, kept, urlstate
from studio import sweep_view as sv
from studio.form import adopt, config_from_link, server_problems, worded
from studio.health import start_blocker
from studio.live_feed import local_sweep
from studio.manager import get_manager
from studio.nav import require_app
from studio.runs import busy_note
from studio.style import STATUS_BADGE, UNKNOWN_BADGE

require_app()

ss = st.session_state
manager = get_manager()
st.title("Sweep")
try:  # every part of this page reads the store: a damaged one stops it here, not halfway
    store = RunStore()
    store.check()
except DistillError:  # damaged, or on a disk that cannot be written: said at the top of the page
    try:
        store = RunStore(read_only=True)  # a sound store on a read-only disk: its sweeps are shown
        store.check()
    except DistillError:
        st.info("Sweeps are kept in the run store, which cannot be read now.", icon=":material/info:")
        st.stop()


def load(base: RunConfig, grid: dict, seeds: str, backend: str) -> None:
    ss.sw_base = base.to_dict()  # the recipe the boxes were filled from
    for name in SWEEPABLE:
        ss["sw_" + name] = grid[name]
    ss.sw_seeds, ss.sw_backend = seeds, backend


def apply_preset(name: str) -> None:
    preset = sv.PRESETS[name]
    grid = {f: sv.text_of(getattr(preset.base, f)) for f in SWEEPABLE} | preset.grid
    adopt(preset.base, [])
    load(preset.base, grid, preset.seeds, "local")


# The recipe is the Distill page's, read on every run; a link that defines a sweep sets it (and the
# boxes), a link that only names a sweep (``sweep=<id>``, from the Live page) shows that sweep.
asked = kept.link("sw")
if asked is not None or "sw_base" not in ss:
    params = asked or st.query_params.to_dict()
    recipe_given = any(k != "sweep" for k in params)
    if recipe_given or "sw_base" not in ss:
        base, grid, seeds, backend, ss.sw_notes = sv.from_params(params, ss.get("draft"), read_link=config_from_link)
        if recipe_given:
            adopt(base, ss.sw_notes)
        load(base, grid, seeds, backend)
    if params.get("sweep") or "sw_show" not in ss:
        ss.sw_show = params.get("sweep")
KEPT = ["sw_" + name for name in SWEEPABLE] + ["sw_seeds", "sw_backend", "sw_address"]
kept.restore("sw_kept")
base = RunConfig.from_dict(ss.draft) if "draft" in ss else RunConfig()
if base.to_dict() != ss.sw_base:  # changed on the Distill page since the boxes were filled
    boxes, ss.sw_seeds = sv.follow(RunConfig.from_dict(ss.sw_base), base,
                                   {name: ss["sw_" + name] for name in SWEEPABLE}, ss.sw_seeds)
    load(base, boxes, ss.sw_seeds, ss.sw_backend)

top = st.container(horizontal=True, wrap=True, vertical_alignment="center")
for name, preset in sv.PRESETS.items():
    top.button(preset.label, key=f"sw_preset_{name}", on_click=apply_preset, args=(name,), help=preset.help,
               icon=":material/bolt:", width="content")
top.caption("The address bar holds this sweep's definition: copy the link to share it.")
for note in ss.get("sw_notes", []):
    st.warning(note, icon=":material/link:")

grid = {name: ss["sw_" + name] for name in SWEEPABLE}
spec, found = sv.build(base, grid, ss.sw_seeds)  # before the boxes: each box's problems are said under it
BOXES = set(SWEEPABLE) | {"seed", None}


def problems_of(column, field) -> None:
    for problem in found:
        if problem.field == field:
            column.error(fmt.plain(problem.message), icon=":material/error:")  # they quote what was typed


st.markdown("**Recipe** · " + sv.recipe_text(spec.base if spec else base, spec, base))
st.page_link("pages/distill.py", label="Change the recipe on the Distill page", icon=":material/tune:",
             query_params=urlstate.to_params(base))
if folders.awaiting_confirmation(base.data_dir):  # a link's folder: read once confirmed here, as on Distill
    st.button("Read this folder", key="sw_data_dir_confirm", icon=":material/folder_open:", on_click=folders.confirm,
              args=(base.data_dir,))
recipe_found = server_problems(base)  # the Distill page's checks of the folder, the checkpoint, the device
for problem in recipe_found:
    st.error(worded(problem), icon=":material/error:")
for problem in found:
    if problem.field not in BOXES:  # the engine's checks of the recipe's other fields
        st.error(fmt.plain(problem.message), icon=":material/error:")

st.subheader("The grid")
st.caption("A comma list sweeps a field (1,2,4,8); one value sets it. The grid is the product of the lists; "
           "every cell runs once per seed.")
row = st.columns(3)
row[0].text_input("Temperature T", key="sw_temperature")
problems_of(row[0], "temperature")
row[1].text_input("alpha", key="sw_alpha")
problems_of(row[1], "alpha")
row[2].text_input("Seeds", key="sw_seeds", help="Each cell is trained once per seed; the spread over seeds is "
                                                 "the error bar.")
problems_of(row[2], "seed")
with st.expander("More fields to sweep", expanded=any(p.field in sv.MORE_FIELDS for p in found)):
    names = list(sv.MORE_FIELDS)
    for start in range(0, len(names), 5):  # a row of boxes, then its problems at the row's width: a fifth is too narrow
        row_names = names[start:start + 5]
        for column, name in zip(st.columns(5), row_names):
            column.text_input(sv.MORE_FIELDS[name], key="sw_" + name)
        for name in row_names:
            problems_of(st, name)
backends = ["local", "ray"] if ray_available() else ["local"]
backend = st.radio("Where the trials run", backends, key="sw_backend", horizontal=True,
                   format_func={"local": "here, in this server's queue", "ray": "on Ray"}.get)
address = st.text_input("Ray address (empty: a local Ray instance)", key="sw_address") if backend == "ray" else None

kept.keep("sw_kept", KEPT)
kept.write_url("sw", sv.to_params(base, grid, ss.sw_seeds, backend)
               | ({"sweep": ss.sw_show} if ss.get("sw_show") else {}))
problems_of(st, None)  # the sweep as a whole: its size

if spec is not None:
    probes = ss.setdefault("sw_probe", {})
    probe_key = sv.probe_key(spec.base)
    # Not before the recipe's problems are fixed: the estimate lists the image folder (the teacher
    # cache's key), which a link's folder must not be until it is confirmed.
    estimate = None if recipe_found else estimate_seconds(spec, store, probes.get(probe_key))
    line = sv.shape_text(spec, base)
    if estimate:
        where = f"the last run of this pair ({estimate['from']})" if estimate["from"] else "a short probe"
        line += f" · {sv.duration_text(estimate['seconds'])}, from {where}"
        if estimate["teacher_unknown"]:
            line += ", plus training the teachers"
    st.markdown(line)
    b = st.columns([1, 2, 2.4], vertical_alignment="center")  # the probe's label whole at 1024 px
    # The server's own problem is said at the top of the page; the recipe's, above.
    fix_first = "Fix the recipe's problems above first." if recipe_found else None
    blocked = start_blocker() or fix_first
    start = b[0].button("Start", type="primary", icon=":material/play_arrow:", key="sw_start", width="stretch",
                        disabled=bool(blocked), help=blocked) and not blocked
    # Timed beside a training run, the probe would measure it as much as the models (busy_note).
    unprobed = fix_first or busy_note()
    if not estimate and b[1].button("Estimate with a short probe", key="sw_probe_button", disabled=bool(unprobed),
                                    help=unprobed or "Times a few training steps of each model (a few seconds)."):
        with st.spinner("Timing a few training steps…"):
            try:
                probes[probe_key] = probe_speed(spec.base)
            except DistillError as exc:  # no such device here, a dataset that cannot be downloaded, ...
                ss.sw_probe_error = probe_key, f"The probe could not run: {fmt.plain(fmt.sentence(str(exc)))}"
            else:
                ss.pop("sw_probe_error", None)
        st.rerun()
    if not estimate and (failed := ss.get("sw_probe_error")) and failed[0] == probe_key:
        b[2].error(failed[1], icon=":material/error:")
    if start:
        ss.sw_show = ss.job_id = manager.submit_sweep(spec, backend, address or None)  # Live follows it too
        st.rerun()

# ---- a sweep's progress and results -------------------------------------------------------------------
sweeps = store.list_sweeps(limit=50)
running = next((j for j in manager.jobs() if j.kind == "sweep" and j.active), None)
shown = ss.get("sw_show") or (running.id if running else sweeps[0]["id"] if sweeps else None)
if shown is None:
    st.stop()
st.divider()
ids = list(dict.fromkeys([shown] + [s["id"] for s in sweeps]))
if ss.get("sw_pick") not in ids or ss.get("sw_pick_for") != shown:
    ss.sw_pick, ss.sw_pick_for = shown, shown
st.selectbox("Sweep", ids, key="sw_pick")
if ss.sw_pick != shown:
    ss.sw_show = ss.sw_pick
    st.rerun()


def stop() -> None:
    manager.cancel(shown)


@st.fragment(run_every=2.0 if (snap := manager.snapshot(shown)) is not None and snap.active else None)
def results() -> None:
    now = manager.snapshot(shown)
    record = store.get_sweep(shown)
    definition = (now.sweep if now is not None else None) or (record or {}).get("spec")
    if not definition:
        st.info(f"Sweep {fmt.code(shown)} is not known here.")
        return
    spec = SweepSpec.from_dict({k: v for k, v in definition.items() if k not in ("backend", "address")})
    rows = trial_rows(spec, store)
    summary = summary_rows(spec, rows)
    status = now.status if now is not None else (record or {}).get("status", DONE)
    icon, color = STATUS_BADGE.get(status, UNKNOWN_BADGE)
    head = st.columns([5, 1.2], vertical_alignment="center")
    head[0].badge(f"{status} · {len(rows)} of {fmt.things(spec.size(), 'trial')} finished", icon=icon, color=color)
    head[1].button("Stop", icon=":material/stop_circle:", key="sw_stop", on_click=stop,
                   disabled=not (now is not None and now.active), width="stretch",
                   help="Ends the trial running now; the finished ones are kept, and the sweep can go on later.")
    current = None
    if now is not None and now.status == QUEUED:
        st.info(f"Waiting for the runs before it: place {now.queue_position} in the queue.", icon=":material/schedule:")
    elif now is not None and now.active and now.trial:
        current = {"cell": now.trial.get("cell") or {}, "progress": now.progress}
        st.progress(min(1.0, (len(rows) + now.progress) / spec.size()),
                    text=f"Trial {now.trial['index'] + 1} of {spec.size()}: {sv.cell_label(current['cell'])}, "
                         f"seed {now.trial.get('seed')} · {now.message}")
        if local_sweep(now):  # Ray's trials send no curves
            st.page_link("pages/live.py", label="Watch this trial's curves", icon=":material/monitoring:",
                         query_params={"job": shown})
    if now is not None and now.status == FAILED and now.error:
        st.error(f"The sweep failed: {fmt.plain(now.error)}", icon=":material/error:")
    st.plotly_chart(sv.heatmap(spec, summary, current), key="sw_heatmap", on_select="rerun",
                    selection_mode="points", config={"displaylogo": False})
    if text := sv.verdict(spec, summary):
        st.markdown(text)
    if len(spec.fields) > 2 and summary:
        st.plotly_chart(sv.parallel(spec, summary), key="sw_parallel", config={"displaylogo": False})
    if not summary:
        return
    st.dataframe(pd.DataFrame(sv.cells_table(spec, summary)), hide_index=True, key="sw_cells")
    labels = {i: sv.cell_label({k: r[k] for k in spec.fields}) for i, r in enumerate(summary)}
    clicked = (ss.get("sw_heatmap") or {}).get("selection", {}).get("points") or []
    if clicked:
        x_field, y_field = sv.axes_of(spec)
        point = clicked[0]
        pick = next((i for i, r in enumerate(summary) if (x_field is None or sv.text_of(r[x_field]) == str(point.get("x")))
                     and (y_field is None or sv.text_of(r[y_field]) == str(point.get("y")))), None)
        if pick is not None:
            ss.sw_cell = pick
    if ss.get("sw_cell") not in labels:
        ss.sw_cell = 0
    cell = st.selectbox("A cell's runs (or click it in the heatmap)", list(labels), key="sw_cell",
                        format_func=labels.get)
    for row_ in [r for r in rows if r["run_id"] in summary[cell]["run_ids"]]:
        st.page_link("pages/compare.py", label=f"seed {row_['seed']}: KD {fmt.percent(row_['kd_accuracy'])}, "
                                               f"scratch {fmt.percent(row_['scratch_accuracy'])}, gain "
                                               f"{100 * row_['gain']:+.1f} pts · run {row_['run_id']}",
                     query_params={"run": row_["run_id"]}, icon=":material/leaderboard:")
    if now is not None and now.finished and snap is not None and snap.active:
        st.rerun()


results()

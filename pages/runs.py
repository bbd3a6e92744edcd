"""Runs: every run of this studio (app and CLI), found again, filtered, overlaid, exported."""
import streamlit as st

from distill_core import INTERRUPTED, ROLE_LABEL, DistillError, StoreDamagedError, checkpoint_missing, export_run, onnx_report

from studio import fmt, runs_view as rv
from studio.health import home_problem
from studio import kept
from studio.manager import get_manager
from studio.nav import require_app
from studio.runs import note_deleted

require_app()

ss = st.session_state
st.title("Runs")
if note := ss.pop("runs_rebuilt", None):
    st.success(fmt.plain(fmt.sentence(note)), icon=":material/check:")
try:
    store = rv.open_store()
    table = rv.runs_table(store)
except StoreDamagedError as exc:  # say which file, and offer to rebuild it; the other pages go on
    rv.damaged_store(exc)
    st.stop()
except DistillError as exc:
    if home_problem():  # said at the top of the page already
        st.info("There is no run store to read in the home folder.", icon=":material/info:")
    else:
        st.error(fmt.plain(fmt.sentence(str(exc))), icon=":material/error:")
    st.stop()
st.caption(f"{fmt.things(len(table), 'run')} in the run store {fmt.code(store.path)}, shared by the app and "
           "`python -m distill_core` (set DISTILL_STUDIO_HOME to move it).")
if table.empty:
    st.info("No runs yet. Every run started here or from the CLI is listed on this page.", icon=":material/info:")
    st.stop()

# ---- filter and sort ------------------------------------------------------------------------------
# Two rows of three: six filters in one row were 80 px each at 1024 px, too narrow for a chosen value.
f = st.columns(3) + st.columns(3)
offered = {"dataset": rv.choices(table, "dataset"), "teacher": rv.choices(table, "teacher"),
           "student": rv.choices(table, "student"), "method": sorted({rv.method_of(m) for m in table["method"].dropna()}),
           "status": rv.choices(table, "status")}
kept.hold("runs_kept", {f"runs_f_{name}": [] for name in offered} | {"runs_f_text": ""})  # across other pages
for name, values in offered.items():  # a kept choice whose runs were deleted since is offered no more
    ss[f"runs_f_{name}"] = [v for v in ss[f"runs_f_{name}"] if v in values]
datasets = f[0].multiselect("Dataset", offered["dataset"], key="runs_f_dataset", **rv.ALL)
teachers = f[1].multiselect("Teacher", offered["teacher"], key="runs_f_teacher", **rv.ALL)
students = f[2].multiselect("Student", offered["student"], key="runs_f_student", **rv.ALL)
methods = f[3].multiselect("Method", offered["method"], key="runs_f_method", **rv.ALL)
statuses = f[4].multiselect("Status", offered["status"], key="runs_f_status", **rv.ALL)
text = f[5].text_input("Run id contains", key="runs_f_text")
shown = rv.filter_table(table, datasets, teachers, students, statuses, methods=methods, text=text)
st.dataframe(shown, hide_index=True, column_config=rv.column_config(), width="stretch", key="runs_table",
             placeholder=rv.MISSING, column_order=rv.shown_columns(shown))
st.caption("Click a column header to sort. Accuracies: validation split, last epoch; gain: KD minus scratch.")
if shown.empty:
    st.warning("No run matches these filters.")
    st.stop()

ids = list(shown["run_id"])
labels = {r["run_id"]: rv.run_label(r) for _, r in shown.iterrows()}
several = shown["method"].nunique(dropna=True) > 1
other_students = shown["student"].nunique(dropna=True) > 1  # a derived student's label says its initialisation
legend = {r["run_id"]: rv.legend_label(r, with_method=several, with_student=other_students)
          for _, r in shown.iterrows()}

# ---- several runs side by side ---------------------------------------------------------------------
st.subheader("Side by side")
if "runs_pick" not in ss:
    ss.runs_pick = ids[:2]
ss.runs_pick = [r for r in ss.runs_pick if r in ids]
pair_of = (ss.runs_pick or ids)[0]
same_pair = rv.methods_on_pair(shown, pair_of)
if len(same_pair) > 1 and st.button(f"Overlay each method on {rv.pair_label(shown, pair_of)}", key="runs_methods",
                                    icon=":material/compare_arrows:",
                                    help="The newest finished run of each method (and options) on this data, teacher "
                                         "and student, in place of the runs picked below."):
    ss.runs_pick = same_pair
# One row each, and the models as pills: a multiselect's chips beside the runs do not fit a
# 1024-pixel page; pills show every model, chosen or not, whole.
picked = st.multiselect("Runs to overlay", ids, key="runs_pick", format_func=labels.get)
models = st.pills("Models", list(rv.MODEL_ORDER), selection_mode="multi", default=["student_kd", "student_scratch"],
                  format_func=ROLE_LABEL.get, key="runs_models")
if picked:
    st.plotly_chart(rv.curves_figure(store, picked, models, labels, legend), key="runs_curves",
                    config={"displaylogo": False})
    st.dataframe(rv.results_table(store, picked), hide_index=True, column_config=rv.results_column_config(),
                 width="stretch", key="runs_results", placeholder=rv.MISSING)
else:
    st.caption("Pick runs above to overlay their validation-accuracy curves.")

# ---- one run ---------------------------------------------------------------------------------------
st.subheader("One run")
if ss.get("runs_one") not in ids:
    ss.runs_one = picked[0] if picked else ids[0]
run_id = st.selectbox("Run", ids, key="runs_one", format_func=labels.get)
run = store.get_run(run_id)
if run is None:
    st.error(f"Run {fmt.code(run_id)} is no longer in the store.")
    st.stop()
st.markdown(rv.describe(run))
if run.get("error"):
    st.error(fmt.plain(run["error"]), icon=":material/error:")
if run["status"] == INTERRUPTED:
    st.warning("This run was interrupted: its process ended before it finished. The epochs it recorded are kept.",
               icon=":material/warning:")

b = st.columns(3)
if b[0].button("Open in Compare", icon=":material/leaderboard:", key="runs_open", width="stretch",
               disabled=not rv.has_results(run),
               help=None if rv.has_results(run) else "Only finished runs (with results) can be compared."):
    st.switch_page(str(rv.COMPARE_PAGE), query_params={"run": run_id})
if b[1].button("Rerun this config", icon=":material/replay:", key="runs_rerun", width="stretch",
               help="Open the Distill page with this run's settings, to start it again or change one thing."):
    st.switch_page(str(rv.DISTILL_PAGE), query_params=rv.rerun_params(run["config"]))
if b[2].button("Delete…", icon=":material/delete:", key="runs_delete", width="stretch", disabled=rv.is_active(run),
               help="Stop it first." if rv.is_active(run) else "Removes its rows and its folder."):
    ss.runs_confirm_delete = run_id
if ss.get("runs_confirm_delete") == run_id:
    with st.container(border=True):
        st.warning(f"Delete run {fmt.code(run_id)}? Its records and its folder {fmt.code(run.get('artifacts_dir'))} (checkpoints, "
                   "exports) are removed. The cached teacher stays.", icon=":material/delete_forever:")
        y, n = st.columns(2)
        if y.button("Delete for good", type="primary", key="runs_delete_yes", width="stretch"):
            try:
                store.delete_run(run_id)
                get_manager().forget(run_id)  # this server's pages stop offering it
                note_deleted(run_id)  # a Live tab left on it says why it is gone
            except DistillError as exc:
                st.error(fmt.plain(fmt.sentence(str(exc))))
            else:
                ss.pop("runs_confirm_delete", None)
                ss.pop("runs_one", None)
                st.toast(f"Deleted run {fmt.code(run_id)}", icon=":material/delete:")
                st.rerun()
        if n.button("Keep it", key="runs_delete_no", width="stretch"):
            ss.pop("runs_confirm_delete", None)
            st.rerun()

# ---- take it away ----------------------------------------------------------------------------------
st.markdown("**Downloads**")
# From the disk, not the store: a run folder deleted outside the app leaves its rows, and an export
# of it would fail inside the browser's download, where no message can be shown.
if "student_kd" not in run["models"]:
    missing = "The distilled student did not finish in this run."
elif missing := checkpoint_missing(run_id, store=store):
    missing = f"The distilled student's file cannot be read: {fmt.plain(fmt.sentence(missing))}"
    st.warning(missing, icon=":material/warning:")
has_student = missing is None
d = st.container(horizontal=True, wrap=True, gap="small")  # buttons as wide as their labels, wrapping
for spec in rv.downloads(run_id, run.get("student") or "student"):
    needs_student = spec["key"] in ("dl_pt", "dl_safetensors", "dl_onnx")
    d.download_button(spec["label"], spec["data"], file_name=spec["file_name"], mime=spec["mime"],
                      key=spec["key"], help=spec["help"] if has_student or not needs_student else missing,
                      disabled=needs_student and not has_student, on_click="ignore",
                      icon=":material/download:", width="content")
if has_student:
    report = onnx_report(run_id, store=store)
    if report:
        st.caption("ONNX: " + rv.parity_text(report))
    elif st.button("Check the ONNX export with onnxruntime", key="runs_onnx_check", icon=":material/fact_check:",
                   disabled=(busy := rv.busy_note()) is not None, help=busy):
        with st.spinner("Exporting the student and running it on the validation split…"):
            try:
                report = export_run(run_id, "onnx", store=store)
            except Exception as exc:  # noqa: BLE001 - shown, not raised
                st.error(f"ONNX export failed: {fmt.plain(exc)}")
            else:
                st.caption("ONNX: " + rv.parity_text(report))

# ---- compression -----------------------------------------------------------------------------------
st.markdown("**Compression: the teacher and the distilled student, smaller**")
if has_student:
    rv.compression_section(run_id, key="runs_compress", store=store, results=run.get("results"))
else:
    st.caption(f"{missing} There is nothing to compress." if missing else "")

"""Compare: teacher, scratch student and distilled student of one finished run, side by side."""
from pathlib import Path

import streamlit as st

from distill_core import CANCELLED, DISTILLED, GAIN_WORDS, INTERRUPTED, NOISE_POINTS, ROLE_LABEL, ROLES, SCRATCH, TEACHER, comparison_headline, \
    describe_precision, export_file_name, gain_verdict
from studio import fmt
from studio.charts import accuracy_figure, bar_figure, class_gain_figure, confusion_figure, reliability_figure
from studio.compare import comparison_tables, headline, latency_table, loss_terms, over_seeds, seed_runs, speed_terms, \
    student_made
from studio.methods_text import method_setting
from studio.runs_view import compression_section
from studio.form import DEMO_SECONDS
from studio.gallery import to_picture, val_images
from studio.layout import wrapping_row
from studio.nav import require_app
from studio.runs import list_runs, load_results, newest_finished, stored_results
from studio.style import ROLE_COLOR

VERDICT_STYLE = {"helped": ("green", "up"), "hurt": ("red", "down"), "unclear": ("gray", "off")}  # st.metric's delta

require_app()

ss = st.session_state
st.title("Compare")


runs = list_runs()
ids = [r["run_id"] for r in runs]
labels = {r["run_id"]: r["label"] for r in runs}
asked = st.query_params.get("run")
missing = None  # a linked run with no results here: said once, beside the run shown instead
if asked and asked not in ids:
    kept = stored_results(asked)  # a run whose server stopped while it ran: what finished is in the store
    if kept and any(isinstance(kept.get(r), dict) for r in ROLES):
        ids.insert(0, asked)
        labels[asked] = f"{asked} · {(kept.get('config') or {}).get('dataset')} · {kept.get('status')}"
    elif kept:
        st.warning(f"Run {fmt.code(asked)} is {kept.get('status')} and no model of it finished, so there is nothing to "
                   "compare. Start it again from the Distill page.", icon=":material/block:")
        st.page_link("pages/distill.py", label="Set up a run", icon=":material/tune:")
        st.stop()
    elif ids:
        missing = asked
if not ids:
    st.info("No finished run yet. Start one and its comparison appears here.", icon=":material/info:")
    st.page_link("pages/home.py", label=f"Start the {DEMO_SECONDS}-second demo", icon=":material/play_arrow:")
    st.stop()
if "compare_run" not in ss or ss.compare_run not in ids or (asked in ids and asked != ss.compare_run):
    # A run cancelled before its students finished has no headline: open on the newest that finished.
    ss.compare_run = asked if asked in ids else newest_finished(runs) or ids[0]
if missing:
    st.warning(f"Run {fmt.code(missing)} has no results on this server; showing run "
               f"{fmt.code(ss.compare_run)} instead.", icon=":material/help:")
st.selectbox("Run", ids, key="compare_run", format_func=labels.get)
run_id = ss.compare_run
if st.query_params.get("run") != run_id:
    st.query_params["run"] = run_id

results = load_results(run_id)
if not results:
    st.error(f"The results of run {fmt.code(run_id)} could not be read.")
    st.stop()
cfg = results.get("config") or {}
present = [r for r in ROLES if isinstance(results.get(r), dict)]
if results.get("status") in (CANCELLED, INTERRUPTED) and not present:
    st.warning(f"Run {fmt.code(run_id)} was {results['status']} before any model finished, so there is nothing to compare. "
               "Start it again from the Distill page.", icon=":material/block:")
    st.page_link("pages/distill.py", label="Set up a run", icon=":material/tune:")
    st.stop()
if results.get("status") in (CANCELLED, INTERRUPTED):
    why = CANCELLED if results["status"] == CANCELLED else f"{INTERRUPTED} (its server stopped while it ran)"
    st.warning(f"This run was {why}: only the models that finished before that are shown. Latencies are "
               "timed after all three have trained, so the speed-up needs a finished run.",
               icon=":material/block:")
TEACHER_FROM = {"train": "trained in this run", "cache": "from the cache (an earlier run with the same recipe)",
                "checkpoint": "a given checkpoint"}
teacher_from = TEACHER_FROM.get((results.get("teacher") or {}).get("source"))
skipped = (results.get("dataset") or {}).get("source", "")
st.caption(f"{cfg.get('dataset')} · method {method_setting(cfg)} · "
           f"{fmt.things(cfg.get('epochs') or 0, 'student epoch')} · device {results.get('device', '?')} · "
           f"{fmt.duration(results.get('seconds'))} in all" + (f" · teacher {teacher_from}" if teacher_from else ""))
st.caption(student_made(results))
if results.get("precision"):
    st.caption(fmt.plain(fmt.sentence(describe_precision(results["precision"]))))
if "skipped" in skipped:  # an image folder's unreadable files: the run left them out
    st.caption(f"Data: {fmt.plain(skipped)}")
class_names = (results.get("dataset") or {}).get("class_names") or []
comparison = comparison_headline(results)  # as the engine words it, for runs of any age
if chance := comparison.get("chance_teacher"):  # the CLI's summary says the same
    st.warning(chance, icon=":material/warning:")

# ---- headline -------------------------------------------------------------------------------------
h = headline(results)
# A row that wraps, so a narrow screen never cuts a number: four across on a wide laptop, two by two
# on a narrow one. Short labels and "pts"; the sentence below says it in full.
row = wrapping_row("headline_cards", 11.5)
row.metric("Smaller file", fmt.times(h["smaller_x"]), border=True, height="stretch",
           help="Checkpoint file (fp32 state_dict) of the teacher / that of the distilled student.")
# What each figure is of, on the cards themselves (a tooltip is not read): the split and epoch of
# the accuracies, the batch, threads and precision of the speed-up.
row.metric(f"Faster, batch 1 ({h['latency_device']})", fmt.times(h["faster_x"]), border=True, height="stretch",
           delta=" · ".join(part for part in (f"batch {h['batch']}: {fmt.times(h['faster_x_batch'])}"
                                              if h["faster_x_batch"] else "", speed_terms(h)) if part) or None,
           delta_color="off", delta_arrow="off",
           help="Median latency of one forward pass after warm-up: teacher / distilled student, timed in turn.")
row.metric("Accuracy vs the teacher", fmt.points(h["delta_points"], unit="pts"), border=True, height="stretch",
           delta="validation, last epoch", delta_color="off", delta_arrow="off",
           help="Distilled student minus teacher, validation accuracy at the last epoch.")
gain = h["kd_gain"]
verdict = gain_verdict(gain)  # the engine's: the CLI's summary gives the same
color, arrow = VERDICT_STYLE.get(verdict, ("off", "off"))
row.metric("KD gain over scratch", fmt.points(gain, unit="pts"), border=True, height="stretch",
           delta=GAIN_WORDS.get(verdict), delta_color=color, delta_arrow=arrow,  # the split: on the card beside
           help="Distilled student minus the same student trained without a teacher (same recipe, "
                f"same initial weights). Within {NOISE_POINTS:g} point either way it is called no clear gain.")
if h["sentence"]:
    st.markdown(h["sentence"])
if terms := loss_terms(results):
    st.caption(terms)
weak = comparison.get("weak_teacher")
if weak:  # the evidence beside the reason: the teacher's curve under the scratch student's
    st.warning(weak, icon=":material/school:")
    with st.expander("The teacher's curve and the scratch student's"):
        st.plotly_chart(accuracy_figure({r: (results.get(r) or {}).get("history") or [] for r in (TEACHER, SCRATCH)}),
                        key="weak_teacher_curves", config={"displaylogo": False})

# ---- over seeds: a sweep's cell -------------------------------------------------------------------
if seeds := seed_runs(run_id):
    st.subheader(f"Over {len(seeds)} seeds")
    stats = over_seeds(seeds)
    cards = wrapping_row("seed_cards", 11.5)
    for key, label, unit in (("gain_points", "KD gain over scratch", " pts"), ("kd_accuracy", "Distilled student", " %"),
                             ("scratch_accuracy", "Scratch student", " %"), ("teacher_accuracy", "Teacher", " %")):
        if key in stats:
            mean, std = stats[key]
            cards.metric(label, f"{mean:+.1f} ± {std:.1f}{unit}" if key == "gain_points" else
                         f"{mean:.1f} ± {std:.1f}{unit}", border=True, help="Mean ± std over the seeds")
    st.caption("Each seed's figures (validation, last epoch); the run shown above is marked.")
    for r in seeds:
        mark = " ← this run" if r["run_id"] == run_id else ""
        st.page_link("pages/compare.py", label=f"seed {r['seed']}: KD {fmt.percent(r['kd_accuracy'])}, scratch "
                                               f"{fmt.percent(r['scratch_accuracy'])}, gain {r['gain_points']:+.1f} "
                                               f"pts · run {r['run_id']}{mark}", query_params={"run": r["run_id"]})

# ---- the table ------------------------------------------------------------------------------------
st.subheader("Side by side")
scores, costs = comparison_tables(results)
st.table(scores, hide_index=True)
st.table(costs, hide_index=True)
lat = latency_table(results)
st.caption(lat["note"])

metrics = [
    # last epoch, like the headline and the confusion matrices
    ("val accuracy (last epoch)", {r: 100 * results[r]["accuracy"] for r in present
                                   if results[r].get("accuracy") is not None}, "{:.1f} %"),
    ("parameters", {r: results[r]["params"] for r in present if results[r].get("params") is not None}, "{:,.0f}"),
    ("size (MB, fp32)", {r: results[r]["size_bytes"] / 1e6 for r in present if results[r].get("size_bytes")},
     "{:.3g}"),
    ("MFLOPs / image", {r: results[r]["flops"] / 1e6 for r in present if results[r].get("flops")}, "{:.3g}"),
    (f"latency b1 (ms, {h['latency_device']})", lat["b1"], "{:.3g}"),
]
# One small chart a metric, in a row that wraps: five across on a laptop, two by two on a phone.
bars = wrapping_row("metric_bars", 9, max_share=0.5)
for title, values, form in metrics:
    if values:
        bars.plotly_chart(bar_figure(title, values, form), key=f"bars_{title}", config={"displaylogo": False})

# ---- fidelity and calibration -------------------------------------------------------------------
st.subheader("How closely the students copy the teacher")
st.caption("Agreement: the share of images on which a student's top answer is the teacher's. KL: the mean "
           "KL(teacher ‖ student) of their probabilities at T = 1, 0 when they match exactly. Validation split, "
           "last epoch; training split once at the end, on the images the students learnt from. Distillation can "
           "raise accuracy while the student stays far from its teacher (Stanton et al. 2021).")
fidelity_row = wrapping_row("fidelity_cards", 11.5)
for role in (DISTILLED, SCRATCH):
    entry = results.get(role) or {}
    if entry.get("val_agreement") is None:
        continue
    short = ROLE_LABEL[role].split()[0].capitalize()  # "Distilled": the card's label must fit at 1024 px
    fidelity_row.metric(f"{short}: agreement", fmt.percent(entry["val_agreement"]),
                        border=True, height="stretch",
                        delta=f"{fmt.percent(entry.get('train_agreement'))} on training images", delta_color="off",
                        delta_arrow="off", help=f"The {ROLE_LABEL[role]}'s top answer is the teacher's on this share "
                                                "of the validation split, last epoch; below it, the training split.")
    fidelity_row.metric(f"{short}: KL to teacher", f"{entry['val_kl_teacher']:.3f}",
                        border=True, height="stretch", delta=f"{entry.get('train_kl_teacher', 0):.3f} on training "
                        "images", delta_color="off", delta_arrow="off",
                        help="Mean KL(teacher ‖ student) at T = 1, in nats; validation split, last epoch.")
for role in (DISTILLED, SCRATCH):
    for key in ("fidelity_note", "not_reused"):  # a scratch student reused, or asked for and trained here
        if note := (results.get(role) or {}).get(key):
            st.caption(f"{ROLE_LABEL[role].capitalize()}: {note}.")
cal, per_class = st.columns(2)
if any((results.get(r) or {}).get("reliability") for r in present):
    cal.plotly_chart(reliability_figure({r: results[r] for r in present}), key="reliability",
                     config={"displaylogo": False})
    cal.caption("ECE: expected calibration error, the gap between confidence and accuracy over 15 equal-width "
                "confidence bins, weighted by the images in each.")
gains = comparison.get("per_class_gain_points") or []
if gains:
    per_class.plotly_chart(class_gain_figure(gains, class_names), key="class_gain", config={"displaylogo": False})

# ---- confusion matrices ---------------------------------------------------------------------------
st.subheader("Confusion matrices")
st.caption("Validation split, last epoch. Each row is a true class; its cells are the share of that class's "
           "images (%) given each predicted class, so the diagonal is the per-class accuracy.")
# Three across only where each is wide enough to read its cells' numbers (a wide window); two to a
# row on a 1024-pixel laptop, one on a phone. The last alone keeps the others' width.
matrices = wrapping_row("confusion_matrices", 16.5, max_share=0.5)
for role in present:
    matrix = results[role].get("confusion_matrix")
    if matrix:
        matrices.plotly_chart(confusion_figure(matrix, class_names, f"{ROLE_LABEL[role]} · "
                                          f"{fmt.percent(results[role].get('accuracy'))}", ROLE_COLOR[role]),
                         key=f"confusion_{role}", config={"displaylogo": False})

# ---- where teacher and student disagree -----------------------------------------------------------
st.subheader("Where the teacher and the distilled student disagree")
rows = results.get("disagreements") or []
if not rows:
    st.caption("No disagreements recorded for this run." if "student_kd" in present else
               "The distilled student did not finish, so there is nothing to compare.")
else:
    images, why = val_images(cfg)
    if images is None:
        st.caption(f"The images cannot be shown: {fmt.plain(why)}.")
    else:
        def name(i: int) -> str:
            return str(class_names[i]) if i < len(class_names) else str(i)

        st.caption("Validation images where the two answer differently, the most confident clashes first.")
        per_row = 6
        shown = [r for r in rows if 0 <= r["index"] < len(images)][:18]
        for start in range(0, len(shown), per_row):
            grid = st.columns(per_row)
            for col, row in zip(grid, shown[start:start + per_row]):
                t, s = row["teacher"], row["student_kd"]
                mark_t = "✓" if t["pred"] == row["label"] else "✗"
                mark_s = "✓" if s["pred"] == row["label"] else "✗"
                col.image(to_picture(images[row["index"]]), width=112)
                col.caption(f"true {fmt.code(name(row['label']))}  \n"  # class names are folder names
                            f"teacher {fmt.code(name(t['pred']))} ({100 * t['prob']:.0f} %) {mark_t}  \n"
                            f"student {fmt.code(name(s['pred']))} ({100 * s['prob']:.0f} %) {mark_s}")

# ---- compression side by side ---------------------------------------------------------------------
st.subheader("Distillation beside quantisation and pruning")
st.caption("The teacher and the distilled student in half precision, int8 (static, calibrated on training "
           "images) and magnitude-pruned, beside their fp32 rows.")
if "student_kd" in present:
    compression_section(results, key="compare_compress")
else:
    st.caption("The distilled student did not finish, so there is nothing to compress.")

# ---- files ----------------------------------------------------------------------------------------
art = results.get("artifacts") or {}
last = art.get("student_kd_last")  # the epoch every number on this page is from
if last and Path(last).is_file():
    with st.expander("Files"):
        st.caption(f"Everything of this run is in {fmt.code(art.get('dir'))}.")
        st.download_button("Distilled student (last epoch, state_dict)", Path(last).read_bytes(),
                           file_name=export_file_name(run_id, "pt", cfg.get("student") or "student"), on_click="ignore",
                           icon=":material/download:", key="download_student")

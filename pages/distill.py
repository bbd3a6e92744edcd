"""Distill: choose the data, the teacher, the student and the recipe, then start a run."""
import math

import streamlit as st

from distill_core import (DATASETS, DERIVED, DISTILL_DATA, METHODS, MODELS, describe_devices, method_formula,
                          method_legend, method_options, method_uses, paths, repeat_command, resolve_device,
                          resolve_precision)
from studio import derive_view, fmt, folders
from studio.folder_uploads import MAX_ZIP_BYTES
from studio.folders import folder_classes, folder_summary
from studio.form import (ALPHA_RANGE, IMAGE_SIZE_RANGE, PRESETS, T_RANGE, TEACHER_MODES, VAL_FRACTION_RANGE, W,
                         apply_preset, blocking_problems, by_section, cached_teachers, batch_note, collect,
                         ensure_state, option_key, options, reused_teacher, sync_url, weak_teacher_hint, worded)
from studio.health import home_problem, start_blocker
from studio.layout import wrapping_row
from studio.manager import get_manager
from studio.nav import require_app
from studio.model_info import input_spec, model_card
from studio.uploads import check_teacher_file_cached, mark_used, take_teacher, take_zip, uploader_key

require_app()

def method_label(name: str) -> str:
    meta = METHODS.meta(name)
    return f"{name}  ·  {meta.get('title', '')} ({meta.get('cite', '').split()[-1]})"  # the authors are in its caption


def method_caption(name: str) -> str:
    meta = METHODS.meta(name)
    return f"**Transfers** {meta.get('summary', '')}. *{meta.get('paper', '')}*. Matches {meta.get('reference', '')}."


def option_widget(method: str, option) -> None:
    """A method option's widget, from its declaration. Numbers have no bounds here: a value out of
    range is shown, and refused beside the method with the engine's own words."""
    key, label = option_key(method, option), option.name.replace("_", " ")
    if option.kind is bool:
        st.toggle(label, key=key, help=option.help)
    elif option.choices:
        st.selectbox(label, list(option.choices), key=key, help=option.help)
    elif option.kind is int:
        st.number_input(label, step=1, key=key, help=option.help)
    else:
        step = 10.0 ** (math.floor(math.log10(option.default)) - 1) if option.default > 0 else 0.1
        st.number_input(label, step=step, format="%g", key=key, help=option.help)


def formula_of(config) -> tuple[str, str]:
    """The method's formula, with the page's values; with the defaults where an option is unreadable
    (its problem is said beside the method)."""
    try:
        return method_formula(config.method, config.temperature, config.alpha, config.extra)
    except Exception:  # noqa: BLE001 - a formula must not take the page down
        return method_formula(config.method, config.temperature, config.alpha, {})


def dataset_label(name: str) -> str:
    # The sizes ("45,000 train / 5,000 val / 10,000 test") are under the box: in it, the box's
    # half of a 1024-pixel page cut them ("4,000 train / 1,0…").
    return f"{name}  ·  {'offline' if DATASETS.meta(name).get('offline') else 'download'}"


def dataset_sizes(name: str) -> str:
    """'4,000 train / 1,000 val images', or '' where the sizes are the user's folder's."""
    size = DATASETS.meta(name).get("size", "")
    return f"{size} images" if size and any(c.isdigit() for c in size) else ""


def upload_note(kind: str, folder: str | None = None) -> None:
    """What became of the last upload of this kind when it was kept (unpacked into ``folder``); a
    refusal is said once, as the field's problem (``form.blocking_problems``)."""
    note = ss.get(f"{kind}_note")
    if note and note[0] == "success" and (folder is None or folder == ss.get("zip_folder")):
        st.success(note[1], icon=":material/check:")


ensure_state()
ss = st.session_state
opts = options()
cannot_write = home_problem() is not None  # said at the top of the page; no upload can be kept

st.title("Distill")
top = st.container(horizontal=True, wrap=True, vertical_alignment="center")  # buttons as wide as their labels
for name, preset in PRESETS.items():
    top.button(preset.label, key=f"preset_{name}", on_click=apply_preset, args=(name,), help=preset.help,
               icon=":material/bolt:", width="content")
top.caption("The address bar holds this whole setup: copy the link to share it or come back to it.")
for note in ss.get("form_notes", []):
    st.warning(note, icon=":material/link:")

# ---- data and models ------------------------------------------------------------------------------
left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("Data and models")
    st.selectbox("Dataset", opts["dataset"], key=W + "dataset", format_func=dataset_label,
                 help="offline: comes with the studio, no network needed. download: fetched once, on its first "
                      "run. The sizes of its splits are under the box.")
    dataset = ss[W + "dataset"]
    meta = DATASETS.meta(dataset)
    sizes = dataset_sizes(dataset)
    if not meta.get("offline"):
        st.caption((f"{sizes}. " if sizes else "") + f":material/cloud_download: {meta.get('source')}. On a machine "
                   f"without network, place its files in `{paths.data_dir()}` beforehand.")
    elif sizes:
        st.caption(f"{sizes}.")
    if dataset == "imagefolder":
        st.text_input("Image folder on this server", key=W + "data_dir",
                      placeholder="/path/to/folder with one sub-folder of images per class")
        if folders.awaiting_confirmation(ss.get(W + "data_dir")):  # a link's folder: read once confirmed here
            st.button("Read this folder", key="data_dir_confirm", icon=":material/folder_open:",
                      on_click=folders.confirm, args=(ss.get(W + "data_dir") or "",))
        # The limit in the label: Streamlit's drop zone says the server's (the teacher's 1 GB) whatever
        # max_upload_size is.
        st.file_uploader(f"Or upload a .zip of the class folders (at most {MAX_ZIP_BYTES // 2**20} MB)",
                         type=["zip"], key=uploader_key("zip"), on_change=take_zip, max_upload_size=MAX_ZIP_BYTES // 2**20, disabled=cannot_write,
                         help="From your own computer: a .zip of a folder with one sub-folder of images per class, "
                              f"at most {MAX_ZIP_BYTES // 2**20} MB. Its images are unpacked into this server's "
                              "uploads folder, and the field above points at them.")
        upload_note("zip", folder=ss.get(W + "data_dir"))
        boxes_folder = st.container()  # its problems show here, under the field
        if summary := folder_summary(ss.get(W + "data_dir")):
            st.caption(summary)
        f1, f2 = st.columns(2)
        f1.number_input("Image size (pixels, square)", min_value=IMAGE_SIZE_RANGE[0], max_value=IMAGE_SIZE_RANGE[1],
                        step=8, key=W + "image_size", help="Every picture is resized to this before training.")
        f2.number_input("Validation share", min_value=VAL_FRACTION_RANGE[0], max_value=VAL_FRACTION_RANGE[1],
                        step=0.05, format="%.2f", key=W + "val_fraction",
                        help="The part of each class held out to measure accuracy (a fixed split, by the seed).")

    st.radio("Teacher", list(TEACHER_MODES), key=W + "teacher_mode", format_func=TEACHER_MODES.get, horizontal=True)
    mode = ss[W + "teacher_mode"]
    upload_error = None
    if mode == "train":
        st.selectbox("Teacher model", opts["teacher"], key=W + "teacher")
        st.checkbox("Reuse if cached", key=W + "reuse",  # its own row: beside the model it read "Reus…" at 1024 px
                    help="A teacher trained before with exactly this model, data, recipe and seed is loaded "
                         "instead of trained again.")
        boxes_reuse = st.empty()  # filled below, once the whole config is known
    elif mode == "cached":
        found = cached_teachers(dataset, (ss.get(W + "data_dir") or "") if dataset == "imagefolder" else None)
        paths_ = [t["path"] for t in found]
        labels = {t["path"]: f"{t.get('teacher')}  ·  {fmt.percent(t.get('accuracy'))} val  ·  "
                             f"{fmt.things(t.get('epochs') or 0, 'epoch')}, lr {t.get('lr')}, seed {t.get('seed')}"
                  for t in found}
        if ss.get(W + "cached") not in paths_:
            ss[W + "cached"] = paths_[0] if paths_ else None
        if found:
            st.selectbox("Cached teacher (accuracy on the validation split)", paths_, key=W + "cached",
                         format_func=labels.get)
    else:
        st.selectbox("The checkpoint's model", opts["teacher"], key=W + "teacher")
        uploaded = st.file_uploader("Teacher state_dict (.pt)", type=["pt", "pth", "bin"], key=uploader_key("teacher"),
                                    on_change=take_teacher, disabled=cannot_write,
                                    help="torch.save(model.state_dict(), path). Loaded with weights_only=True: "
                                         "files that could run code are refused, and deleted.")
        upload_note("teacher")
        if ss.get("uploaded_path"):
            stored = ss.uploaded_path.rsplit("/", 1)[-1]
            name = ss.get("uploaded_name") or stored.split("-", 1)[-1]  # stored as <content hash>-<its name>
            upload_error = check_teacher_file_cached(ss.uploaded_path, ss[W + "teacher"], dataset, classes=(
                folder_classes(ss.get(W + "data_dir")) if dataset == "imagefolder" else None))
            upload_error = upload_error and upload_error.replace(stored, name)
            if upload_error is None:
                st.success(f"{fmt.code(name)} fits {ss[W + 'teacher']} on {dataset}.", icon=":material/check:")
            # The file stays chosen when the uploader is empty (another teacher mode, another page
            # and back: the widget forgets, the upload was lost); forgetting it is a click.
            if uploaded is None:
                u1, u2 = st.columns([3, 1], vertical_alignment="center")
                u1.caption(f"Using {fmt.code(name)}, uploaded earlier. Upload another file to replace it.")
                if u2.button("Forget it", key="forget_upload", width="stretch"):
                    ss.uploaded_path = ss.uploaded_name = None
                    st.rerun()

    boxes_teacher = st.container()  # the teacher file's problem, under the field that asks for it
    st.selectbox("Student model", opts["student"], key=W + "student", format_func=derive_view.student_label,
                 help="A model of the zoo, or one derived from the teacher: fewer blocks and channels, started from "
                      "its weights.")
    if ss[W + "student"] == DERIVED:
        derive_view.controls()
    boxes = {"data": st.container(), "teacher": boxes_teacher, "student": st.container()}
    if dataset == "imagefolder":
        boxes["folder"] = boxes_folder

config = collect()
if mode == "train" and (reused := reused_teacher(config)):
    boxes_reuse.caption(f"A {config.teacher} trained with this recipe is cached "
                        f"({fmt.percent(reused.get('accuracy'))} val): it is reused, so only the students train.")
if mode == "train" and (hint := weak_teacher_hint(config)):
    boxes["data"].warning(hint, icon=":material/school:")

with right:
    st.subheader("Size and cost")
    channels, size, classes, exact = input_spec(config.dataset, config.image_size)
    classes = (folder_classes(config.data_dir) or classes) if config.dataset == "imagefolder" else classes
    cards = {"teacher": model_card(config.teacher, channels, size, classes),
             "student": derive_view.derived_card(config.teacher, channels, size, classes, config.derive_depth,
                                                 config.derive_width) if config.student == DERIVED else
             model_card(config.student, channels, size, classes)}
    # Side by side where they fit, one above the other where not: two columns of a 1024-pixel
    # screen cut "3.5 MB" to "3.5…".
    pair = wrapping_row("size_cards", 10.5)
    for role, arch in (("teacher", config.teacher), ("student", config.student)):
        card = cards[role]
        with pair.container(border=True):
            # a derived student in the words of the student's selector above
            st.markdown(f"**{role.capitalize()}: {derive_view.student_label(arch)}**" if arch == DERIVED else
                        f"**{role.capitalize()}: `{arch}`**")
            st.caption(f"cut from {config.teacher}" if arch == DERIVED else
                       MODELS.meta(arch).get("family", "") if arch in MODELS else "")
            if "error" in card:
                st.error(card["error"])
                continue
            st.metric("Parameters", fmt.params(card["params"]))
            st.metric("Checkpoint size", fmt.size(card["size_bytes"]))
            st.metric("FLOPs per image", fmt.count(card["flops"]))
            if picture := derive_view.kept_picture(card.get("derivation")):
                st.caption(picture)  # which blocks of each stage it keeps
    if "error" not in cards["teacher"] and "error" not in cards["student"]:
        smaller = cards["teacher"]["size_bytes"] / max(1, cards["student"]["size_bytes"])
        cheaper = cards["teacher"]["flops"] / max(1, cards["student"]["flops"])
        same_size = fmt.times(smaller) == fmt.times(1.0)  # a ratio that rounds to 1.0x is "the same", not "1.0x smaller"
        as_big = ("**the same size** as the teacher's" if same_size else
                  f"**{fmt.times(smaller)} smaller** than the teacher's")
        flops = ("**as many FLOPs** as the teacher" if fmt.times(cheaper) == fmt.times(1.0) else
                 f"**{fmt.times(cheaper)} fewer FLOPs** than the teacher" if cheaper > 1 else
                 f"**{fmt.times(1 / cheaper)} more FLOPs** than the teacher")
        st.markdown(f"The student's checkpoint is {as_big}, and it needs {flops}." if same_size or smaller > 1 else
                    f"This student is **larger** than its teacher ({fmt.times(1 / smaller)}): allowed, but unusual.")
    st.caption(f"For {channels}×{size}×{size} images and {classes} classes"
               + ("" if exact else " (colour assumed: whether the pictures are grey shows when the run "
                                   "loads them)")
               + ". FLOPs count 2 per multiply-add.")

# ---- the method and its loss -------------------------------------------------------------------
st.subheader("The method and its loss")
l1, l2 = st.columns([1, 1.3], gap="large")
l1.selectbox("Distillation method", opts["method"], key=W + "method", format_func=method_label,
             help="What the student learns from the teacher. The scratch student is the same for every method: "
                  "plain cross-entropy, no teacher.")
method = ss[W + "method"]
l2.caption(method_caption(method))
boxes["method"] = st.container()  # the method's problems (options, a model without feature maps)
# The method's options, T and alpha in a row that wraps (two to a row on a laptop), and the formula
# under them at the page's full width: a formula needs more than a column of a 1024-pixel page.
knobs = wrapping_row("method_knobs", 12, max_share=0.5)
with knobs:
    for option in method_options(method):
        option_widget(method, option)
    uses = method_uses(method, config.extra if method == config.method else {})
    st.slider("Temperature T", *T_RANGE, step=0.5, key=W + "temperature", disabled="temperature" not in uses,
              help="Softens the teacher's probabilities: higher T shows more of how it ranks the wrong classes."
              if "temperature" in uses else f"{method} does not use a temperature.")
    st.slider("alpha (weight of the soft targets)", *ALPHA_RANGE, step=0.05, key=W + "alpha", disabled="alpha" not in uses,
              help="0 = train on the labels only (no distillation); 1 = learn from the teacher only."
              if "alpha" in uses else f"{method} weighs its terms with its own options, not alpha.")
boxes["loss"] = st.container()
symbols, values = formula_of(config)
st.latex(symbols)  # two lines where it is long: on one line a formula is wider than the page on a laptop
st.latex(values)
st.caption(method_legend(config.method))

# ---- the recipe -----------------------------------------------------------------------------------
st.subheader("Recipe")
teacher_trains = mode == "train"
r = st.columns(4)
r[0].number_input("Student epochs", step=1, key=W + "epochs",
                  help="Both students, scratch and distilled, train this long.")
r[1].number_input("Teacher epochs", step=1, key=W + "teacher_epochs", disabled=not teacher_trains,
                  help=None if teacher_trains else "Only used when the teacher is trained here.")
r[2].number_input("Batch size", step=16, key=W + "batch_size")
r[3].number_input("Learning rate", step=0.01, format="%g", key=W + "lr")  # %g: 4e-05 is not "0.0000"
r = st.columns(4)
r[0].selectbox("Optimizer", opts["optimizer"], key=W + "optimizer")
r[1].selectbox("LR schedule", opts["schedule"], key=W + "schedule")
# The mode's name in the box (a quarter of the page is too narrow for the sentence); the sentences in the help.
r[2].selectbox("Distillation data", opts["distill_data"], key=W + "distill_data",
               help="What the distilled student is shown (the scratch student always sees plain images):\n"
                    + "\n".join(f"- **{m}**: {text}" for m, text in DISTILL_DATA.items()))
r[3].number_input("Seed", step=1, key=W + "seed")
boxes["recipe"] = st.container()

names = describe_devices()
try:
    auto_name = names.get(resolve_device("auto").type, "cpu")
except Exception:  # noqa: BLE001 - only a label
    auto_name = "cpu"


def device_label(d: str) -> str:
    if d == "auto":
        return f"auto (here: {auto_name})"
    return names.get(d, f"{d} (not available on this machine)")


st.radio("Device", opts["device"], key=W + "device", format_func=device_label, horizontal=True)
boxes["device"] = st.container()


def precision_here(p: str) -> str:
    """What a precision does on the device chosen above, on this machine, in a few words."""
    try:
        here = resolve_precision(p, resolve_device(ss[W + "device"]))
    except Exception:  # noqa: BLE001 - only a note; the problem itself shows under Start
        return "here: bf16 is not supported (see under Start)" if p == "bf16" else ""
    return f"here: trains in {here.train}, the teacher labels in {here.teacher_labels}"


with st.expander("More options"):
    m = st.columns(3)
    m[0].number_input("Momentum (SGD)", step=0.05, format="%.2f", key=W + "momentum")
    m[1].number_input("Weight decay", step=1e-4, format="%g", key=W + "weight_decay")
    m[2].toggle("Augment (random crops, flips where they make sense)", key=W + "augment")
    m = st.columns(3)
    m[0].selectbox("Precision", opts["precision"], key=W + "precision",
                   help="The forward passes of training. **bf16** (bfloat16 autocast) is faster where the hardware "
                        "has it, a CPU with AMX or a GPU with native bf16 (the demo's teacher trained 1.3x faster on "
                        "2 CPU cores with AMX); the losses and the optimizer stay fp32. **auto** picks bf16 there "
                        "and fp32 elsewhere. Accuracy and latency are always measured in fp32, the precision the "
                        "checkpoints are saved in.")
    m[0].caption(fmt.sentence(here) if (here := precision_here(ss[W + "precision"])) else "")
    m[1].toggle("torch.compile", key=W + "compile",
                help="Compile the models before training: it pays on a GPU over long runs; on a CPU the "
                     "compilation takes longer than a short run saves.")

config = collect()
sync_url(config)

# ---- start ----------------------------------------------------------------------------------------
st.divider()
found = blocking_problems(config, upload_error)
for section, problems_here in by_section(found).items():
    for problem in problems_here:
        boxes.get(section, boxes["data"]).error(worded(problem), icon=":material/error:")
if note := batch_note(config):
    boxes["recipe"].warning(note, icon=":material/warning:")
manager = get_manager()
busy = [j for j in manager.jobs() if j.active]
runs_busy = [j for j in busy if j.kind == "run"]
b1, b2, b3 = st.columns([1, 1.5, 2.5], vertical_alignment="center")  # "config.json" whole at 1024 px
blocked = start_blocker()  # the server's own problem (its home, its run store), said at the top of the page
start = b1.button("Start", type="primary", icon=":material/play_arrow:", disabled=bool(found) or bool(blocked),
                  key="start", width="stretch", help=blocked or ("Fix the problems above first." if found else None))
b2.download_button("config.json", config.to_json() + "\n", file_name="config.json", mime="application/json",
                   icon=":material/download:", key="download_config", on_click="ignore",
                   help=f"The same run from a terminal: {repeat_command('config.json')}")
if blocked:
    b3.caption(f"Start is disabled. {blocked}")
elif found:
    b3.caption(f"Start is disabled until the {fmt.things(len(found), 'problem')} marked in red "
               f"above {'are' if len(found) > 1 else 'is'} fixed.")
elif same := next((j for j in runs_busy if j.config == config and not j.stopping), None):  # Start joins it (JobManager.submit)
    b3.caption(f"This exact setup is already {same.status} (run {same.id}): Start shows that run instead of "
               "training it twice.")
elif busy:
    b3.caption(f"{fmt.things(len(busy), 'run')} already queued or running on this server; a new one waits its turn.")
if start and not found and not blocked:
    mark_used(config.data_dir, config.teacher_checkpoint)  # the uploads a run uses are the last the cap removes
    job_id = manager.submit(config)
    ss.job_id = job_id
    st.switch_page("pages/live.py", query_params={"job": job_id})

"""Learn: what distillation passes on, shown on a real teacher's answers, and three exercises."""
import math
import random

import streamlit as st

from distill_core import DONE, DistillError, RunConfig, dark_knowledge, demo_teacher_ready, entropy_bits, kl_shares
from studio import fmt, kept
from studio.learn_view import (EXERCISES, TEMPERATURES, answer_rows, confused_pairs, first_choice, gradient_figure,
                               lesson_of, probabilities, similarity_figure, soft_target_figure, sweep_trials,
                               weights_words)
from studio.form import DEMO_SECONDS
from studio.gallery import to_picture, val_images
from studio.health import start_blocker
from studio.manager import get_manager
from studio.nav import require_app
from studio.runs import list_runs, load_results

require_app()
st.title("Learn")
st.caption("What a teacher knows that its labels do not say, on this app's real models. Every number below "
           "comes from them, on the validation split.")


# ---- which teacher ------------------------------------------------------------------------------------
ss = st.session_state
WAYS = {"class": "by class", "random": "at random", "disagree": "where teacher and student disagree"}  # URL: label
DEMO = "demo"  # the cached demo teacher in a link (it is no run: None in the picker)
asked = kept.link("learn")  # a link's run, image and way of picking; none when the sidebar opened the page
kept.restore("learn_kept")
finished = [r for r in list_runs() if r["status"] == DONE]
trials = sweep_trials()
# Newest first: its student's answers overlay the teacher's; the demo teacher has none.
choices = [r["run_id"] for r in finished] + ([None] if demo_teacher_ready() else [])
labels = {None: "the cached demo teacher",
          **{r["run_id"]: r["label"] + (" · sweep trial" if r["run_id"] in trials else "") for r in finished}}
if asked is not None:
    ss.learn_run = None if asked.get("run") == DEMO else asked.get("run")
    ss.learn_image_asked = asked.get("image")
    ss.learn_way = WAYS.get(asked.get("pick"), WAYS["class"])
    if ss.learn_run and ss.learn_run not in choices:
        st.warning(f"There is no finished run {fmt.code(ss.learn_run)}: showing another teacher.",
                   icon=":material/warning:")
if not choices:
    st.info("There is no teacher to learn from yet. Train the demo: a teacher and two students on the MNIST "
            f"sample shipped with the app, about {DEMO_SECONDS} s on a 2-core laptop.", icon=":material/school:")
    blocked = start_blocker()  # said at the top of the page
    if st.button("Train the demo teacher", type="primary", icon=":material/play_arrow:", disabled=bool(blocked),
                 help=blocked) and not blocked:
        job_id = get_manager().submit(RunConfig())
        st.switch_page("pages/live.py", query_params={"job": job_id})
    st.stop()
if "learn_run" not in ss or ss.learn_run not in choices or (asked is not None and not asked.get("run")):
    ss.learn_run = first_choice(choices, trials)  # a sweep's 1-epoch trial is a poor first lesson
run_id = st.selectbox("Teacher", choices, format_func=lambda r: labels[r], key="learn_run")
linked_image = ss.pop("learn_image_asked", None)  # for this teacher only, shown or not
try:
    lesson = lesson_of(run_id)
except DistillError as exc:
    kept.write_url("learn", {"run": run_id or DEMO})
    st.error(f"This teacher cannot be shown: {fmt.plain(fmt.sentence(str(exc)))}", icon=":material/error:")
    st.stop()
classes, labels_t = lesson.classes, lesson.labels
student = lesson.student_logits

# ---- 1. what the teacher knows ------------------------------------------------------------------------
st.header("1. What the teacher knows")
n = int(labels_t.shape[0])
if linked_image is not None:
    try:
        ss.learn_image = lesson.check_image(int(linked_image))
    except (ValueError, DistillError) as exc:
        st.error(f"The link's image {fmt.code(linked_image)} cannot be shown: "
                 f"{fmt.plain(exc) if isinstance(exc, DistillError) else 'it is not a whole number'}. Showing image 0.",
                 icon=":material/error:")
        ss.learn_image = 0
elif not 0 <= ss.get("learn_image", -1) < n:  # none yet, or kept from a teacher with more validation images
    ss.learn_image = 0
clashes = (lesson.teacher_logits.argmax(1) != student.argmax(1)).nonzero().flatten().tolist() \
    if student is not None else []


def another() -> None:
    ss.learn_image = random.randrange(n)


def new_way() -> None:
    if ss.learn_way == WAYS["random"]:
        another()


def class_picked() -> None:
    hits = (labels_t == classes.index(ss.learn_class)).nonzero().flatten().tolist()
    if hits:
        ss.learn_image = hits[0]


def clash_picked() -> None:
    ss.learn_image = ss.learn_clash


pick, how, temp = st.columns([2, 2, 3])
ways = [WAYS["class"], WAYS["random"]] + ([WAYS["disagree"]] if student is not None else [])
if ss.get("learn_way") not in ways:
    ss.learn_way = WAYS["class"]
way = how.radio("Pick an image", ways, key="learn_way", on_change=new_way)
# Each way of picking shows the image picked last, whichever way picked it (or a link named).
if way == WAYS["class"]:
    ss.learn_class = classes[int(labels_t[ss.learn_image])]
    pick.selectbox("Class", classes, key="learn_class", on_change=class_picked)
elif way == WAYS["random"]:
    pick.button("Another image", icon=":material/casino:", on_click=another)
elif clashes:
    if ss.learn_image not in clashes:
        ss.learn_image = clashes[0]
    ss.learn_clash = ss.learn_image
    pick.selectbox("Image", clashes, key="learn_clash", on_change=clash_picked)
else:
    pick.caption("The student agrees with the teacher on every validation image.")
index = ss.learn_image
ss.setdefault("learn_T", 4)
kept.keep("learn_kept", ["learn_run", "learn_way", "learn_T"])
kept.write_url("learn", {"run": run_id or DEMO, "image": str(index)}
               | ({"pick": next(k for k, v in WAYS.items() if v == way)} if way != WAYS["class"] else {}))
t = temp.select_slider("Temperature T", TEMPERATURES, key="learn_T",
                       help="Soft targets are softmax(logits / T): a higher T spreads the teacher's belief.")
label = int(labels_t[index])
p_t = probabilities(lesson.teacher_logits, index, t)
p_s = probabilities(student, index, t) if student is not None else None
chart, side = st.columns([3, 1])
chart.plotly_chart(soft_target_figure(classes, p_t, p_s, label, t), key="learn_bars", config={"displaylogo": False})
images, _ = val_images(lesson.config.to_dict())  # the picture is optional: the bars are the lesson
if images is not None and index < len(images):
    side.image(to_picture(images[index]), width=112, caption=f"validation image {index}")
side.metric("True class", classes[label])
side.metric("Entropy", f"{entropy_bits(p_t):.2f} bits", help="0 for a one-hot answer; "
            f"{math.log2(len(classes)):.2f} bits when all classes are equal.")
side.metric("Dark knowledge", fmt.percent(dark_knowledge(p_t, label)),
            help="The probability the teacher gives the wrong classes: what a one-hot label cannot teach.")
if p_s is not None:
    shares = kl_shares(p_t, p_s)
    side.metric("KL divergence", f"{sum(shares):.3f}",
                help="KL(teacher ‖ student), in nats, at this T. The classes below carry it.")
    top = sorted(range(len(classes)), key=lambda k: -abs(shares[k]))[:3]
    side.caption("Most of it on class " + ", ".join(f"{classes[k]} ({shares[k]:+.3f})" for k in top))
st.caption(f"Validation image {index} of {n}. Move T: at 1 the teacher is almost sure; higher, the other classes "
           "it half-believes show. That spread is what the student learns from.")

# ---- 2. which classes look alike ------------------------------------------------------------------------
st.header("2. Which classes look alike")
matrix, pairs = confused_pairs(classes, lesson.teacher_logits, labels_t, t)
st.plotly_chart(similarity_figure(classes, matrix, t), key="learn_similarity", config={"displaylogo": False})
st.markdown("The teacher finds these most alike: " + "; ".join(f"**{a}** and **{b}** ({share:.3f})"
                                                              for a, b, share in pairs) + ".")

# ---- 3. why T squared ------------------------------------------------------------------------------------
st.header("3. Why T²")
reference = student if student is not None else lesson.teacher_logits * 0  # an untaught student: all classes equal
st.plotly_chart(gradient_figure(lesson.teacher_logits, reference), key="learn_gradient", config={"displaylogo": False})
st.caption("Dividing the logits by T shrinks the soft term's gradient, as 1/T² once T is large: without a "
           "correction, a high T would silence the teacher. Multiplying the KL by T² keeps it level there (Hinton "
           "et al. 2015); at a low T the softmax saturates and the term is weaker still. The legend gives the T from "
           "which the curve is level. Computed on this teacher's logits and " +
           ("the distilled student's." if student is not None else "a student that has learnt nothing yet."))

# ---- 4. why match outputs, not weights --------------------------------------------------------------------
st.header("4. Why match outputs, not weights")
st.markdown(weights_words(lesson.config))

# ---- 5. exercises -------------------------------------------------------------------------------------------
st.header("5. Exercises")
st.caption(f"Each queues three runs of the offline demo, about {DEMO_SECONDS} s each on a 2-core laptop (less once "
           "their teacher is cached). Guess first, then look.")
manager = get_manager()
blocked = start_blocker()  # the server's own problem, said at the top of the page
for key, exercise in EXERCISES.items():
    with st.container(border=True):
        st.subheader(exercise.title)
        st.markdown(exercise.question)
        st.caption("What to look for: " + exercise.look_for)
        jobs = st.session_state.get(f"exercise_{key}")
        if st.button("Queue these runs", key=f"exercise_start_{key}", icon=":material/play_arrow:",
                     disabled=bool(blocked), help=blocked) and not blocked:
            jobs = [manager.submit(config) for _, config in exercise.runs]
            st.session_state[f"exercise_{key}"] = jobs
        if jobs:
            results = [load_results(job) for job in jobs]
            st.dataframe(answer_rows([label for label, _ in exercise.runs], results), hide_index=True)
            if all((r or {}).get("status") == DONE for r in results):
                with st.expander("Show the answer"):
                    st.markdown(exercise.answer)
            else:
                st.caption("The runs are in the queue: watch them on the Live page, then come back.")

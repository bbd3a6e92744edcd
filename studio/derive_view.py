"""The Distill page's "derived from the teacher" student: its controls, and a picture of what is kept.

A derived student (distill_core's ``student_model``, models/derive.py) is the teacher with fewer
blocks in each stage and fewer channels in each layer, started from the teacher's weight slices
(or from random weights: the ablation). The page draws two sliders, the initialisation, and the
weight anchor; the Size and cost cards then show the derived model beside its teacher, and
``kept_picture`` shows which blocks of each stage it keeps.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from distill_core import DERIVED, count_flops, count_params, first_line, state_dict_bytes, student_model

from . import fmt

W = "cfg_"  # the form's widget key prefix (studio/form.py)
FRACTION_RANGE = (0.05, 1.0)  # the sliders' range; the engine takes any share in (0, 1]
INIT_LABELS = {"teacher": "From the teacher's weights", "random": "From random weights (the ablation)"}
ANCHOR_HELP = ("Adds μ·‖w_s − P(w_t)‖² to both students' loss: it pulls the student towards the teacher slice it "
               "started from, P(w_t). The seed's objective is ‖w_s − w_t‖² + λ‖w_s‖²; its λ‖w_s‖² is the weight "
               "decay of the recipe (More options). 0: no anchor. Only for a student that starts from the teacher's "
               "weights: there is no P(w_t) otherwise. The term shows on Live and in the history as \"anchor\".")


def student_label(name: str) -> str:
    return "derived from the teacher" if name == DERIVED else name


def controls() -> None:
    """The derived student's widgets, under the student's choice (their labels and help never change: a
    widget whose help changes is a new widget to Streamlit)."""
    ss = st.session_state
    a, b = st.columns(2)
    a.slider("Blocks kept per stage", *FRACTION_RANGE, step=0.05, key=W + "derive_depth",
             help="The share of each stage's blocks the student keeps: block 0 (it holds the stride and the "
                  "shortcut) and evenly spaced later ones, the last included.")
    b.slider("Channels kept", *FRACTION_RANGE, step=0.05, key=W + "derive_width",
             help="The share of each layer's channels, at evenly spaced indices; channels that a residual "
                  "connection adds together keep the same ones.")
    if ss.get(W + "student_init") == "auto":  # a link's or the default: for a derived student, the teacher
        ss[W + "student_init"] = "teacher"
    c, d = st.columns([3, 2])
    c.radio("Initialisation", list(INIT_LABELS), key=W + "student_init", format_func=INIT_LABELS.get,
            horizontal=True, help="Both students, scratch and distilled, start from the same weights: the slices of "
                                  "the trained teacher's (BatchNorm statistics included), or the same architecture "
                                  "from scratch.")
    d.number_input("Weight anchor μ", step=1e-3, format="%g", key=W + "weight_anchor", help=ANCHOR_HELP)
    st.caption("The anchor keeps the student's weights near the teacher's, ‖w_s − w_t‖², where plain weight "
               "decay, λ‖w_s‖², keeps them near zero: μ weighs the distance to the teacher slice P(w_t) the "
               "student starts from; λ is the recipe's weight decay.")


@st.cache_data(show_spinner=False, max_entries=256)
def derived_card(teacher: str, in_channels: int, image_size: int, num_classes: int, depth: float,
                 width: float) -> dict:
    """{"params", "size_bytes", "flops", "derivation"} of the derived student, or {"error"}."""
    try:
        model = student_model(DERIVED, teacher, in_channels, num_classes, image_size, depth, width)
        return {"params": count_params(model), "size_bytes": state_dict_bytes(model),
                "flops": count_flops(model, (in_channels, image_size, image_size)),
                "derivation": model.derivation}
    except Exception as exc:  # noqa: BLE001 - shown on the card, never raised
        return {"error": f"No student can be derived from {teacher} with these settings: {first_line(exc)}"}


def kept_picture(derivation: Optional[dict]) -> str:
    """Each stage as a row of blocks, ■ kept and □ left out, and the channels kept; markdown lines
    that wrap (a code block would scroll sideways in a card a third of a laptop wide)."""
    if not derivation:
        return ""
    rows = []
    for i, s in enumerate(derivation.get("stages") or [], start=1):
        kept = set(s.get("kept") or [])
        rows.append(f"stage {i}: " + "".join("■" if i in kept else "□" for i in range(s["blocks"]))
                    + f" ({len(kept)} of {s['blocks']})")
    channels = derivation.get("channels") or []
    if channels:
        teacher, student = sum(c[0] for c in channels), sum(c[1] for c in channels)
        rows.append(f"channels: {fmt.count(student)} of {fmt.count(teacher)} (each layer ×{derivation['width']:g})")
    return "  \n".join(rows)

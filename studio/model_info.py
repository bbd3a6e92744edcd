"""Size and cost of a model before anything trains: params, checkpoint size, FLOPs."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from distill_core import DATASETS, count_flops, count_params, create_model, first_line, state_dict_bytes


def input_spec(dataset: str, image_size: Optional[int] = None) -> tuple[int, int, int, bool]:
    """(channels, size, classes, exact) of a dataset, from its registry entry alone.

    An image folder's shape is only known once it is read, so it is estimated (3 x 32 x 32,
    10 classes) and ``exact`` is False.
    """
    meta = DATASETS.meta(dataset) if dataset in DATASETS else {}
    shape, classes = meta.get("shape"), meta.get("classes")
    if shape and all(isinstance(s, int) for s in shape) and isinstance(classes, int):
        channels, size = shape[0], image_size or shape[-1]
        return channels, size, classes, image_size is None or image_size == shape[-1]
    return 3, image_size or 32, 10, False


@st.cache_data(show_spinner=False, max_entries=512)
def model_card(name: str, in_channels: int, image_size: int, num_classes: int) -> dict:
    """{"params", "size_bytes", "flops"} or {"error"}: cached, since FLOPs need a forward pass."""
    try:
        model = create_model(name, in_channels, num_classes, image_size)
        return {"params": count_params(model), "size_bytes": state_dict_bytes(model),
                "flops": count_flops(model, (in_channels, image_size, image_size))}
    except Exception as exc:  # noqa: BLE001 - a model that cannot take this input is shown, not raised
        return {"error": f"{name} cannot be built for {in_channels}x{image_size}x{image_size} images: "
                         f"{first_line(exc)}"}

"""Validation images for the disagreement gallery, loaded once per dataset and process."""
from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st
from PIL import Image

from distill_core import DataRequest, load_dataset


@st.cache_resource(show_spinner="Loading the validation images…", max_entries=4)
def _val_images(dataset: str, data_dir: Optional[str], val_fraction: float, image_size: Optional[int],
                seed: int) -> np.ndarray:
    data = load_dataset(dataset, DataRequest(data_dir, val_fraction, image_size, download=False, seed=seed))
    return data.val_x.cpu().numpy()  # uint8 N, C, H, W


def val_images(config: dict) -> tuple[Optional[np.ndarray], Optional[str]]:
    """(images, None), or (None, why not): the gallery is optional, the page goes on."""
    try:
        return _val_images(config.get("dataset"), config.get("data_dir"), config.get("val_fraction", 0.2),
                           config.get("image_size"), config.get("seed", 0)), None
    except Exception as exc:  # noqa: BLE001 - e.g. a dataset that is no longer on disk
        return None, f"the validation images of {config.get('dataset')} could not be loaded ({exc})"


def to_picture(image: np.ndarray, size: int = 112) -> Image.Image:
    """C, H, W uint8 -> a PIL image scaled up with sharp pixels, so 8x8 digits stay readable."""
    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    picture = Image.fromarray(np.ascontiguousarray(array))
    return picture.resize((size, size), Image.NEAREST)

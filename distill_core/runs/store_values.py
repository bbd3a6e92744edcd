"""Python values in the run store's columns: JSON text, and numbers SQLite can compare."""
from __future__ import annotations

import json
import math
from typing import Any, Optional


def dumps(value: Any) -> str:
    def default(obj: Any):
        if hasattr(obj, "item"):  # numpy / torch scalars
            return obj.item()
        return str(obj)  # paths, and anything else, as text

    return json.dumps(value, default=default, allow_nan=True)


def loads(text: Optional[str]) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def config_dict(config: Any) -> dict:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(config or {})

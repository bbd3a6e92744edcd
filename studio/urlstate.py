"""A RunConfig in the URL's query string, so that a link shares or restores a setup.

Only values that differ from ``RunConfig()`` are written: the offline demo is the bare URL, and
a link stays short. Reading is forgiving: a value that cannot be parsed is skipped with a note
for the page to show, never an exception; range checks are left to ``distill_core.problems``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import Any, Mapping

from distill_core import RunConfig, field_type

NOT_IN_URL = {"out", "cache_dir"}  # where files go is the server's business, not a link's
OTHER_PAGES = {"job", "run"}  # the Live and Compare pages' parameters, which a link may carry along
_DEFAULTS = RunConfig().to_dict()


# What people write for the loss's two knobs, as the formula names them ("T=2&alpha=0.5").
SHORT_NAMES = {"t": "temperature", "temp": "temperature", "α": "alpha", "a": "alpha"}

def _format(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _parse(name: str, text: str) -> Any:
    base, optional = field_type(name)
    if optional and text.strip().lower() in ("", "none", "null"):
        return None
    if base is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("not true or false")
    if base is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    if base is float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        return number
    if base is dict:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    return text


def to_params(config: RunConfig) -> dict[str, str]:
    """The query parameters for ``config``: its non-default fields, as text."""
    out = {}
    for name, value in config.to_dict().items():
        if name not in NOT_IN_URL and value != _DEFAULTS[name]:
            out[name] = _format(value)
    return out


def from_params(params: Mapping[str, Any], base: RunConfig | None = None) -> tuple[RunConfig, list[str]]:
    """(config, notes): ``base`` (the defaults) with every readable parameter applied."""
    values = (base or RunConfig()).to_dict()
    notes: list[str] = []
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for name, raw in params.items():
        text = raw[-1] if isinstance(raw, (list, tuple)) else str(raw)
        if name in OTHER_PAGES or name in NOT_IN_URL:
            continue
        if name not in fields:  # a misspelt setting would otherwise vanish without a word
            close = [SHORT_NAMES[name.lower()]] if name.lower() in SHORT_NAMES else \
                difflib.get_close_matches(name, sorted(fields - NOT_IN_URL), n=1)
            notes.append(f"The link's {name}={text!r} is not a setting and was ignored"
                         + (f" (did you mean {close[0]}?)." if close else "."))
            continue
        try:
            values[name] = _parse(name, text)
        except (ValueError, json.JSONDecodeError) as exc:
            reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else "not valid JSON"
            if reason.startswith("could not convert"):
                reason = "not a number"
            notes.append(f"The link's {name}={text!r} was ignored ({reason}); using {_format(values[name])}.")
    return RunConfig(**values), notes

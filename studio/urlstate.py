"""A RunConfig in the URL's query string, so that a link shares or restores a setup.

Only values that differ from ``RunConfig()`` are written: the offline demo is the bare URL, and
a link stays short. A method's options are one parameter each, ``opt.<name>`` (``method=dkd&opt.b=6``),
read with the types the method declares (``distill_core.method_options``). Reading is forgiving:
a value that cannot be parsed is skipped with a note for the page to show, never an exception;
range checks are left to ``distill_core.problems``. Notes are markdown, with what the link said in
code spans: a link is anyone's to write.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import Any, Mapping

from distill_core import METHODS, RunConfig, field_type, method_options

from . import fmt

NOT_IN_URL = {"out", "cache_dir"}  # where files go is the server's business, not a link's
OPTION = "opt."  # a method option's parameter: opt.<name>
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
        if not math.isfinite(number):  # 1e400 reads as infinity: a number, but none a setting can hold
            raise ValueError("out of range")
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
        if name not in NOT_IN_URL and name != "extra" and value != _DEFAULTS[name]:
            out[name] = _format(value)
    for name, value in sorted(config.extra.items()):
        out[OPTION + name] = _format(value)
    return out


def from_params(params: Mapping[str, Any], base: RunConfig | None = None) -> tuple[RunConfig, list[str]]:
    """(config, notes): ``base`` (the defaults) with every readable parameter applied."""
    values = (base or RunConfig()).to_dict()
    notes: list[str] = []
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    given: dict[str, str] = {}
    written: dict[str, str] = {}  # each option as the link wrote it, for the notes
    for name, raw in params.items():
        text = raw[-1] if isinstance(raw, (list, tuple)) else str(raw)
        if name in OTHER_PAGES or name in NOT_IN_URL:
            continue
        if name.startswith(OPTION):
            given[name[len(OPTION):]] = text
            written[name[len(OPTION):]] = f"{name}={text}"
            continue
        if name not in fields:  # a misspelt setting would otherwise vanish without a word
            close = [SHORT_NAMES[name.lower()]] if name.lower() in SHORT_NAMES else \
                difflib.get_close_matches(name, sorted(fields - NOT_IN_URL), n=1)
            notes.append(f"The link's {fmt.code(f'{name}={text}')} is not a setting and was ignored"
                         + (f" (did you mean {close[0]}?)." if close else "."))
            continue
        try:
            if name == "extra":  # a method's options as one JSON object: each read as its opt.<name>
                for key, value in _parse(name, text).items():
                    given[key] = _format(value)
                    written[key] = f"extra: {key}={_format(value)}"
                continue
            values[name] = _parse(name, text)
        except (ValueError, json.JSONDecodeError) as exc:
            reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else "not valid JSON"
            if reason.startswith("could not convert"):
                reason = "not a number"
            notes.append(f"The link's {fmt.code(f'{name}={text}')} was ignored ({reason}); using "
                         f"{fmt.code(_format(values[name]))}.")
    values["extra"] = {**values["extra"], **_options(values["method"], given, notes, written)}
    return RunConfig(**values), notes


def _options(method: str, given: dict[str, str], notes: list[str], written: Mapping[str, str]) -> dict:
    """The link's ``opt.<name>`` values read as ``method`` declares them; the others noted."""
    declared = {o.name: o for o in method_options(method)}
    out = {}
    for name, text in given.items():
        option = declared.get(name)
        if option is None:
            whose = f"the {fmt.code(method)} method" if method in METHODS else "its method"
            notes.append(f"The link's {fmt.code(written[name])} is not an option of {whose} and was "
                         "ignored.")
            continue
        try:
            out[name] = option.parse(text)
        except ValueError as exc:
            notes.append(f"The link's {fmt.code(written[name])} was ignored ({fmt.plain(str(exc))}); "
                         f"using {fmt.code(_format(option.default))}.")
    return out

"""Numbers as people read them: 1.2 M params, 4.7 MB, 38 MFLOPs, 97.3 %."""
from __future__ import annotations

import re
from typing import Any, Optional

DASH = "—"


def count(n: Optional[float]) -> str:
    if n is None:
        return DASH
    n = float(n)
    for scale, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def things(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: a whole count with its noun, singular for one."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def params(n: Optional[float]) -> str:
    return count(n)


def sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept: 0.500, 2.27, 13.8, 0.0253, 150."""
    return f"{x:#.3g}".rstrip(".")


def size(n_bytes: Optional[float]) -> str:
    """Three significant digits in a unit that suits: 2.69 MB and 21.8 kB, so that the ratio of
    two sizes can be checked by eye (0.02 MB would hide a factor of 1.5)."""
    if n_bytes is None:
        return DASH
    n = float(n_bytes)
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= 0.9995 * scale:  # 999.96 kB rounds to 1.00 MB, not "1.00e+03 kB"
            return f"{sig3(n / scale)} {unit}"
    return f"{n:.0f} B"


def percent(x: Optional[float], digits: int = 1) -> str:
    return DASH if x is None else f"{100 * float(x):.{digits}f} %"


def above_below(x: float) -> str:
    """A difference in accuracy points as words: "3.1 points below", "1.3 points above"."""
    if abs(x) < 0.05:
        return "level with"
    return f"{abs(x):.1f} points {'below' if x < 0 else 'above'}"


def sentence(text: str) -> str:
    """The engine's messages are lower-case and unpunctuated (they follow "error: " in the CLI);
    the pages show them as sentences."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def points(x: Optional[float], signed: bool = True, unit: str = "points") -> str:
    """Percentage points; ``unit="pts"`` where room is short (a metric card on a laptop)."""
    if x is None:
        return DASH
    return f"{x:+.1f} {unit}" if signed else f"{x:.1f} {unit}"


def ms(x: Optional[float]) -> str:
    """Three significant digits (0.0253 ms, 2.27 ms, 13.8 ms): a student's sub-millisecond
    latency keeps the digits its speed-up is computed from."""
    if x is None:
        return DASH
    return f"{sig3(x)} ms" if x < 100 else f"{x:.0f} ms"


def times(x: Optional[float]) -> str:
    if x is None:
        return DASH
    return f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return DASH
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def rate(images_per_s: Optional[float]) -> str:
    return DASH if not images_per_s else f"{images_per_s:,.0f} img/s"


# ---- text from outside (a URL, a file name, an upload, an engine message quoting them) ---------------
# Streamlit renders most text as markdown: a link, an image fetched from anywhere, an icon, LaTeX.
# A value from outside goes into an inline code span, where nothing is markdown (not even the
# web addresses GitHub-flavoured markdown turns into links in plain text).
_LEAD, _TRAIL = "(\"'“‘", ")\"'”’.,;:!?"
# Words, numbers and signs that markdown leaves as they are in the middle of a line. Not here: what
# makes links, images, emphasis, code, math and icons (: / . @ [ ] * _ ~ ` $ \\), and web addresses; an
# underscore inside a word (state_dict) is no emphasis.
_WORD = re.compile(r"(?:[^\W_]|['’%°·×–—…()+=<>^{}|#!\"-]|(?<=[^\W_])_(?=[^\W_]))+(?:[.,][0-9]+)*")


def code(value: Any, limit: int = 200) -> str:
    """``value`` as an inline code span, shown exactly as text (cut to ``limit`` characters)."""
    text = "".join(c if c.isprintable() else " " for c in str(value))  # a line break would end the span
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _is_text(token: str, whole: str) -> bool:
    """Whether ``token`` (``whole`` less its quotes and punctuation) reads the same as markdown."""
    if _WORD.fullmatch(token):
        return True
    # "[0, 1]" is text; a bracket beside "(" or ":" may make a link ("[a](b)", "[a]: b").
    return "(" not in whole and ":" not in whole and bool(_WORD.fullmatch(token.replace("[", "").replace("]", "")))


def plain(text: Any) -> str:
    """A message for a markdown element, read as text: its words as they are, anything else (a
    path, a web address, a quoted value, markdown) in code spans. For the engine's messages,
    which quote paths and values that came from outside. Line breaks become spaces."""
    out = []
    for token in str(text).split():
        if _is_text(token, token):
            out.append(token)
            continue
        core = token.lstrip(_LEAD)
        lead = token[:len(token) - len(core)]
        stripped = core.rstrip(_TRAIL)
        trail = core[len(stripped):]
        if "(" in stripped and trail[:1] == ")":  # "(see x)" keeps its bracket outside, "f(x)" inside
            stripped, trail = stripped + ")", trail[1:]
        out.append(token if not stripped or _is_text(stripped, token) else lead + code(stripped) + trail)
    return " ".join(out)

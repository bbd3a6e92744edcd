"""Numbers as people read them: 1.2 M params, 4.7 MB, 38 MFLOPs, 97.3 %."""
from __future__ import annotations

from typing import Optional

DASH = "—"


def count(n: Optional[float], unit: str = "") -> str:
    if n is None:
        return DASH
    n = float(n)
    for scale, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g} {unit}".rstrip() if unit else f"{n:.0f}"


def things(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: a whole count with its noun, singular for one."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def params(n: Optional[float]) -> str:
    return count(n)


def flops(n: Optional[float]) -> str:
    return count(n, "FLOPs") if n is not None else DASH


def megabytes(n_bytes: Optional[float]) -> str:
    if n_bytes is None:
        return DASH
    mb = float(n_bytes) / 1e6
    return f"{mb:.2f} MB" if mb < 10 else f"{mb:.1f} MB"


def percent(x: Optional[float], digits: int = 1) -> str:
    return DASH if x is None else f"{100 * float(x):.{digits}f} %"


def points(x: Optional[float], signed: bool = True) -> str:
    if x is None:
        return DASH
    return f"{x:+.1f} points" if signed else f"{x:.1f} points"


def ms(x: Optional[float]) -> str:
    if x is None:
        return DASH
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


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

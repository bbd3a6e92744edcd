"""The Home page's picture: teacher -> soft targets -> student, as inline SVG (no files, no network)."""
from __future__ import annotations

from .style import ROLE_COLOR

_SOFT = [0.02, 0.16, 0.03, 0.04, 0.05, 0.02, 0.01, 0.55, 0.04, 0.08]  # a teacher's softened "7"


def _bars(x0: float, base: float, width: float, height: float, color: str) -> str:
    step = width / len(_SOFT)
    out = []
    for i, p in enumerate(_SOFT):
        h = max(2.0, height * p / max(_SOFT))
        out.append(f'<rect x="{x0 + i * step + 2:.1f}" y="{base - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                   f'rx="2" fill="{color}" opacity="{0.45 + 0.55 * p / max(_SOFT):.2f}"/>')
        out.append(f'<text x="{x0 + i * step + step / 2:.1f}" y="{base + 14:.1f}" font-size="10" '
                   f'text-anchor="middle" fill="#667">{i}</text>')
    return "".join(out)


def _layers(x: float, y: float, widths: list[float], height: float, color: str, bar: float = 10.0,
            gap: float = 6.0) -> str:
    out, cx = [], x
    for w in widths:
        out.append(f'<rect x="{cx:.1f}" y="{y + (height - w) / 2:.1f}" width="{bar:g}" height="{w:.1f}" rx="3" '
                   f'fill="{color}" opacity="0.85"/>')
        cx += bar + gap
    return "".join(out)


def distillation_svg() -> str:
    t, s, ink = ROLE_COLOR["teacher"], ROLE_COLOR["student_kd"], "#31333F"
    arrow = f'<path d="M0,0 L10,5 L0,10 z" fill="{ink}"/>'
    return f"""<svg viewBox="0 0 920 250" xmlns="http://www.w3.org/2000/svg" role="img"
     aria-label="A teacher network turns an image into soft targets; a small student learns from them and from the true label"
     style="width:100%;max-width:920px;height:auto;font-family:'Source Sans Pro',sans-serif">
  <defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">{arrow}</marker></defs>
  <!-- input image -->
  <rect x="10" y="62" width="76" height="76" rx="8" fill="#f0f2f6" stroke="#c9ccd3"/>
  <text x="48" y="118" font-size="54" text-anchor="middle" fill="{ink}" font-weight="700">7</text>
  <text x="48" y="158" font-size="13" text-anchor="middle" fill="#667">image</text>
  <line x1="90" y1="100" x2="140" y2="100" stroke="{ink}" stroke-width="2" marker-end="url(#arr)"/>
  <!-- teacher -->
  <rect x="145" y="40" width="190" height="120" rx="14" fill="{t}" fill-opacity="0.10" stroke="{t}" stroke-width="2"/>
  {_layers(162, 52, [70, 90, 96, 96, 90, 70, 50, 30], 96, t)}
  <text x="240" y="182" font-size="16" text-anchor="middle" fill="{t}" font-weight="700">Teacher</text>
  <text x="240" y="200" font-size="12" text-anchor="middle" fill="#667">big, accurate, slow</text>
  <line x1="340" y1="100" x2="395" y2="100" stroke="{ink}" stroke-width="2" marker-end="url(#arr)"/>
  <!-- soft targets -->
  <rect x="400" y="30" width="210" height="140" rx="12" fill="#fff" stroke="#d5d8de"/>
  {_bars(412, 140, 186, 95, t)}
  <text x="505" y="192" font-size="16" text-anchor="middle" fill="{ink}" font-weight="700">Soft targets</text>
  <text x="505" y="210" font-size="12" text-anchor="middle" fill="#667">softmax(logits / T): "a 7, a bit like a 1"</text>
  <line x1="615" y1="100" x2="690" y2="100" stroke="{ink}" stroke-width="2" marker-end="url(#arr)"/>
  <text x="652" y="92" font-size="12" text-anchor="middle" fill="{ink}">α·T²·KL</text>
  <!-- student -->
  <rect x="695" y="65" width="100" height="70" rx="12" fill="{s}" fill-opacity="0.12" stroke="{s}" stroke-width="2"/>
  {_layers(713, 70, [36, 44, 36, 22], 60, s)}
  <text x="745" y="157" font-size="16" text-anchor="middle" fill="{s}" font-weight="700">Student</text>
  <text x="745" y="175" font-size="12" text-anchor="middle" fill="#667">small, fast</text>
  <!-- true label -->
  <rect x="700" y="200" width="90" height="32" rx="8" fill="#f0f2f6" stroke="#c9ccd3"/>
  <text x="745" y="221" font-size="13" text-anchor="middle" fill="{ink}">true label: 7</text>
  <path d="M 790 216 C 840 216, 840 100, 800 100" fill="none" stroke="{ink}" stroke-width="2" marker-end="url(#arr)"/>
  <text x="840" y="162" font-size="12" text-anchor="start" fill="{ink}">(1−α)·CE</text>
  <!-- the same image goes to the student -->
  <path d="M 48 166 L 48 236 L 655 236 L 702 140" fill="none" stroke="#b8bcc6" stroke-width="1.5" stroke-dasharray="5 4"
        marker-end="url(#arr)"/>
  <text x="360" y="230" font-size="12" text-anchor="middle" fill="#8a8f99">the student sees the same image</text>
</svg>"""


def favicon_svg() -> str:
    """The tab's icon: the teacher's layers beside the student's, in their colours.

    Drawn, not an emoji: an emoji icon is text, and shows as an empty box on a machine without an
    emoji font (Debian's chromium, many workshop Linux laptops); a material icon is fetched from
    fonts.gstatic.com, which an offline workshop cannot reach."""
    t, s = ROLE_COLOR["teacher"], ROLE_COLOR["student_kd"]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
            f'<rect x="2" y="4" width="34" height="56" rx="8" fill="{t}"/>'
            f'{_layers(4.5, 10, [26, 40, 44, 30], 44, "#fff", bar=5, gap=3)}'
            f'<rect x="40" y="22" width="22" height="24" rx="6" fill="{s}"/>'
            f'{_layers(44, 25, [12, 16], 18, "#fff", bar=5, gap=4)}'
            f'</svg>')

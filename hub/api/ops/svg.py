"""Charts as inline SVG, drawn on the server: no JavaScript library, no external asset. Every text is
escaped (a label comes from the data: an offer's title, a segment's name)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")
LABEL_WIDTH = 230
BAR_AREA = 420
BAR = 14
GAP = 10
LEGEND = 26

Group = tuple[str, Sequence[float]]  # a label, and one value per series


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


def _short(label: str, most: int = 32) -> str:
    return label if len(label) <= most else f"{label[: most - 1]}…"


def bar_chart(title: str, series: Sequence[str], groups: Sequence[Group]) -> str:
    """Horizontal grouped bars: per group (e.g. an offer in a channel) one bar per series (shown,
    responded, accepted), scaled to the largest value, each with its number and a tooltip."""
    largest = max((v for _, values in groups for v in values), default=0) or 1
    per_group = len(series) * BAR + GAP
    height = LEGEND + len(groups) * per_group + GAP
    width = LABEL_WIDTH + BAR_AREA + 60
    parts = [
        f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    x = LABEL_WIDTH
    for i, name in enumerate(series):  # the legend
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14" font-size="12">{_e(name)}</text>')
        x += 16 + 8 * len(name) + 18
    y = LEGEND
    for label, values in groups:
        middle = y + len(series) * BAR / 2 + 4
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{middle:g}" font-size="12" text-anchor="end">'
                     f"{_e(_short(label))}</text>")
        for i, (name, value) in enumerate(zip(series, values, strict=True)):
            length = max(round(BAR_AREA * value / largest), 1 if value else 0)
            colour = PALETTE[i % len(PALETTE)]
            top = y + i * BAR
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{top}" width="{length}" height="{BAR - 2}" fill="{colour}">'
                f"<title>{_e(label)}: {_e(name)} {_number(value)}</title></rect>"
            )
            parts.append(f'<text x="{LABEL_WIDTH + length + 4}" y="{top + BAR - 3}" font-size="11">'
                         f"{_number(value)}</text>")
        y += per_group
    parts.append("</svg>")
    return "".join(parts)

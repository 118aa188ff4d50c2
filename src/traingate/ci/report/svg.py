"""A laid-out chart as an inline SVG element (escaped text, a <title> for accessibility)."""

from __future__ import annotations

import html

from traingate.ci.report.figure import Figure


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items() if v)


def to_svg(fig: Figure, title: str) -> str:
    """The figure as an inline SVG element (escaped text, a <title> for accessibility, and
    a <title> on each violation marker with its message, shown on hover)."""
    e = html.escape
    parts = [
        f'<svg viewBox="0 0 {fig.width} {fig.height}" width="{fig.width}" '
        f'height="{fig.height}" style="max-width:100%;height:auto" role="img" '
        f'aria-label="{e(title)}"{_attrs(fig.attrs)}>',
        f"<title>{e(title)}</title>",
    ]
    for item in fig.items:
        kind = item[0]
        if kind == "line":
            _, x0, y0, x1, y1, color, width, dash, attrs = item
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
                f'stroke="{color}" stroke-width="{width}"{dash_attr}{_attrs(attrs)}/>'
            )
        elif kind == "polyline":
            _, points, color, width, dash, attrs, dots = item
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            if len(points) == 1:
                x, y = points[0]
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
            else:
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                parts.append(
                    f'<polyline points="{coords}" fill="none" stroke="{color}" '
                    f'stroke-width="{width}" stroke-linejoin="round"{dash_attr}{_attrs(attrs)}/>'
                )
            for x, y in points if dots and len(points) <= 60 else []:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        elif kind == "band":
            _, x0, y0, x1, y1, color, attrs = item
            parts.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{color}" fill-opacity="0.15"{_attrs(attrs)}/>'
            )
        elif kind == "marker":
            _, x, y, color, shape, label = item
            tip = f"<title>{e(label)}</title>"
            if shape == "x":
                parts.append(
                    f'<g class="violation" stroke="{color}" stroke-width="2.5">{tip}'
                    f'<line x1="{x - 6:.1f}" y1="{y - 6:.1f}" x2="{x + 6:.1f}" y2="{y + 6:.1f}"/>'
                    f'<line x1="{x - 6:.1f}" y1="{y + 6:.1f}" x2="{x + 6:.1f}" y2="{y - 6:.1f}"/>'
                    "</g>"
                )
            else:
                parts.append(
                    f'<polygon class="violation" points="{x - 7:.1f},{y - 6:.1f} '
                    f'{x + 7:.1f},{y - 6:.1f} {x:.1f},{y + 6:.1f}" fill="{color}">{tip}</polygon>'
                )
        elif kind == "text":
            _, x, y, text, anchor, size = item
            parts.append(
                f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                f'fill="#333">{e(text)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)

"""The built-in PNG of a chart, rasterised with zlib/struct: lines, bands, markers, axes
and tick marks, but no text (there is no font). :mod:`traingate.ci.report.mpl` draws the
PNG with labels and legend when matplotlib is installed; this is the fallback."""

from __future__ import annotations

import math
import struct
import zlib
from itertools import pairwise

from traingate.ci.report.figure import Figure

Point = tuple[float, float]
RGB = tuple[int, int, int]
Dash = tuple[float, float] | None


def _rgb(color: str) -> RGB:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


class Canvas:
    """An RGB pixel buffer with just enough drawing for charts, encoded as PNG."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: float, y: float, rgb: RGB, size: float = 1) -> None:
        """Fill a ``size``-pixel square centred on (x, y), clipped to the canvas."""
        r = max(size / 2, 0.5)
        for yy in range(math.floor(y - r + 0.5), math.floor(y + r + 0.5)):
            for xx in range(math.floor(x - r + 0.5), math.floor(x + r + 0.5)):
                if 0 <= xx < self.width and 0 <= yy < self.height:
                    i = (yy * self.width + xx) * 3
                    self.pixels[i : i + 3] = bytes(rgb)

    def line(self, a: Point, b: Point, rgb: RGB, width: float = 1, dash: Dash = None) -> None:
        """A line from ``a`` to ``b`` of ``width``-pixel dots; ``dash`` is (on, off) lengths
        in pixels."""
        (x0, y0), (x1, y1) = a, b
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(int(length * 2), 1)
        for i in range(steps + 1):
            t = i / steps
            if dash and (t * length) % (dash[0] + dash[1]) >= dash[0]:
                continue
            self.dot(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, rgb, width)

    def png(self) -> bytes:
        """PNG bytes: 8-bit RGB, no interlace, filter 0 on every row."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _blend(rgb: RGB, alpha: float) -> RGB:
    r, g, b = rgb
    return (
        round(255 - (255 - r) * alpha),
        round(255 - (255 - g) * alpha),
        round(255 - (255 - b) * alpha),
    )


def to_png(fig: Figure) -> bytes:
    """Rasterise the figure's lines, curves, bands and markers (its text is left out)."""
    canvas = Canvas(fig.width, fig.height)
    for item in fig.items:
        kind = item[0]
        if kind == "line":
            _, x0, y0, x1, y1, color, width, dash, _attrs = item
            pattern = tuple(float(v) for v in dash.split()) if dash else None
            canvas.line((x0, y0), (x1, y1), _rgb(color), width, pattern)  # type: ignore[arg-type]
        elif kind == "polyline":
            _, points, color, width, _dash, _attrs, dots = item
            for a, b in pairwise(points):
                canvas.line(a, b, _rgb(color), width)
            if dots and len(points) <= 60:
                for x, y in points:
                    canvas.dot(x, y, _rgb(color), 5)
        elif kind == "band":
            _, x0, y0, x1, y1, color, _attrs = item
            fill = _blend(_rgb(color), 0.15)
            for yy in range(math.floor(y0), math.ceil(y1) + 1):
                canvas.line((x0, yy), (x1, yy), fill, 1)
        elif kind == "marker":
            _, x, y, color, shape, _label = item
            rgb = _rgb(color)
            if shape == "x":
                canvas.line((x - 6, y - 6), (x + 6, y + 6), rgb, 3)
                canvas.line((x - 6, y + 6), (x + 6, y - 6), rgb, 3)
            else:
                for row in range(13):
                    half = 7 * (1 - row / 12)
                    canvas.line((x - half, y - 6 + row), (x + half, y - 6 + row), rgb, 1)
    return canvas.png()

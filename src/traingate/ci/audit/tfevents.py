"""Read the scalars of TensorBoard event files (``events.out.tfevents.*``) without TensorFlow.

An event file is TFRecord framing: per record a little-endian uint64 length, the masked
CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. Each record is an
``Event`` protobuf; its ``summary`` (field 5) holds ``Summary.Value`` entries whose
``simple_value`` (a float) or single-element float ``tensor`` (TF2 ``tf.summary.scalar``)
is a scalar. Both CRCs are verified: a corrupt or truncated record is an error naming the
file and the record's byte offset. Histograms, images, text and the like are left out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.records import Table, series_table

EVENT_PREFIX = "events.out.tfevents"
_MASK_DELTA = 0xA282EAD8
_DTYPES = {1: ("<f", 4), 2: ("<d", 8), 19: ("<e", 2)}  # DT_FLOAT, DT_DOUBLE, DT_HALF


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def records(path: Path, data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, record data)`` of each TFRecord in ``data``, both CRCs verified."""
    offset = 0
    while offset < len(data):
        header = data[offset : offset + 12]
        if len(header) < 12:
            raise AuditError(
                f"{path}: byte {offset}: truncated record header ({len(header)} of 12 bytes)"
            )
        (length,) = struct.unpack("<Q", header[:8])
        if struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
            raise AuditError(f"{path}: byte {offset}: corrupt record (length CRC mismatch)")
        end = offset + 12 + length
        if end + 4 > len(data):
            raise AuditError(
                f"{path}: byte {offset}: truncated record ({length} data bytes + CRC "
                f"announced, {len(data) - offset - 12} left)"
            )
        body = data[offset + 12 : end]
        if struct.unpack("<I", data[end : end + 4])[0] != masked_crc32c(body):
            raise AuditError(f"{path}: byte {offset}: corrupt record (data CRC mismatch)")
        yield offset, body
        offset = end + 4


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a protobuf message: an int for a varint,
    bytes for a length-delimited, fixed64 or fixed32 field."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
            continue
        if wire == 2:
            size, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos + size > len(buf):
            raise ValueError("field runs past the end of its message")
        yield number, wire, buf[pos : pos + size]
        pos += size


def _packed(raw: int | bytes, wire: int, fmt: str, size: int) -> list[float]:
    if wire == 0:  # an unpacked varint element (half_val)
        return [struct.unpack(fmt, struct.pack("<H", int(raw) & 0xFFFF))[0]]
    assert isinstance(raw, bytes)
    if fmt == "<e" and wire == 2:  # packed half_val: varints holding the bit patterns
        halves, pos = [], 0
        while pos < len(raw):
            bits, pos = _varint(raw, pos)
            halves.append(struct.unpack("<e", struct.pack("<H", bits & 0xFFFF))[0])
        return halves
    return [v for (v,) in struct.iter_unpack(fmt, raw)] if len(raw) % size == 0 else []


def _tensor_scalar(buf: bytes) -> float | None:
    """A float tensor's single value; None for any other tensor (strings, shapes > 1)."""
    count, content, values = 1, b"", []
    parsed = list(fields(buf))
    dtype = next((int(v) for n, w, v in parsed if n == 1 and w == 0), 0)
    if dtype not in _DTYPES:
        return None
    fmt, size = _DTYPES[dtype]
    for number, wire, value in parsed:
        if number == 2 and isinstance(value, bytes):  # TensorShapeProto: dim = 2, size = 1
            for dn, _, dim in fields(value):
                if dn == 2 and isinstance(dim, bytes):
                    count *= next((int(s) for sn, sw, s in fields(dim) if sn == 1 and sw == 0), 1)
        elif number == 4 and isinstance(value, bytes):
            content = value
        elif (number, fmt) in ((5, "<f"), (6, "<d"), (13, "<e")):
            values += _packed(value, wire, fmt, size)
    if content:
        values = [v for (v,) in struct.iter_unpack(fmt, content)] if len(content) == size else []
    return float(values[0]) if count == 1 and len(values) == 1 else None


def _plugin(buf: bytes) -> str:
    """The plugin name of a ``SummaryMetadata`` (plugin_data = 1, plugin_name = 1)."""
    for number, _, value in fields(buf):
        if number == 1 and isinstance(value, bytes):
            for pn, _, name in fields(value):
                if pn == 1 and isinstance(name, bytes):
                    return name.decode("utf-8", "replace")
    return ""


def _value(buf: bytes) -> tuple[str, float] | None:
    """``(tag, scalar)`` of one ``Summary.Value``; None when it holds no scalar."""
    tag, node, scalar, plugin = "", "", None, ""
    for number, wire, value in fields(buf):
        if number == 1 and isinstance(value, bytes):
            tag = value.decode("utf-8", "replace")
        elif number == 7 and isinstance(value, bytes):
            node = value.decode("utf-8", "replace")
        elif number == 2 and wire == 5 and isinstance(value, bytes):
            scalar = struct.unpack("<f", value)[0]
        elif number == 8 and isinstance(value, bytes):
            scalar = _tensor_scalar(value)
        elif number == 9 and isinstance(value, bytes):
            plugin = _plugin(value)
    if scalar is None or plugin not in ("", "scalars") or not (tag or node):
        return None
    return tag or node, scalar


def event_scalars(body: bytes) -> Iterator[tuple[int, str, float]]:
    """``(step, tag, value)`` of each scalar in one ``Event`` record."""
    step, summary = 0, b""
    for number, wire, value in fields(body):
        if number == 2 and wire == 0:
            step = int(value)
            step = step - (1 << 64) if step >= 1 << 63 else step
        elif number == 5 and isinstance(value, bytes):
            summary = value
    for number, _, value in fields(summary):
        if number == 1 and isinstance(value, bytes):
            scalar = _value(value)
            if scalar is not None:
                yield step, scalar[0], scalar[1]


def event_files(path: Path) -> list[Path]:
    """The event files of ``path``: itself, or those in one folder under it (by name)."""
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob(f"{EVENT_PREFIX}*") if p.is_file())
    folders = sorted({p.parent for p in found})
    if not found:
        raise AuditError(f"{path}: no {EVENT_PREFIX}.* file in it")
    if len(folders) > 1:
        raise AuditError(
            f"{path}: event files in {len(folders)} folders (several runs or add_scalars "
            f"groups): {', '.join(str(f) for f in folders[:5])}; audit one of them"
        )
    return found


def read_tfevents(path: Path) -> Table:
    """The scalars of a TensorBoard event file, or of the event files in one run folder."""
    files = event_files(path)
    points: list[tuple[int, str, float]] = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise AuditError(f"{file}: unreadable ({exc})") from None
        for offset, body in records(file, data):
            try:
                points += event_scalars(body)
            except (ValueError, struct.error) as exc:
                raise AuditError(
                    f"{file}: byte {offset}: not a TensorBoard Event record ({exc})"
                ) from None
    return series_table(path, "tensorboard", points, files)

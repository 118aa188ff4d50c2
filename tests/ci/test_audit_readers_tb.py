"""``contracts audit`` of TensorBoard event files, parsed by hand (no TensorFlow): scalars
as ``simple_value`` or float tensors, both record CRCs verified, corruption located."""

from __future__ import annotations

import importlib.util
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from traingate.ci.audit import AuditError
from traingate.ci.audit.tables import detect_format, read_table
from traingate.ci.audit.tfevents import crc32c, masked_crc32c
from traingate.ci.runcheck import check_run

from .test_audit_readers import assert_located_usage_error, cli, contract, maps, recorded, run

__all__ = ["contract"]  # the fixture, imported for these tests
TB_MAP = {"step": "step", "train/loss": "loss", "train/grad_norm": "grad_norm"}


def _varint(n: int) -> bytes:
    out = b""
    n &= (1 << 64) - 1
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def scalar_value(tag: str, value: float, tensor: bool) -> bytes:
    """A ``Summary.Value``: ``simple_value``, or a DT_FLOAT scalar tensor (TF2 style)."""
    body = _len_field(1, tag.encode())
    if not tensor:
        return body + _varint(2 << 3 | 5) + struct.pack("<f", value)
    plugin = _len_field(1, _len_field(1, b"scalars"))
    proto = _varint(1 << 3 | 0) + _varint(1) + _len_field(2, b"")  # dtype float, shape []
    proto += _len_field(5, struct.pack("<f", value))  # packed float_val
    return body + _len_field(9, plugin) + _len_field(8, proto)


def event(step: int, values: Sequence[tuple[str, float]], tensor: bool = False) -> bytes:
    """An ``Event`` with wall_time, step and a summary of scalar values."""
    summary = b"".join(_len_field(1, scalar_value(t, v, tensor)) for t, v in values)
    head = _varint(1 << 3 | 1) + struct.pack("<d", 1.7e9) + _varint(2 << 3) + _varint(step)
    return head + _len_field(5, summary)


def record(data: bytes) -> bytes:
    """TFRecord framing: length, masked CRC of it, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    crcs = struct.pack("<I", masked_crc32c(length)), struct.pack("<I", masked_crc32c(data))
    return length + crcs[0] + data + crcs[1]


def event_file(folder: Path, losses: Sequence[float], norms: Sequence[float]) -> Path:
    """An event file: file_version first, then per step loss and grad norm (tensor-encoded
    on odd steps), and a ``val/loss`` after steps 2 and 5."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.out.tfevents.1700000000.host.1.0"
    data = record(_varint(1 << 3 | 1) + struct.pack("<d", 1.7e9) + _len_field(3, b"brain.Event:2"))
    for step, (loss, norm) in enumerate(zip(losses, norms, strict=True)):
        pairs = [("train/loss", loss), ("train/grad_norm", norm)]
        data += record(event(step, pairs, tensor=step % 2 == 1))
        if step in (2, 5):
            data += record(event(step, [("val/loss", 1.9 - 0.05 * step)]))
    path.write_bytes(data)
    return path


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_event_file_passes_and_a_nan_step_stops_it_at_that_row(
    tmp_path: Path, contract: Path
) -> None:
    losses = [2.0 - 0.1 * s for s in range(6)]
    log = event_file(tmp_path / "ok", losses, [1.0] * 6)
    assert detect_format(log) == detect_format(log.parent) == "tensorboard"
    table = read_table(log.parent)
    assert table.columns == ["step", "train/loss", "train/grad_norm", "val/loss"]
    assert [r["train/loss"] for r in table.rows] == pytest.approx(losses)  # both encodings
    done, out = run(log.parent, contract, {**TB_MAP, "val/loss": "val_loss"})
    assert check_run(out).exit_code == 0 and done.audit["validation_index"] == "nth"
    assert recorded(out, "val_loss") == [("validation", 2, 0), ("validation", 5, 1)]
    nan = event_file(tmp_path / "nan", losses, [1.0, 1.0, 1.0, math.nan, 1.0, 1.0])
    failed, out = run(nan, contract, {**TB_MAP, "val/loss": "val_loss"})
    assert failed.audit["stopped_at"]["row"] == 4 and failed.audit["stopped_at"]["step"] == 3
    assert check_run(out).exit_code == 1


def test_exploding_grad_norm_fails_on_the_cli(tmp_path: Path, contract: Path) -> None:
    log = event_file(tmp_path, [2.0] * 6, [1.0, 1.0, 250.0, 900.0, 1.0, 1.0])
    result = cli(log, contract, *maps({**TB_MAP, "val/loss": "val_loss"}))
    assert result.exit_code == 1 and "stopped at row 4 by INV-RD-002" in result.output


def test_corrupt_and_truncated_records_name_the_file_and_byte_offset(
    tmp_path: Path, contract: Path
) -> None:
    log = event_file(tmp_path, [2.0] * 6, [1.0] * 6)
    data = log.read_bytes()
    first = 12 + struct.unpack("<Q", data[:8])[0] + 4  # the second record's offset
    corrupt = bytearray(data)
    corrupt[first + 14] ^= 0xFF  # a byte of the second record's data
    log.write_bytes(bytes(corrupt))
    result = cli(log, contract, *maps(TB_MAP))
    assert_located_usage_error(result, f"{log}: byte {first}: corrupt record (data CRC")
    log.write_bytes(data[:-3])
    with pytest.raises(AuditError, match=r"byte \d+: truncated record \("):
        read_table(log)
    log.write_bytes(data[: first + 5])
    with pytest.raises(AuditError, match=f"byte {first}: truncated record header"):
        read_table(log)
    bad_length = bytearray(data)
    bad_length[first] ^= 0x01
    log.write_bytes(bytes(bad_length))
    with pytest.raises(AuditError, match=f"byte {first}: corrupt record \\(length CRC"):
        read_table(log)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed"
)
def test_summary_writer_files_read_the_same(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step in range(3):
        writer.add_scalar("train/loss", 2.0 - step, step)
    writer.add_scalar("train/loss", float("nan"), 3)
    writer.add_text("note", "not a scalar", 0)
    writer.close()
    table = read_table(tmp_path)
    assert table.columns == ["step", "train/loss"]
    values = [r["train/loss"] for r in table.rows]
    assert values[:3] == [2.0, 1.0, 0.0] and math.isnan(values[3])

"""What an offline W&B run really logged, read back from its `run-<id>.wandb` file.

The file is W&B's transaction log: a 7-byte header (':W&B', magic, version), then LevelDB-style
log records in 32 KiB blocks (4-byte CRC, 2-byte length, 1-byte type: full, first, middle, last),
each payload a protobuf `Record`. wandb ships no Python reader for it any more.
"""

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

HEADER_BYTES = 7
BLOCK_BYTES = 32 * 1024
RECORD_HEADER_BYTES = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Step -> key -> the logged value (an image: its `image-file` reference to the media)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The run's summary as its last update left it (offline, W&B writes no wandb-summary.json)."""

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history.values() for key in row}


def payloads(data: bytes) -> list[bytes]:
    out, pending, offset = [], b"", HEADER_BYTES
    while offset + RECORD_HEADER_BYTES <= len(data):
        left_in_block = BLOCK_BYTES - offset % BLOCK_BYTES
        if left_in_block < RECORD_HEADER_BYTES:  # block trailer padding
            offset += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset : offset + RECORD_HEADER_BYTES])
        chunk = data[offset + RECORD_HEADER_BYTES : offset + RECORD_HEADER_BYTES + length]
        offset += RECORD_HEADER_BYTES + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def read_offline_run(wandb_file: Path) -> OfflineRun:
    data = wandb_file.read_bytes()
    assert data[:4] == b":W&B", f"{wandb_file} is not a W&B transaction log"
    run = OfflineRun()
    for payload in payloads(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.tags = list(record.run.tags)
            run.config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind == "history":
            set_items(run.history.setdefault(record.history.step.num, {}), record.history.item)
        elif kind == "summary":
            set_items(run.summary, record.summary.update)
    return run


def set_items(values: dict[str, Any], items: Iterable[Any]) -> None:
    for item in items:
        # A logged dict (an image's reference) arrives as one item per nested key.
        *parents, key = item.nested_key or [item.key]
        nested = values
        for parent in parents:
            nested = nested.setdefault(parent, {})
        nested[key] = json.loads(item.value_json)

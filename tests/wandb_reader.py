"""Test-side reader of offline W&B runs (`run-<id>.wandb`), which wandb 0.31 cannot read back.

An offline run directory (`<dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>/`) holds the whole run
in one binary file, `run-<id>.wandb`, with no `wandb-summary.json` or `config.yaml` beside it.
Its layout (written by wandb-core; checked against files written by wandb 0.31.0):

- a 7-byte header: `b":W&B"`, the magic `0xBEE1` (little-endian `H`) and the version `0` (`B`);
- then a LevelDB log: 32 KiB blocks counted from the start of the file (header included), each
  holding chunks with a 7-byte header `<IHB>` = plain (unmasked) CRC-32 of (type byte + data), data
  length and type (1 full, 2 first, 3 middle, 4 last); a block tail shorter than a chunk header
  is zero padding;
- each reassembled record is a serialized `wandb.proto.wandb_internal_pb2.Record`.

`read_run` folds the records into plain dicts. Keys are kept *nested*, as `run.summary` shows
them: an item with `nested_key=["a", "b"]` becomes `d["a"]["b"]`, never `d["a/b"]`.
"""

from __future__ import annotations

import json
import pathlib
import struct
import time
import zlib

HEADER = struct.Struct("<4sHB")
MAGIC = (b":W&B", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptRun(ValueError):
    """The file is not a W&B transaction log, or a chunk fails its checksum."""


def _payloads(raw: bytes) -> list[bytes]:
    """Reassemble the LevelDB-log records that follow the file header."""
    if len(raw) < HEADER.size or HEADER.unpack_from(raw) != MAGIC:
        raise CorruptRun("not a W&B run file (bad header)")
    out: list[bytes] = []
    pending: list[bytes] | None = None
    pos = HEADER.size
    while pos < len(raw):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # block trailer: padding, the next chunk starts a new block
            pos += left
            continue
        if pos + CHUNK.size > len(raw):
            break  # a torn tail (killed writer): keep what is complete
        crc, length, kind = CHUNK.unpack_from(raw, pos)
        start = pos + CHUNK.size
        data = raw[start : start + length]
        if kind == 0 and length == 0:  # zero fill after the last record
            break
        if len(data) < length:
            break
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) != crc:
            raise CorruptRun(f"checksum mismatch at byte {pos}")
        pos = start + length
        if kind == FULL:
            out.append(data)
        elif kind == FIRST:
            pending = [data]
        elif kind == MIDDLE and pending is not None:
            pending.append(data)
        elif kind == LAST and pending is not None:
            out.append(b"".join([*pending, data]))
            pending = None
        else:
            raise CorruptRun(f"unexpected chunk type {kind} at byte {pos - length}")
    return out


def read_records(path: str | pathlib.Path) -> list:
    """All records of one `run-<id>.wandb` file, in the order written.

    Args:
      path: the `.wandb` file.

    Returns:
      `wandb.proto.wandb_internal_pb2.Record` messages.
    """
    from wandb.proto import wandb_internal_pb2

    records = []
    for payload in _payloads(pathlib.Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _keys(item) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _set(target: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = value


def _unset(target: dict, keys: list[str]) -> None:
    for key in keys[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(keys[-1], None)


def read_run(run_dir: str | pathlib.Path, wait: float = 10.0) -> dict:
    """Fold one offline run into plain values.

    `run.finish()` returns before wandb-core has written the file (the stream is closed
    asynchronously; right after it the file may hold only its 7-byte header), so by default
    this waits for the run's exit record.

    Args:
      run_dir: an `offline-run-*` directory, or the `.wandb` file itself.
      wait: seconds to wait for the exit record; 0 reads a run in progress as it is.

    Returns:
      `{"run": {"id", "group", "job_type", "name", "project"}, "config": dict, "summary": dict,
      "history": [dict per step], "exit_code": int | None}`. Keys are nested as logged (a
      summary or history item with `nested_key=["a", "b"]` is `d["a"]["b"]`); each history
      dict also holds wandb's `_step`, `_runtime` and `_timestamp`. Every value is
      decoded from its `value_json`, so tables appear as their JSON reference
      (`{"_type": "table-file", "nrows": ..., "ncols": ..., "path": ...}`).
    """
    path = pathlib.Path(run_dir)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"expected one run-*.wandb in {path}, found {len(files)}")
        path = files[0]
    deadline = time.monotonic() + wait
    records = read_records(path)
    while not any(r.HasField("exit") for r in records) and time.monotonic() < deadline:
        time.sleep(0.02)
        records = read_records(path)
    out: dict = {"run": {}, "config": {}, "summary": {}, "history": [], "exit_code": None}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out["run"] = {"id": run.run_id, "group": run.run_group, "job_type": run.job_type,
                          "name": run.display_name, "project": run.project,
                          "entity": run.entity, "tags": list(run.tags)}  # fmt: skip
            # the run record carries the config given to init (later updates come as `config`)
            for item in run.config.update:
                _set(out["config"], _keys(item), json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set(out["config"], _keys(item), json.loads(item.value_json))
            for item in record.config.remove:
                _unset(out["config"], _keys(item))
        elif kind == "history":
            step: dict = {}
            for item in record.history.item:
                _set(step, _keys(item), json.loads(item.value_json))
            out["history"].append(step)
        elif kind == "summary":
            for item in record.summary.update:
                _set(out["summary"], _keys(item), json.loads(item.value_json))
            for item in record.summary.remove:
                _unset(out["summary"], _keys(item))
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def read_table(run_dir: str | pathlib.Path, ref: dict) -> tuple[list[str], list[list]]:
    """The columns and rows of a logged `wandb.Table`.

    Args:
      run_dir: the run's directory.
      ref: the table's reference as `read_run` returns it (a summary or history value with
        `"_type": "table-file"`); offline, the table itself is `files/<ref["path"]>`.
    """
    if ref.get("_type") != "table-file":
        raise ValueError(f"not a table reference: {ref!r}")
    table = json.loads((pathlib.Path(run_dir) / "files" / ref["path"]).read_text())
    return table["columns"], table["data"]

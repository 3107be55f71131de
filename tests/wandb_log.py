"Read the records of an offline W&B run file (`run-<id>.wandb`), to check what a run recorded without a server."
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

HEADER, BLOCK, RECORD_HEADER = 7, 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    "Protobuf `Record`s of a .wandb file (a LevelDB-style log of 32 KiB blocks after a 7-byte header)."
    data = Path(path).read_bytes()
    if data[:4] != b":W&B": raise ValueError(f"{path} is not a W&B run file")
    records, pending, pos = [], b"", HEADER
    while pos + RECORD_HEADER <= len(data):
        left_in_block = BLOCK - (pos % BLOCK)
        if left_in_block < RECORD_HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + RECORD_HEADER])
        chunk = data[pos + RECORD_HEADER:pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind == 0 and length == 0: continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def offline_run_contents(run_dir: Path) -> dict:
    "Config, summary, logged history keys and artifacts of the single offline W&B run under `run_dir/wandb`."
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if len(files) != 1: raise AssertionError(f"expected one offline W&B run under {run_dir}, found {files}")
    out = {"config": {}, "summary": {}, "history_keys": set(), "artifacts": []}
    for record in read_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run": out["config"].update({u.key: u.value_json for u in record.run.config.update})
        elif kind == "config": out["config"].update({u.key: u.value_json for u in record.config.update})
        elif kind == "summary": out["summary"].update({u.key: u.value_json for u in record.summary.update})
        elif kind == "history": out["history_keys"].update(item.key or "/".join(item.nested_key) for item in record.history.item)
        elif kind == "artifact": out["artifacts"].append(record.artifact)
    return out

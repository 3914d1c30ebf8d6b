"""Read back what the trackers stored: an MLflow store through its client, a W&B offline
run from its .wandb file (no W&B reader ships with wandb 0.31)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768  # the .wandb file is a LevelDB-style log of protobuf records in 32 KiB blocks
CHUNK_HEADER = 7  # crc32 (4), length (2), chunk type (1)
FULL, LAST = 1, 4


def mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def mlflow_history(uri: str, run_id: str, name: str) -> dict[int, float]:
    from mlflow.tracking import MlflowClient

    return {m.step: m.value for m in MlflowClient(uri).get_metric_history(run_id, name)}


def wandb_records(run_file: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    pos, parts, records = CHUNK_HEADER, [], []
    while pos + CHUNK_HEADER <= len(data):
        if BLOCK - pos % BLOCK < CHUNK_HEADER:  # the block's tail is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        parts.append(data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length])
        pos += CHUNK_HEADER + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            records.append(record)
            parts = []
    return records


def wandb_run(wandb_dir: Path, name: str) -> dict:
    """The offline run named `name`: its config, history rows by step and summary."""
    for run_file in Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"):
        records = wandb_records(run_file)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        if run.display_name != name:
            continue
        history, summary = {}, {}
        for r in records:
            kind = r.WhichOneof("record_type")
            if kind == "history":
                row = {
                    "/".join(i.nested_key) or i.key: json.loads(i.value_json)
                    for i in r.history.item
                }
                history[row["_step"]] = row
            elif kind == "summary":
                for u in r.summary.update:
                    summary["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        return {"run": run, "config": config, "history": history, "summary": summary}
    raise AssertionError(f"no offline W&B run named {name} under {wandb_dir}")

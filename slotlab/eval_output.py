"""Where ``slotlab eval`` writes its results, so that no result replaces another one silently.

- Every evaluated setting is appended as one line to ``evals.jsonl`` (in the folder the result file goes to:
  the run folder by default): time, checkpoint, step, split, number of images, K, T, objects, seed, FG-ARI
  convention, data file, and the metrics. Nothing is ever removed from it.
- One setting is also written to ``eval-<tag>.json``, a sweep to ``eval_sweep-<tag>.csv`` (+ ``.png``), where
  the tag names every setting that changes the numbers (split, step, K, T, objects; images, seed, convention and
  data file when they are not the run's defaults), e.g. ``eval-test-step3500-K6-T3.json``. Another setting never
  replaces it; the same setting evaluated again gives the same numbers and replaces its file, which the CLI says.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from slotlab.atomic import atomic_open, write_json
from slotlab.errors import file_access_error

RECORDS = "evals.jsonl"


def _join(values: Sequence[Any]) -> str:
    return "_".join(str(v) for v in values)


def eval_tag(
    split: str,
    step: int | None,
    ks: Sequence[int | None],
    ts: Sequence[int | None],
    objects: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """``test-step3500-K4_6-T3[-objects3_4][-n100][-seed7]...``: the settings of an evaluation as a file-name part.
    ``extra``: further settings that differ from the run's defaults (name -> value), appended in order. K and T are
    left out where they are None (a model without slots or iterations)."""
    parts = [split, f"step{step}" if step is not None else "stepNA"]
    if any(k is not None for k in ks):
        parts.append(f"K{_join(k for k in ks if k is not None)}")
    if any(t is not None for t in ts):
        parts.append(f"T{_join(t for t in ts if t is not None)}")
    if objects:
        parts.append(f"objects{_join(objects)}")
    for name, value in (extra or {}).items():
        parts.append(f"{name}{value}")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "-".join(parts))


def append_records(folder: Path, records: list[dict[str, Any]]) -> Path:
    """Append one JSON line per record (with the time) to ``folder/evals.jsonl``."""
    path = Path(folder) / RECORDS
    now = datetime.now().isoformat(timespec="seconds")
    try:
        with open(path, "a") as f:
            for r in records:
                f.write(json.dumps({"time": now, **r}, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise file_access_error(path, "append to", e) from e
    return path


def write_json_file(path: Path, data: dict[str, Any]) -> bool:
    """Write ``data`` as JSON to ``path`` (atomically); True when it replaced an existing file."""
    existed = path.exists()
    write_json(path, data)
    return existed


def write_csv_file(path: Path, rows: list[dict[str, Any]]) -> bool:
    """Write ``rows`` (same keys, or a superset in later rows) as CSV to ``path``; True when it replaced a file."""
    existed = path.exists()
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return existed


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records of ``folder/evals.jsonl`` (unreadable lines skipped)."""
    return read_jsonl(Path(folder) / RECORDS)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line (unreadable lines skipped; [] if the file is missing)."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict):
            out.append(r)
    return out

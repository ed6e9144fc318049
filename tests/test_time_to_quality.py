"""benchmarks/time_to_quality.py --parse: minutes and steps to each FG-ARI threshold, each run's machine named."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_quality as ttq  # noqa: E402


def _fake_run(root: Path, name: str, machine: str | None) -> Path:
    run = root / name
    logs = run / "logs" / "version_0"
    logs.mkdir(parents=True)
    rows = ["step,time/train_minutes,val/fg_ari", "0,0.0,", "499,1.0,0.80", "999,2.0,0.93", "1499,3.0,0.96"]
    (logs / "metrics.csv").write_text("\n".join(rows) + "\n")
    results = {"global_step": 1500, "fg_ari_mean": 0.96}
    if machine:
        results["machine"] = machine
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_parse_names_each_runs_machine(tmp_path, monkeypatch, capsys):
    a = _fake_run(tmp_path, "gpu_run", "Some CPU, 16 cores; GPU: NVIDIA H200")
    b = _fake_run(tmp_path, "old_run", None)
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", "--parse", str(a), str(b), "--markdown"])
    ttq.main()
    out = capsys.readouterr().out
    assert "machine: Some CPU, 16 cores; GPU: NVIDIA H200" in out
    assert "(this machine; the run does not name its own)" in out
    assert "| - | gpu_run | 2.0 (step 999) | 3.0 (step 1499) | - | 0.960 at 3.0 min | no |" in out
    assert "gpu_run: FG-ARI>=0.9 at 2.0 min (step 999);" in out

"""benchmarks/time_to_quality.py: steps and minutes to a target for any preset's runs (trained, or read with
``--runs``), the final test-split score by ``slotlab eval --split test``'s code, each run's machine, and the
failed-seed rate (issue 24 item 4). Fake run folders only: nothing trains here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_quality as ttq  # noqa: E402

ROWS = ["step,time/train_minutes,val/fg_ari", "0,0.0,", "499,1.0,0.80", "999,2.0,0.93", "1499,3.0,0.96"]


def _fake_run(root: Path, name: str, machine: str | None = None, rows: list[str] = ROWS, version: int = 0,
              cfg: dict | None = None, results: dict | None = None) -> Path:  # fmt: skip
    run = root / name
    logs = run / "logs" / f"version_{version}"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("\n".join(rows) + "\n")
    res = {"global_step": 1500, "fg_ari_mean": 0.96, **(results or {})}
    if machine:
        res["machine"] = machine
    (run / "results.json").write_text(json.dumps(res))
    if cfg is not None:
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


def test_parse_names_each_runs_machine(tmp_path, capsys):
    a = _fake_run(tmp_path, "gpu_run", "Some CPU, 16 cores; GPU: NVIDIA H200")
    b = _fake_run(tmp_path, "old_run", None)
    assert ttq.main(["--parse", str(a), str(b), "--markdown", "--thresholds", "0.9,0.95,0.99", "--no-test"]) == 0
    out = capsys.readouterr().out
    assert "M1: Some CPU, 16 cores; GPU: NVIDIA H200" in out
    assert "M2: " in out and "(this machine; the run does not name its own)" in out
    assert "| seed ? | gpu_run | 999 | 2.0 | 0.9600 | 1499, 3.0 | - | no | M1 |" in out
    assert "gpu_run: FG-ARI>=0.9 at 2.0 min (step 999); FG-ARI>=0.95 at 3.0 min (step 1499);" in out
    assert "FG-ARI>=0.99 not reached;" in out
    assert "failed-seed rate: 0/2 (0%)" in out


def test_any_task_uses_its_own_metric(tmp_path, capsys):
    """A set-prediction run: steps to the target of val/ap_inf (its best-checkpoint metric), its score AP_inf."""
    rows = ["step,time/train_minutes,val/ap_inf,val/fg_ari", "99,0.5,0.10,0.99", "199,1.0,0.55,", "299,1.5,0.70,"]
    run = _fake_run(tmp_path, "sp", rows=rows, cfg={"task": "set_prediction", "seed": 4})
    assert ttq.main(["--runs", str(run), "--target", "0.5", "--no-test"]) == 0
    out = capsys.readouterr().out
    assert "| seed | run | steps to 0.5 | min to 0.5 | last val/ap_inf |" in out
    assert "| seed 4 | sp | 199 | 1.0 | 0.7000 |" in out
    assert "test AP_inf (last checkpoint)" in out
    assert "target: val/ap_inf >= 0.5 on the eval split (as logged): reached by 1 of 1 seeds" in out


def test_a_resumed_run_is_read_from_every_log_version(tmp_path, capsys):
    run = _fake_run(tmp_path, "resumed", rows=ROWS[:3], cfg={"task": "object_discovery", "seed": 0})
    later = run / "logs" / "version_1"  # the resumed session: its own columns, minutes continued
    later.mkdir()
    (later / "metrics.csv").write_text("step,val/fg_ari,time/train_minutes\n999,0.93,2.0\n1499,0.96,3.0\n")
    assert ttq.main(["--runs", str(run), "--target", "0.95", "--no-test"]) == 0
    assert "| seed 0 | resumed | 1499 | 3.0 | 0.9600 | 1499, 3.0 |" in capsys.readouterr().out


def test_a_restart_counts_in_the_time_and_as_a_failed_seed(tmp_path, capsys):
    """slotlab restarts a failed seed into NAME-restart1: one row, the first attempt's steps and minutes added."""
    stuck = ["step,time/train_minutes,val/fg_ari", "499,1.5,0.30", "999,3.0,0.35"]
    first = _fake_run(tmp_path, "seed0", rows=stuck, cfg={"task": "object_discovery", "seed": 0},
                      results={"global_step": 1000})  # fmt: skip
    (first / "FAILED_SEED.txt").write_text("possible failed seed at step 1000: layout ARI 0.99 > 0.85\n")
    _fake_run(tmp_path, "seed0-restart1", rows=ROWS, cfg={"task": "object_discovery", "seed": 1})
    good = _fake_run(tmp_path, "seed1", rows=ROWS, cfg={"task": "object_discovery", "seed": 1})
    args = ["--runs", str(first), str(tmp_path / "seed0-restart1"), str(good), "--target", "0.9", "--no-test"]
    assert ttq.main(args) == 0
    out = capsys.readouterr().out
    assert "| seed 0 | seed0-restart1 (2 attempts) | 1999 | 5.0 | 0.9600 | 2499, 6.0 | - | monitor | M1 |" in out
    assert "| seed 1 | seed1 | 999 | 2.0 |" in out
    assert "failed-seed rate: 1/2 (50%) (seed 0: monitor)" in out
    assert "reached by 2 of 2 seeds; median 1499 steps, 3.5 min" in out


def test_the_budget_decides_what_counts_as_reached(tmp_path, capsys):
    run = _fake_run(tmp_path, "slow", cfg={"task": "object_discovery", "seed": 2})
    assert ttq.main(["--runs", str(run), "--target", "0.9", "--minutes", "1.5", "--no-test"]) == 0
    out = capsys.readouterr().out
    assert "| seed 2 | slow | - | - | 0.9600 | 1499, 3.0 | - | below target | M1 |" in out
    assert "within 1.5 min: reached by 0 of 1 seeds" in out and "failed-seed rate: 1/1 (100%)" in out


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory) -> Path:
    """A run folder whose checkpoints hold the zoo's tetrominoes weights (8 held-out images: fast)."""
    from slotlab.inference.checkpoint_io import read_pretrained
    from slotlab.zoo import resolve_model

    ckpt = read_pretrained(resolve_model("tetrominoes"))
    cfg = ckpt["hyper_parameters"]["config"]
    cfg["data"].update(eval_size=8, eval_batch_size=8)
    run = _fake_run(tmp_path_factory.mktemp("runs"), "tet", cfg=cfg)
    (run / "checkpoints").mkdir()
    for name, step in (("last.ckpt", 1500), ("best-step0001000-fgari0.9300.ckpt", 1000)):
        torch.save({**ckpt, "global_step": step}, run / "checkpoints" / name)
    return run


def test_the_test_score_is_slotlab_evals(scored_run, capsys):
    from slotlab.cli import main

    assert main(["eval", str(scored_run), "--split", "test"]) == 0
    (saved,) = scored_run.glob("eval-test-step1500-*.json")
    expected = json.loads(saved.read_text())["fg_ari_mean"]
    capsys.readouterr()
    assert ttq.main(["--runs", str(scored_run), "--target", "0.9"]) == 0
    out = capsys.readouterr().out
    assert f"| {expected:.4f} (last.ckpt: step 1500, 3.0 min; 8 images) | no | M1 |" in out
    assert f"test FG-ARI: min {expected:.4f}, mean {expected:.4f}, max {expected:.4f} (1 seeds)" in out


def test_best_checkpoint_within_the_budget(scored_run, capsys):
    assert ttq.main(["--runs", str(scored_run), "--checkpoint", "best", "--minutes", "2.5"]) == 0
    assert "(best-step0001000-fgari0.9300.ckpt: step 1000, 2.0 min; 8 images)" in capsys.readouterr().out
    assert ttq.main(["--runs", str(scored_run), "--checkpoint", "best", "--minutes", "1.5"]) == 0
    assert "- (no best checkpoint within 1.5 min)" in capsys.readouterr().out
    assert ttq.main(["--runs", str(scored_run), "--minutes", "2.5"]) == 0
    assert "(last.ckpt: step 1500, 3.0 min (past the budget); 8 images)" in capsys.readouterr().out


def test_training_mode_trains_each_seed_with_the_budget(tmp_path, monkeypatch, capsys):
    """Without --runs each seed is one `slotlab train` process (replaced here by one that writes a fake run)."""
    calls = []

    def fake_train(cmd, **_):
        calls.append(cmd)
        opts = dict(a.split("=", 1) for a in cmd if "=" in a)
        _fake_run(Path(opts["run.root"]), opts["run.name"], cfg={"task": "object_discovery", "seed": int(opts["seed"])})
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(ttq.subprocess, "run", fake_train)
    argv = ["--config", "configs/multi_dsprites_cpu.yaml", "--seeds", "0", "1", "2", "--target", "0.9",
            "--minutes", "120", "--root", str(tmp_path), "--no-test", "--", "optim.lr=2e-4"]  # fmt: skip
    assert ttq.main(argv) == 0
    assert [c[c.index("--config") + 1] for c in calls] == ["configs/multi_dsprites_cpu.yaml"] * 3
    assert all("trainer.max_minutes=120" in c and c[-1] == "optim.lr=2e-4" for c in calls)
    assert [c[c.index("--config") + 2] for c in calls] == ["seed=0", "seed=1", "seed=2"]
    out = capsys.readouterr().out
    for s in range(3):
        assert f"| seed {s} | seed{s} | 999 | 2.0 |" in out
    assert "trained: configs/multi_dsprites_cpu.yaml" in out and "reached by 3 of 3 seeds" in out

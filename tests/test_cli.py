"""End to end through the CLI: a tiny `slotlab train`, then `slotlab eval` on its checkpoint (also K and T
changed at test time), then resume; and the CLI's clear errors."""

import json

import pytest
from conftest import PAPER_SLOT_INIT, TINY_OD_DATA

from slotlab.cli import main

TINY = ["trainer.max_steps=4", "trainer.val_every=2", *TINY_OD_DATA, *PAPER_SLOT_INIT, "trainer.progress_bar=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, f"run.root={root}", "run.name=tiny"]) == 0
    return root / "tiny"


def test_train_writes_run_folder(run_dir, capsys):
    assert (run_dir / "config.yaml").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert (run_dir / "figures" / "latest.png").exists()
    assert list((run_dir / "logs").glob("version_0/metrics.csv"))
    assert list((run_dir / "tb").glob("version_0/events.*"))
    res = json.loads((run_dir / "results.json").read_text())
    assert res["global_step"] == 4 and res["num_images"] == 16
    assert "cores" in res["machine"] and "CPU:" in res["machine"]  # what the run ran on
    assert 0.0 <= res["fg_ari_mean"] <= 1.0 or -1.0 <= res["fg_ari_mean"] <= 1.0


def test_train_scores_the_best_checkpoint_on_the_test_split(run_dir):
    """The end of `slotlab train`: the checkpoint the eval split picked, scored on the test split (images that chose
    nothing), as `slotlab eval BEST --split test` scores it; printed after the last step's eval-split line."""
    import torch
    import yaml

    from slotlab.evaluate import evaluate_checkpoint
    from slotlab.tasks import get_task

    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    res = json.loads((run_dir / "results.json").read_text())
    test = res["test"]
    assert test["checkpoint"] == best.name and test["split"] == "test" and test["num_images"] == 16
    assert f"step{test['step']:07d}" in best.name and test["step"] in (2, 4)
    direct = evaluate_checkpoint(best, split="test")
    assert test["fg_ari_mean"] == direct["fg_ari_mean"] and test["fg_ari_std"] == direct["fg_ari_std"]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    task = get_task("object_discovery")
    test_images = task.heldout(cfg["data"], "test", 16)["image"]
    assert not torch.equal(test_images, task.heldout(cfg["data"], "eval", 16)["image"])  # images that chose nothing
    show = get_task("object_discovery").presenter
    assert show.format_result(res, cfg).startswith("FG-ARI of the last step on 16 eval images of tetrominoes: ")
    line = show.format_test(res, cfg, get_task("object_discovery").eval_grid(cfg, None, None, None)[0][0])
    assert "FG-ARI K=4 T=3 on 16 test images" in line  # named as `slotlab eval` names its default setting
    assert line.startswith(f"best checkpoint (step {test['step']}, chosen on the eval split; {best.name}): ")
    assert f"on 16 test images of tetrominoes: {test['fg_ari_mean']:.4f} +- " in line
    assert show.format_test({k: v for k, v in res.items() if k != "test"}, cfg) == ""  # no validation ran: none


def test_eval_prints_and_writes_json(run_dir, capsys):
    assert main(["eval", str(run_dir / "checkpoints" / "last.ckpt")]) == 0
    out = capsys.readouterr().out
    assert "FG-ARI K=4 T=3 on 16 eval images of tetrominoes" in out and "+-" in out
    res = json.loads((run_dir / "eval-eval-step4-K4-T3.json").read_text())  # named after its settings
    assert res["num_images"] == 16 and res["num_slots"] == 4 and res["iters"] == 3 and res["step"] == 4
    assert res["split"] == "eval"


def test_eval_with_test_time_k_and_t(run_dir, capsys, tmp_path):
    out_json = tmp_path / "e.json"
    assert main(["eval", str(run_dir), "--num-slots", "6", "--iters", "5", "--out", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert res["num_slots"] == 6 and res["iters"] == 5


def test_eval_results_are_never_replaced_by_another_setting(run_dir, capsys):
    assert main(["eval", str(run_dir), "--num-slots", "6", "--split", "test"]) == 0
    assert main(["eval", str(run_dir), "--num-slots", "5", "--iters", "2,3"]) == 0
    assert "FG-ARI K=6 T=3 on 16 test images" in capsys.readouterr().out
    k4 = json.loads((run_dir / "eval-eval-step4-K4-T3.json").read_text())  # the K=4 result of the test above
    k6 = json.loads((run_dir / "eval-test-step4-K6-T3.json").read_text())
    assert (k4["num_slots"], k4["split"]) == (4, "eval") and (k6["num_slots"], k6["split"]) == (6, "test")
    assert (run_dir / "eval_sweep-eval-step4-K5-T2_3.csv").exists()
    rows = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert [(r["num_slots"], r["iters"], r["split"]) for r in rows[-3:]] == [
        (6, 3, "test"),
        (5, 2, "eval"),
        (5, 3, "eval"),
    ]
    assert all(r["step"] == 4 and r["seed"] == 1234 for r in rows)
    # The same setting again gives the same numbers: its file is replaced, and the CLI says so.
    assert main(["eval", str(run_dir), "--num-slots", "6", "--split", "test"]) == 0
    assert "replaced (same settings)" in capsys.readouterr().out
    # Flags that do not apply, or values out of range, are errors (not ignored, not a fallback).
    assert main(["eval", str(run_dir), "--objects", "3"]) == 2
    assert "--objects applies to set prediction only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["eval", str(run_dir), "--num-images", "0"])
    assert e.value.code == 2 and "expected an integer from 1 to" in capsys.readouterr().err


def test_resume_continues_to_more_steps(run_dir):
    assert main(["train", "--resume", str(run_dir), "trainer.max_steps=6"]) == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert res["global_step"] == 6
    assert (run_dir / "logs" / "version_1" / "metrics.csv").exists()  # old logs kept
    assert (run_dir / "logs" / "version_0" / "metrics.csv").exists()


def test_existing_run_folder_is_not_overwritten(run_dir, capsys):
    assert main(["train", *TINY, f"run.root={run_dir.parent}", "run.name=tiny"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_errors_are_clear(capsys, tmp_path):
    assert main(["train", "optim.lrr=1"]) == 2
    assert "Did you mean optim.lr" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["eval", str(bad)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err

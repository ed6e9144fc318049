"""Issue 25 item 6: evaluations of a zoo model are named by their settings, as those of a run folder are, so that
``slotlab eval --pretrained NAME`` with another T (or K, split, number of images) never replaces an earlier result
(it printed "replaced (same settings) .../eval.json" when only T differed)."""

from __future__ import annotations

import json

from slotlab.cli import main
from slotlab.zoo import ZOO_ENV, make_entry


def test_zoo_evaluations_are_named_by_their_settings(tiny_od_run, tmp_path, monkeypatch, capsys):
    make_entry(tiny_od_run, "tinyeval", dest=tmp_path / "zoo", measure_score=False)
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "zoo"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "slotlab_out" / "tinyeval"
    base = ["eval", "--pretrained", "tinyeval", "--num-images", "2", "--split", "test"]

    assert main(base) == 0
    assert main([*base, "--iters", "5"]) == 0
    printed = capsys.readouterr().out
    assert "replaced" not in printed
    t3, t5 = out / "eval-test-step6-K4-T3-n2.json", out / "eval-test-step6-K4-T5-n2.json"
    assert f"wrote {t3.relative_to(tmp_path)}" in printed and f"wrote {t5.relative_to(tmp_path)}" in printed
    assert json.loads(t3.read_text())["iters"] == 3 and json.loads(t5.read_text())["iters"] == 5
    assert not (out / "eval.json").exists()

    assert main([*base, "--iters", "5"]) == 0  # the same settings again: the same numbers, said so
    assert "replaced (same settings)" in capsys.readouterr().out
    assert main([*base, "--iters", "1,2"]) == 0  # a sweep: its own CSV and plot
    assert (out / "eval_sweep-test-step6-K4-T1_2-n2.csv").exists()
    assert (out / "eval_sweep-test-step6-K4-T1_2-n2.png").exists()
    rows = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert [r["iters"] for r in rows] == [3, 5, 5, 1, 2]  # every evaluation recorded

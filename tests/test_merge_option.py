"""``--merge-slots`` of eval / figures / segment (slotlab.inference.merge_option): the flag's values, that the
model evaluated is the one the flag asks for, and that other tasks refuse it with one error line."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from conftest import copy_run
from PIL import Image

from slotlab.cli import main
from slotlab.errors import UsageError
from slotlab.inference.loading import load_model
from slotlab.inference.merge_option import merge_slots_arg, set_merge_slots


@pytest.mark.parametrize("text,want", [("off", "off"), ("None", "off"), (" null ", "off"), ("0.97", 0.97), ("1", 1.0)])
def test_flag_values(text, want):
    assert merge_slots_arg(text) == want


@pytest.mark.parametrize("text", ["0", "-0.5", "1.01", "nan", "inf", "", "abc", "0.9,0.95"])
def test_flag_refuses_values_outside_the_schema_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match="off or a cosine threshold > 0 and <= 1"):
        merge_slots_arg(text)


def test_set_merge_slots_changes_the_model_and_a_copy_of_the_config(tiny_od_run):
    model, cfg, _ = load_model(tiny_od_run)
    assert cfg["model"]["merge_slots"] is None and model.merge_slots is None
    new = set_merge_slots(model, cfg, 0.5)
    assert model.merge_slots == 0.5 and new["model"]["merge_slots"] == 0.5
    assert cfg["model"]["merge_slots"] is None  # the caller's config is not changed
    assert set_merge_slots(model, new, "off")["model"]["merge_slots"] is None and model.merge_slots is None


def test_set_merge_slots_masks_are_the_merged_ones(tiny_od_run):
    """The flag's model gives the masks of a model built with the key: merged in eval mode, one group per slot."""
    model, cfg, _ = load_model(tiny_od_run)
    image = torch.rand(2, 3, *model.resolution) * 2 - 1
    torch.manual_seed(0)
    plain = model(image)
    set_merge_slots(model, cfg, 1e-6)  # nearly any two slots with a positive cosine merge
    torch.manual_seed(0)
    merged = model(image)
    m0, m1 = plain.masks, merged.masks
    torch.testing.assert_close(m1.sum(1), m0.sum(1))  # the masks still sum to one per pixel
    assert torch.equal(merged.recon, plain.recon)  # the reconstruction is unchanged
    assert (m1.flatten(2).amax(-1) == 0).any()  # some slot was emptied into another


def test_other_tasks_refuse_it(tiny_sp_run):
    model, cfg, _ = load_model(tiny_sp_run)
    with pytest.raises(UsageError, match="object-discovery Slot Attention models; this is a set_prediction model"):
        set_merge_slots(model, cfg, 0.9)


def test_eval_records_the_setting_and_names_the_file(tiny_od_run, tmp_path, capsys):
    run = copy_run(tiny_od_run, tmp_path / "od")
    assert main(["eval", str(run), "--merge-slots", "0.5"]) == 0
    assert "; near-copy slots merged (model.merge_slots 0.5; not the paper's protocol)" in capsys.readouterr().out
    [merged] = run.glob("eval-*-merge0.5.json")
    assert json.loads(merged.read_text())["merge_slots"] == 0.5
    assert main(["eval", str(run), "--merge-slots", "off"]) == 0  # the model's own setting: no tag
    assert "merged" not in capsys.readouterr().out
    plain = [p for p in run.glob("eval-*.json") if "merge" not in p.name]
    assert len(plain) == 1 and json.loads(plain[0].read_text())["merge_slots"] is None
    rows = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [r["merge_slots"] for r in rows[-2:]] == [0.5, None]


def test_eval_of_a_set_prediction_model_refuses_it(tiny_sp_run, capsys):
    assert main(["eval", str(tiny_sp_run), "--merge-slots", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --merge-slots applies to object-discovery Slot Attention models; this is a "
                   "set_prediction model of kind slot_attention"]  # fmt: skip


def test_figures_and_segment_take_it(tiny_od_run, tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["figures", str(tiny_od_run), "--num-images", "1", "--merge-slots", "0.9", "--out", str(out)]) == 0
    assert any(out.glob("*.png"))
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (35, 35, 3), dtype=np.uint8)).save(image)
    seg = tmp_path / "seg"
    argv = ["segment", str(image), "--model", str(tiny_od_run), "--out", str(seg), "--merge-slots", "0.9"]
    assert main(argv) == 0
    assert "1 of 1 images segmented" in capsys.readouterr().out

"""The object-centre separation (issue 23): the metric on hand-made slot maps where the answer is known, the centre
mapping through the CLEVR crop, and ``slotlab eval OBJECT_DISCOVERY_MODEL --data-path CLEVR_FOLDER``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slotlab.cli import main
from slotlab.data import clevr_render
from slotlab.metrics.centre_separation import background_slot, centre_separation
from slotlab.tasks.object_discovery.centres import Preparation, map_centres

CLEVR_PREP = Preparation((128, 128), clevr_crop=True, greyscale=False)
DEV = Path("/work/shared/data/real_clevr_dev")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("SLOTLAB_CACHE", str(tmp_path / "cache"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_known_cases():
    """Five 4x6 images, K = 4, slot 0 the largest (background) unless said; centres as (row, column)."""
    labels = torch.zeros(5, 4, 6, dtype=torch.long)
    labels[:, 0, 0:2] = 1  # slot 1: top-left 2 pixels
    labels[:, 3, 4:6] = 2  # slot 2: bottom-right 2 pixels
    labels[:, 1, 5] = 3  # slot 3: one pixel
    # image 0: two objects, each in its own slot -> 2 separated
    # image 1: one object, in slot 3 -> 1 separated
    # image 2: two objects both in slot 1 -> both shared, and a third alone in slot 2 -> 1 separated
    # image 3: one object on the background, one in slot 2 -> 1 separated, 1 in the background
    # image 4: one centre above the image, one right of it (excluded), one in slot 1; a padding row in slot 2
    centres = torch.tensor([
        [[0, 0], [3, 5], [0, 0], [0, 0]],
        [[1, 5], [0, 0], [0, 0], [0, 0]],
        [[0, 0], [0, 1], [3, 4], [0, 0]],
        [[2, 2], [3, 4], [0, 0], [0, 0]],
        [[-1, 2], [2, 6], [0, 1], [3, 5]],
    ])  # fmt: skip
    real = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 0]]).bool()
    c = centre_separation(labels, centres, real, 4)
    assert c["separated"].tolist() == [2, 1, 1, 1, 1]
    assert c["counted"].tolist() == [2, 1, 3, 2, 1]
    assert c["in_background"].tolist() == [0, 0, 0, 1, 0]
    assert c["shared"].tolist() == [0, 0, 2, 0, 0]
    assert c["outside"].tolist() == [0, 0, 0, 0, 2]
    assert (c["separated"] + c["in_background"] + c["shared"] == c["counted"]).all()


def test_background_is_the_largest_slot_lowest_index_on_ties():
    labels = torch.tensor([[[2, 2, 2, 1]], [[0, 0, 3, 3]], [[1, 1, 1, 1]]])  # [3, 1, 4]
    assert background_slot(labels, 4).tolist() == [2, 0, 1]
    # everything in one slot: that slot is the background, so no object counts
    c = centre_separation(labels[2:], torch.tensor([[[0, 0], [0, 3]]]), torch.ones(1, 2, dtype=torch.bool), 4)
    assert c["separated"].item() == 0 and c["in_background"].item() == 2


def test_centres_map_through_the_reference_crop():
    """Rows 29:221, columns 64:256 of 240x320 -> 128x128: 1.5 input pixels per model pixel."""
    box = np.array([[29, 64, 221, 256]])
    pixel = np.array([[[64, 29], [255.9, 220.9], [256, 100], [63, 100], [160, 125]]], dtype=np.float64)
    rc = map_centres(pixel, box, (128, 128))
    assert rc[0].tolist() == [[0, 0], [127, 127], [47, 128], [47, -1], [64, 64]]


def test_builtin_masks_at_mapped_centres_are_their_objects():
    """Built-in CLEVR6 renders prepared as a CLEVR model's input: their ground-truth labels (cropped and resized
    like the images) hold nearly every object's own label at its mapped centre (a hidden centre excepted)."""
    from slotlab.segment import prepare_image

    out = clevr_render.generate(0, 0, 6, variant="clevr6", image_size=(240, 320))
    box = np.array([prepare_image(out["image"][i], CLEVR_PREP).crop_box for i in range(6)])
    assert (box == [29, 64, 221, 256]).all()
    centre = torch.from_numpy(map_centres(out["pixel_coords"][..., :2].astype(np.float64), box, (128, 128)))
    real = torch.from_numpy(np.arange(6)[None] < out["num_objects"][:, None])
    labels = clevr_render.preprocess_clevr_mask(out["mask"]).long()  # [6, 128, 128]: 0 background, j + 1 object j
    c = centre_separation(labels, centre, real, 7)
    inside = real & (centre >= 0).all(-1) & (centre < 128).all(-1)
    own = labels.flatten(1).gather(1, (centre[..., 0] * 128 + centre[..., 1]).clamp(0, 128**2 - 1))
    own = (own == torch.arange(1, 7)[None]) & inside
    assert own.sum() >= 0.9 * inside.sum() and c["separated"].sum() >= 0.9 * c["counted"].sum()
    assert c["counted"].sum() == inside.sum() and c["outside"].sum() == (real & ~inside).sum()


def clevr_folder(root: Path, n: int, variant: str, seed: int = 0) -> list[dict]:
    """A CLEVR v1.0 folder (val) of 240x320 built-in renders; returns their scene JSON."""
    out = clevr_render.generate(seed, 0, n, variant=variant, image_size=(240, 320))
    (root / "images" / "val").mkdir(parents=True)
    (root / "scenes").mkdir()
    scenes = clevr_render.scenes_json(out, "val")
    (root / "scenes" / "CLEVR_val_scenes.json").write_text(json.dumps({"scenes": scenes}))
    for s, image in zip(scenes, out["image"], strict=True):
        Image.fromarray(image).save(root / "images" / "val" / s["image_filename"])
    return scenes


@pytest.fixture
def fresh_clevr6_model(tmp_path) -> Path:
    """A freshly initialised tiny CLEVR6 object-discovery model as a pretrained folder (K = 7, 128x128 input)."""
    from conftest import TINY_OD_MODEL

    from slotlab.config import load_config
    from slotlab.inference.checkpoint_io import write_pretrained
    from slotlab.tasks import get_task

    cfg = load_config("clevr6", [*TINY_OD_MODEL, "data.eval_size=2", "data.eval_batch_size=2"])
    torch.manual_seed(0)
    model = get_task(cfg["task"]).build_model(cfg)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"config": cfg}, "global_step": 0}  # fmt: skip
    return write_pretrained(ckpt, tmp_path / "clevr6_fresh")


def test_eval_on_a_clevr_folder(tmp_path, capsys, fresh_clevr6_model):
    """`slotlab eval` on a CLEVR folder: the separation line and its JSON record; scenes with more than 6 objects
    left out; the centres outside the crop counted apart (checked against the scene JSON directly)."""
    scenes = clevr_folder(tmp_path / "real" / "CLEVR_v1.0", 5, "clevr10", seed=3)
    kept = [s for s in scenes if len(s["objects"]) <= 6]
    assert 0 < len(kept) < len(scenes)  # the stream's first 5 scenes have both kinds
    xy = [o["pixel_coords"][:2] for s in kept for o in s["objects"]]
    outside = sum(not (64 <= x < 256 and 29 <= y < 221) for x, y in xy)
    out_json = tmp_path / "e.json"
    args = ["eval", str(fresh_clevr6_model), "--data-path", str(tmp_path / "real"), "--num-images", "5"]
    assert main([*args, "--out", str(out_json)]) == 0
    text = capsys.readouterr().out
    rec = json.loads(out_json.read_text())
    assert rec["num_images"] == len(kept) and rec["scenes_skipped"] == len(scenes) - len(kept)
    assert rec["centre_outside"] == outside and rec["centre_counted"] == len(xy) - outside
    assert rec["centre_separated"] + rec["centre_in_background"] + rec["centre_shared"] == rec["centre_counted"]
    assert rec["centre_separation"] == pytest.approx(rec["centre_separated"] / rec["centre_counted"])
    line = (f"K=7 T=3: object-centre separation: {100 * rec['centre_separation']:.1f} % of {rec['centre_counted']} "
            f"objects in {len(kept)} images ({rec['centre_in_background']} in the background slot")  # fmt: skip
    skipped = len(scenes) - len(kept)
    assert line in text and f"{skipped} scene{'s' if skipped > 1 else ''} with more than 6 objects left out" in text
    assert "domain:" in text


@pytest.mark.parametrize("case", ["empty_dir", "test_split"])
def test_eval_refusals(tmp_path, capsys, fresh_clevr6_model, case):
    folder = tmp_path / "real"
    folder.mkdir()
    args = ["eval", str(fresh_clevr6_model), "--data-path", str(folder)]
    if case == "test_split":
        clevr_folder(folder, 1, "clevr6")
        args += ["--split", "test"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert {"empty_dir": "without CLEVR v1.0 scenes", "test_split": "no scene JSON"}[case] in err[0]


@pytest.mark.skipif(not DEV.is_dir(), reason=f"{DEV} (the real CLEVR dev renders) is not here")
def test_eval_on_the_real_dev_renders(tmp_path, capsys, fresh_clevr6_model):
    out_json = tmp_path / "dev.json"
    args = ["eval", str(fresh_clevr6_model), "--data-path", str(DEV), "--num-images", "10", "--out", str(out_json)]
    assert main(args) == 0
    rec = json.loads(out_json.read_text())
    assert rec["num_images"] + rec["scenes_skipped"] == 10 and rec["centre_counted"] > 0
    assert "object-centre separation:" in capsys.readouterr().out

"""The video task (SAVi) through the CLI, in seconds: train a tiny model (unconditional and conditional on
first-frame boxes), eval (video FG-ARI and mBO, first frame included and excluded, named), figures (an animated
GIF), report, segment one's own video (a GIF, a folder of frames); its config keys and data registered as one
module plugs in (no task branch anywhere else)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from slotlab.cli import main
from slotlab.config import load_config
from slotlab.data.moving_objects import generate
from slotlab.drawing import gif_bytes

PACKAGE = Path(__file__).resolve().parents[1] / "slotlab"
TINY = {
    "task": "video",
    "data": {"image_size": 16, "num_frames": 3, "train_size": 8, "eval_size": 2, "batch_size": 4,
             "eval_batch_size": 2, "max_objects": 3, "workers": 1},
    "model": {"init": "learned", "num_slots": 4, "slot_dim": 16, "init_hidden": 16, "encoder_channels": [8, 8],
              "encoder_strides": [1, 1], "encoder_hidden": 16, "predictor_heads": 2, "predictor_mlp": 16,
              "decoder_channels": [8, 8, 8]},
    "optim": {"warmup_steps": 1, "decay_steps": 10},
    "trainer": {"max_steps": 2, "val_every": 2, "log_every": 1, "precision": "32-true", "progress_bar": False,
                "num_figure_images": 1, "compile": False, "accelerator": "cpu"},
}  # fmt: skip


def tiny_yaml(tmp_path: Path, name: str, **sections) -> Path:
    cfg = json.loads(json.dumps(TINY))
    for section, values in sections.items():
        cfg[section].update(values)
    cfg["run"] = {"root": str(tmp_path / "runs"), "name": name}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def video_run(tmp_path_factory) -> Path:
    """A finished 2-step unconditional video run."""
    tmp = tmp_path_factory.mktemp("video")
    assert main(["train", "--config", str(tiny_yaml(tmp, "uncond"))]) == 0
    return tmp / "runs" / "uncond"


def _clip_gif(path: Path, frames: int = 5, size: int = 24) -> Path:
    video = generate(7, 0, 1, num_frames=frames, image_size=size, max_objects=3)["video"][0]
    path.write_bytes(gif_bytes(list(video)))
    return path


def test_train_writes_named_video_scores(video_run, capsys):
    results = json.loads((video_run / "results.json").read_text())
    assert results["task"] == "video" and results["global_step"] == 2 and results["num_images"] == 2
    for key in ("fg_ari_video_mean", "fg_ari_video_skip_first_mean", "mbo_video_mean", "mbo_video_skip_first_mean",
                "fg_ari_frame_mean"):  # fmt: skip
        assert -1.0 <= results[key] <= 1.0, key
    assert list((video_run / "figures").glob("video_slots_step_*.png"))  # the validation still


def test_eval_names_first_frame_included_and_excluded(video_run, capsys):
    assert main(["eval", str(video_run)]) == 0
    out = capsys.readouterr().out
    assert "video FG-ARI (all frames)" in out and "video FG-ARI (first frame excluded)" in out
    assert "mBO (all frames)" in out and "mBO (first frame excluded)" in out and "on 2 eval clips" in out
    evaluated = json.loads((video_run / "eval-eval-step2.json").read_text())
    results = json.loads((video_run / "results.json").read_text())
    assert evaluated["fg_ari_video_mean"] == pytest.approx(results["fg_ari_video_mean"])  # same weights, same clips


def test_eval_flags_that_do_not_apply_are_refused(video_run, capsys):
    assert main(["eval", str(video_run), "--iters", "2"]) == 2
    assert "--iters does not apply to a video model" in capsys.readouterr().err
    assert main(["eval", str(video_run), "--num-slots", "5"]) == 2
    assert "--num-slots needs a sampled slot initialisation" in capsys.readouterr().err


def test_figures_write_an_animated_gif(video_run, tmp_path, capsys):
    assert main(["figures", str(video_run), "--out", str(tmp_path), "--num-images", "2"]) == 0
    with Image.open(tmp_path / "video_slots.gif") as gif:
        assert gif.n_frames == 3  # one per frame of the held-out clips
    assert (tmp_path / "video_slots_still.png").is_file()


def test_report_shows_the_video_curves_and_gif(video_run, capsys):
    assert main(["report", str(video_run)]) == 0
    page = (video_run / "report.html").read_text()
    assert "held-out video FG-ARI (all frames)" in page and "val/fg_ari_video" in page


def test_segment_a_gif_and_a_folder_of_frames(video_run, tmp_path, capsys):
    clip = _clip_gif(tmp_path / "clip.gif")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(generate(8, 0, 1, num_frames=4, image_size=20, max_objects=2)["video"][0]):
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    out = tmp_path / "seg"
    assert main(["segment", str(clip), str(frames), "--model", str(video_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "segmented 5 frames in slices of 3" in text and "segmented 4 frames" in text
    for stem, t in (("clip", 5), ("frames", 4)):
        with Image.open(out / f"{stem}_figure.gif") as gif:
            assert gif.n_frames == t
        with np.load(out / f"{stem}_masks.npz") as z:
            assert z["labels"].shape == (t, 16, 16) and z["masks"].shape == (t, 4, 16, 16)
            np.testing.assert_allclose(z["masks"].astype(np.float32).sum(axis=1), 1.0, atol=1e-2)


def test_segment_reports_an_unreadable_video_and_goes_on(video_run, tmp_path, capsys):
    clip = _clip_gif(tmp_path / "clip.gif")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["segment", str(empty), str(clip), "--model", str(video_run), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert f"error: {empty}: a folder without frames" in captured.err
    assert "1 of 2 images segmented" in captured.out


def test_conditional_model_trains_on_first_frame_boxes_and_cannot_segment(tmp_path, capsys):
    config = tiny_yaml(tmp_path, "cond", model={"init": "boxes"}, trainer={"max_steps": 1, "val_every": 1})
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "cond"
    assert "video FG-ARI (all frames)" in capsys.readouterr().out
    assert main(["segment", str(_clip_gif(tmp_path / "c.gif")), "--model", str(run), "--out", str(tmp_path)]) == 2
    assert "starts its slots from first-frame boxes" in capsys.readouterr().err


def test_video_config_keys_are_checked(tmp_path, capsys):
    config = tiny_yaml(tmp_path, "bad")
    assert main(["train", "--config", str(config), "model.targets=[depth]"]) == 2
    assert "model.targets must be a list of distinct targets" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "data.name=movi"]) == 2
    assert "data.path is not set" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "data.eval_slice=9"]) == 2
    assert "data.eval_slice 9 is longer than a held-out clip" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_image_task_refuses_the_video_dataset(capsys):
    assert main(["train", "--config", "tetrominoes_quick", "data.name=moving_objects"]) == 2
    assert "'moving_objects' is a built-in video dataset, not an image one" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["savi_moving_objects_cpu", "savi_moving_objects_cond_cpu", "savi_movi_a",
                                  "savi_movi_c"])  # fmt: skip
def test_video_presets_load_and_name_their_deviations(name):
    from slotlab.validate import model_footprint

    cfg = load_config(name, ["data.path=/nonexistent"] if "movi" in name and "moving" not in name else [])
    assert cfg["task"] == "video"
    header = (PACKAGE / "configs" / f"{name}.yaml").read_text().split("\n\n")[0]
    assert "deviation" in header.lower()  # every deviation from SAVi-S is named in the header
    assert model_footprint(cfg).parameters > 0  # the model of the preset builds and runs on the meta device


def test_no_video_branch_outside_the_video_task():
    """A task is one module: no line of slotlab/ outside slotlab/tasks/video/ compares a task with "video"."""
    pattern = re.compile(r"task[^\n]*[\"']video[\"']|[\"']video[\"'][^\n]*task")
    hits = [
        f"{p.relative_to(PACKAGE.parent)}:{n}:{line}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if not p.is_relative_to(PACKAGE / "tasks" / "video")
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not hits, hits
    assert pattern.search('if cfg["task"] == "video":')  # the check sees a branch


def test_movi_folder_trains_on_flow_and_evaluates_with_data_path(tmp_path, capsys):
    """The MOVi path end to end on the TFDS-written fixture: a TFDS folder (train + validation shards), flow target
    (SAVi-S's), 1-frame training windows of the 3-frame videos, held-out videos of 3 frames in slices of 1."""
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "movi" / "movi_a-train.tfrecord-00000-of-00001"
    folder = tmp_path / "movi_a" / "128x128" / "1.0.0"
    folder.mkdir(parents=True)
    for split in ("train", "validation"):
        shutil.copy(fixture, folder / f"movi_a-{split}.tfrecord-00000-of-00001")
    data = {"name": "movi", "path": str(folder), "num_frames": 1, "eval_num_frames": 3, "eval_slice": 1,
            "train_size": 10, "eval_size": 10, "batch_size": 2, "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    config = tiny_yaml(tmp_path, "movi", data=data, model={"init": "boxes", "targets": ["flow"]})
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "movi"
    results = json.loads((run / "results.json").read_text())
    assert results["num_images"] == 2 and results["dataset"] == "movi_a"  # all videos (fewer than asked)
    assert "mse_rgb_mean" not in results  # the model reconstructs flow only
    assert list((run / "checkpoints").glob("best-*.ckpt"))  # validated: a best checkpoint, but
    assert "test" not in results  # MOVi ships no test shards: the best checkpoint is not scored on a test split
    assert "best checkpoint" not in capsys.readouterr().out
    assert main(["eval", str(run), "--data-path", str(folder)]) == 0
    assert "on 2 eval clips" in capsys.readouterr().out


def test_python_api_runs_a_video_model_on_clips(video_run):
    """slotlab.load_model(VIDEO_RUN) takes clips as `slotlab segment` does: one clip of uint8 frames, a batch of
    clips, or prepared [B, T, 3, H, W] input; the same clip gives the same masks every way."""
    import torch

    import slotlab

    model = slotlab.load_model(video_run)
    clips = generate(3, 0, 2, num_frames=4, image_size=16, max_objects=3)["video"]  # [2, 4, 16, 16, 3] uint8
    one = model(clips[0])
    assert one.masks.shape == (1, 4, 4, 16, 16) and one.slots.shape[:3] == (1, 4, 4)
    torch.testing.assert_close(one.masks.sum(2), torch.ones(1, 4, 16, 16))
    both = model(clips)
    prepared = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    torch.testing.assert_close(model(prepared).masks, both.masks)
    torch.testing.assert_close(both.masks[:1], one.masks)
    labels = model.segment(clips)
    assert labels.shape == (2, 4, 16, 16) and labels.max() < 4
    with pytest.raises(ValueError, match="--iters does not apply"):
        model(clips, iters=2)

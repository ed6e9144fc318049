"""``slotlab data compare REAL_FOLDER``: the built-in vs real CLEVR report (issue 23) and its transfer check
(``--model``: a set-prediction model's AP on the real scenes vs on built-in renders of the same size)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slotlab import cli
from slotlab.cli import main
from slotlab.data import clevr_render
from slotlab.data.splits import split_stream

DEV = Path("/work/shared/data/real_clevr_dev")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("SLOTLAB_CACHE", str(tmp_path / "cache"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def png_folder(folder: Path, n: int = 3, size: tuple[int, int] = (24, 32)) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"r{i}.png")
    return folder


def clevr_folder(root: Path, n: int, size: tuple[int, int], seed: int = 0, variant: str = "clevr6") -> Path:
    """A CLEVR v1.0 folder (val split) of built-in renders of stream ``seed``: images and scene JSON."""
    out = clevr_render.generate(seed, 0, n, variant=variant, image_size=size)
    (root / "images" / "val").mkdir(parents=True)
    (root / "scenes").mkdir()
    scenes = clevr_render.scenes_json(out, "val")
    (root / "scenes" / "CLEVR_val_scenes.json").write_text(json.dumps({"scenes": scenes}))
    for s, image in zip(scenes, out["image"], strict=True):
        Image.fromarray(image).save(root / "images" / "val" / s["image_filename"])
    return root


def test_variants_flag_lists_the_renderers():
    assert sorted(cli.CLEVR_VARIANTS) == sorted(clevr_render.VARIANTS)


def test_png_folder_report_and_picture(tmp_path, capsys):
    real = png_folder(tmp_path / "real")
    pic = tmp_path / "cmp.png"
    assert main(["data", "compare", str(real), "--num", "2", "--variant", "clevr6", "--out", str(pic)]) == 0
    out = capsys.readouterr().out
    assert "## 3 real renders" in out and "2 built-in clevr6 renders (32x24" in out
    assert "| images | 3 | 2 |" in out and "same scenes" not in out  # no scene JSON: no re-rendering
    assert Image.open(pic).size == (2 * 32 + 4, 2 * 24 + 4)  # 2 rows (--num 2), columns real | built-in


def test_clevr_folder_report_rerenders_its_scenes(tmp_path, capsys):
    real = clevr_folder(tmp_path / "CLEVR_v1.0", 2, (48, 64))
    assert main(["data", "compare", str(tmp_path), "--num", "1", "--rows", "1", "--out", str(tmp_path / "x.png")]) == 0
    out = capsys.readouterr().out
    assert "## The same 2 scenes rendered from their JSON" in out and "| mae |" in out
    assert Image.open(tmp_path / "x.png").size == (3 * 64 + 8, 48)  # real | same scene | built-in
    assert real.is_dir()


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "png_out", "split"])
def test_bad_folders_are_one_error_line(tmp_path, capsys, case):
    folder = tmp_path / "real"
    args = ["data", "compare", str(folder), "--num", "1"]
    if case != "missing":
        folder.mkdir()
    if case == "unreadable":
        (folder / "a.png").write_bytes(b"not a png")
    if case == "png_out":
        png_folder(folder / "x")
        args[2] = str(folder / "x")
        args += ["--out", str(tmp_path / "pic.jpg")]
    if case == "split":
        clevr_folder(folder, 1, (24, 32))
        args += ["--split", "train"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert {"missing": "no such folder", "empty": "no PNG", "unreadable": "cannot decode", "png_out": ".png",
            "split": "scenes file not found"}[case] in err[0]  # fmt: skip


def test_transfer_on_the_same_renders_is_ratio_one(tmp_path, capsys):
    """Real folder = the model's test-split scenes (data seed 0's test stream) rendered at its render size 64x96 (as
    PNG + scene JSON): the real side (the `slotlab eval --data-path` path) and the built-in side see the same images
    and targets: the same AP, ratio 1; and the built-in side is exactly `slotlab eval`'s test split."""
    clevr_folder(tmp_path / "CLEVR_v1.0", 12, (64, 96), seed=split_stream(0, "test"))
    assert main(["data", "compare", str(tmp_path), "--num", "12", "--model", "set_prediction_cpu"]) == 0
    out = capsys.readouterr().out
    assert "12 built-in clevr6 renders (96x64, the test split of data seed 0;" in out
    assert ("## Transfer: AP on 12 real clevr6 scenes vs 12 built-in renders of the same size (the test split of "
            "data seed 0) (K=6, T=3)") in out  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| AP_")]
    assert len(rows) == 5 and all(r.split(" | ")[1] == r.split(" | ")[2].rstrip(" |") for r in rows), rows
    assert "real AP_inf / built-in AP_inf: 1.000 (meets the bar 0.8)" in out
    assert main(["eval", "--pretrained", "set_prediction_cpu", "--num-images", "12"]) == 0  # the test split
    table = capsys.readouterr().out
    ap_inf = next(line.split()[1] for line in table.splitlines() if line.split()[:1] == ["inf"])
    assert f"| AP_inf | {ap_inf} % | {ap_inf} % |" in out, (table, rows)


def test_transfer_never_scores_training_images(tmp_path, capsys):
    """Stream 0 is data seed 0's training split: the transfer check refuses to be pointed at any stream (--seed),
    and the library refuses renders of another stream than the model's test split."""
    from slotlab.inference.loading import load_model
    from slotlab.inference.transfer import builtin_stream, transfer_check
    from slotlab.zoo import resolve_model

    root = clevr_folder(tmp_path / "CLEVR_v1.0", 1, (24, 32))
    assert main(["data", "compare", str(root), "--num", "1", "--seed", "0", "--model", "set_prediction_cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --seed") and "test split" in err[0], err
    model, cfg, _ = load_model(resolve_model("set_prediction_cpu"))
    assert builtin_stream(cfg) == (split_stream(0, "test"), "the test split of data seed 0")
    renders = clevr_render.generate(0, 0, 1, variant="clevr6", image_size=(24, 32))
    with pytest.raises(ValueError, match="must be the test split"):
        transfer_check(model, cfg, root, renders, split_stream(0, "train"))


@pytest.mark.parametrize("asked", [None, 500])
def test_eval_takes_a_small_folder_whole(tmp_path, capsys, asked):
    """`slotlab eval --data-path` on a CLEVR folder with fewer scenes than the config's eval_size (256) or than
    --num-images evaluates all of them, as object discovery and video do, and says how many."""
    clevr_folder(tmp_path / "CLEVR_v1.0", 3, (64, 96))
    extra = [] if asked is None else ["--num-images", str(asked)]
    assert main(["eval", "--pretrained", "set_prediction_cpu", "--data-path", str(tmp_path), *extra]) == 0
    out = capsys.readouterr().out
    assert "(3 images, K=6, T=3)" in out
    assert "objects=all data=CLEVR folder (val scenes)" in out and "split=" not in out  # not a split of ours


def test_eval_refuses_a_folder_without_scenes_the_model_predicts(tmp_path, capsys):
    root = clevr_folder(tmp_path / "CLEVR_v1.0", 2, (64, 96), variant="clevr10")
    scenes_file = root / "scenes" / "CLEVR_val_scenes.json"
    scenes = json.loads(scenes_file.read_text())["scenes"]
    for s in scenes:  # every scene above CLEVR6's 6 objects
        s["objects"] = (s["objects"] * 7)[:7]
    scenes_file.write_text(json.dumps({"scenes": scenes}))
    assert main(["eval", "--pretrained", "set_prediction_cpu", "--data-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no val scene with at most 6 objects" in err[0], err


@pytest.mark.parametrize("case", ["png_folder", "variant", "task", "split"])
def test_transfer_refusals(tmp_path, capsys, case):
    real = png_folder(tmp_path / "real") if case == "png_folder" else clevr_folder(tmp_path / "c", 1, (24, 32))
    args = ["data", "compare", str(real), "--num", "1", "--model", "set_prediction_cpu"]
    if case == "variant":
        args += ["--variant", "clevr10"]
    if case == "task":
        args[-1] = "tetrominoes_cpu"
    if case == "split":
        args += ["--split", "train"]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "## " not in captured.out  # refused before any work
    assert {"png_folder": "no scene JSON", "variant": "predicts clevr6", "task": "set-prediction model",
            "split": "val scenes"}[case] in err[0]  # fmt: skip


@pytest.mark.skipif(not DEV.is_dir(), reason=f"{DEV} (the real CLEVR dev renders) is not here")
def test_real_dev_renders(capsys):
    assert main(["data", "compare", str(DEV), "--num", "1", "--variant", "clevr6"]) == 0
    out = capsys.readouterr().out
    assert "## 10 real renders" in out and "1 built-in clevr6 renders (320x240" in out
    assert "## The same 10 scenes rendered from their JSON" in out


def test_scores_do_not_depend_on_the_images_memory_layout():
    """Rendered images come channels-last-strided ([n, 3, S, S] views of [n, S, S, 3]), cached ones contiguous: the
    same images must give the same predictions and AP either way (they differed: 92.4 vs 92.6 % AP_inf on 256
    CLEVR10 images before image_to_model fixed the layout)."""
    from slotlab.inference.loading import load_model
    from slotlab.tasks.common import image_to_model
    from slotlab.tasks.set_prediction import evaluate_model
    from slotlab.tasks.set_prediction.data import renders_to_examples
    from slotlab.zoo import resolve_model

    model, cfg, _ = load_model(resolve_model("set_prediction_cpu"))
    ex = renders_to_examples(clevr_render.generate(2, 0, 8, variant="clevr6", image_size=(64, 96)), "clevr6", 64)
    strided = {k: torch.from_numpy(v) for k, v in ex.items()}
    assert not strided["image"].is_contiguous()  # the case under test: as the renderer's output arrives
    dense = {k: v.contiguous() for k, v in strided.items()}
    assert image_to_model(strided["image"], False).stride() == image_to_model(dense["image"], False).stride()
    with torch.no_grad():
        a, b = (model(image_to_model(d["image"], False)).pred for d in (strided, dense))
    assert torch.equal(a, b)
    assert evaluate_model(model, strided, 4) == evaluate_model(model, dense, 4)

"""Model zoo (``slotlab models``, ``eval --pretrained``, ``figures --pretrained``, package data) and
``slotlab segment`` on one's own images, with a tiny zoo entry made on the fly from a 2-step training run
(pointed at by ``$SLOTLAB_ZOO``), so no real weights are needed."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PAPER_SLOT_INIT, QUIET, TINY_OD_DATA, TINY_OD_MODEL
from PIL import Image
from safetensors.torch import load_file

from slotlab.cli import main
from slotlab.data.splits import generate_split
from slotlab.segment import SegmentModel, prepare_image
from slotlab.zoo import ENTRY_FILES, ZOO_ENV, get_model, make_entry, package_zoo_dir

ROOT = Path(__file__).resolve().parents[1]
# PAPER_SLOT_INIT: a test below segments with another number of slots.
TINY = [*TINY_OD_MODEL, *TINY_OD_DATA, *PAPER_SLOT_INIT, "trainer.max_steps=2", "trainer.val_every=2", *QUIET]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A tiny run folder and a zoo folder holding the entry 'tiny' made from it; $SLOTLAB_ZOO points there."""
    root = tmp_path_factory.mktemp("zoo_runs")
    assert main(["train", *TINY, f"run.root={root}", "run.name=tiny"]) == 0
    zoo_dir = root / "zoo"
    entry = make_entry(root / "tiny", "tiny", dest=zoo_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ZOO_ENV, str(zoo_dir))
        yield {"run": root / "tiny", "zoo": zoo_dir, "entry": entry}


def _package_data_globs() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["package-data"]["slotlab"]


def test_zoo_files_are_declared_package_data(zoo):
    globs = _package_data_globs()
    made = sorted(p.name for p in (zoo["zoo"] / "tiny").iterdir())
    assert made == ["README.md", "config.json", "model.safetensors"]  # a Hugging Face-style model folder
    for name in [*made, *ENTRY_FILES]:  # what make_entry writes and every file an entry may hold
        assert any(fnmatch.fnmatch(f"zoo/tiny/{name}", g) for g in globs), (name, globs)
    # The packaged zoo is found through importlib.resources (editable or wheel install), and every file in
    # it is covered by the globs (so a model dropped there ships in the wheel).
    pkg = package_zoo_dir()
    assert pkg.is_dir() and (pkg / "__init__.py").exists()
    for f in pkg.glob("*/*"):
        rel = f.relative_to(pkg.parent).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would not ship in the wheel"


def test_slim_checkpoint_and_card(zoo):
    entry = zoo["entry"]
    weights = load_file(str(entry.checkpoint))  # safetensors: raw tensors only
    run_ckpt = torch.load(zoo["run"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    model_keys = {k.removeprefix("model.") for k in run_ckpt["state_dict"] if k.startswith("model.")}
    assert set(weights) == model_keys  # the model's weights, nothing else (no EMA copies, no optimizer)
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert entry.size_bytes < (zoo["run"] / "checkpoints" / "last.ckpt").stat().st_size / 2  # no Adam moments
    meta = json.loads((entry.folder / "config.json").read_text())
    assert meta["task"] == "object_discovery" and meta["global_step"] == 2 and meta["slotlab_format"] == 2
    card = entry.card
    assert card["task"] == "object_discovery" and card["dataset"] == "tetrominoes"
    assert card["scores"]["metric"] == "FG-ARI" and card["scores"]["command"] == "slotlab eval --pretrained tiny"
    assert card["training"]["global_step"] == 2 and card["paper"]["value"].startswith("99.5")
    assert card["config"]["run"] == {"root": "runs", "name": None}  # no paths of the training machine


def test_models_lists_the_entry(zoo, capsys):
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny "))
    assert "object_discovery" in line and "tetrominoes" in line and "FG-ARI 0." in line and " MB" in line


def test_unknown_model_suggests_the_nearest(zoo, capsys):
    assert main(["eval", "--pretrained", "tiyn"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown model 'tiyn'. Did you mean 'tiny'? (slotlab models lists them)" in err
    assert main(["segment", "x.png", "--model", "tiyn"]) == 2
    assert "unknown model 'tiyn'" in capsys.readouterr().err


def test_eval_pretrained_remeasures_the_card_score(zoo, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--pretrained", "tiny"]) == 0
    out = capsys.readouterr().out
    score = get_model("tiny").card["scores"]["value"]
    assert f"FG-ARI K=4 T=3 on 16 test images of tetrominoes: {score:.4f} +-" in out  # the card's split: test
    assert get_model("tiny").card["scores"]["split"] == "test"
    (named,) = (tmp_path / "slotlab_out" / "tiny").glob("eval-*-step2-K4-T3.json")  # named after its settings
    res = json.loads(named.read_text())
    assert res["fg_ari_mean"] == pytest.approx(score, abs=1e-12)
    assert sorted(p.name for p in (zoo["zoo"] / "tiny").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert main(["eval", str(zoo["run"]), "--pretrained", "tiny"]) == 2  # both: refused
    assert "not both" in capsys.readouterr().err


def test_figures_pretrained(zoo, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "--pretrained", "tiny", "--num-images", "2"]) == 0
    assert "writing to slotlab_out/tiny/" in capsys.readouterr().out
    for name in ("figure3a_slots.png", "figure3b_attention.png", "figure3c_iterations.png"):
        assert (tmp_path / "slotlab_out" / "tiny" / name).stat().st_size > 0


def _images(folder: Path) -> dict[str, Path]:
    data = generate_split("tetrominoes", "test", 3, 0)["image"]  # [3, 35, 35, 3] uint8
    folder.mkdir()
    p = {name: folder / name for name in ("a.png", "b.jpg", "c_rgba.png", "grey16.png", "small.png", "text.png")}
    Image.fromarray(data[0]).save(p["a.png"])
    Image.fromarray(np.kron(data[1], np.ones((2, 3, 1), np.uint8))).save(p["b.jpg"], quality=95)  # 105x70 JPEG
    Image.fromarray(np.concatenate([data[2], np.full((35, 35, 1), 128, np.uint8)], -1), "RGBA").save(p["c_rgba.png"])
    Image.fromarray(data[0][..., 0].astype(np.uint16) * 257).save(p["grey16.png"])  # 16-bit greyscale
    Image.fromarray(data[0][:4, :4]).save(p["small.png"])
    p["text.png"].write_text("not an image")
    (folder / "adir").mkdir()
    p["adir"] = folder / "adir"
    p["missing"] = folder / "missing.png"
    return p


def test_segment_good_and_bad_inputs(zoo, capsys, tmp_path):
    p = _images(tmp_path / "in")
    out = tmp_path / "seg"
    order = ["a.png", "adir", "b.jpg", "text.png", "c_rgba.png", "missing", "grey16.png", "small.png", "a.png"]
    args = [str(p[k]) for k in order]
    assert main(["segment", *args, "--model", "tiny", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    for bad, why in [
        ("adir", "is a directory"),
        ("text.png", "not an image"),
        ("missing", "no such file"),
        ("small.png", "image too small: 4x4 pixels"),
    ]:
        assert f"error: {p[bad]}: {why}" in cap.err
    assert "RGBA -> RGB" in cap.out and "16-bit greyscale" in cap.out and "center-cropped to 70x70" in cap.out
    for stem, size in [
        ("a", (35, 35)),
        ("b", (70, 105)),
        ("c_rgba", (35, 35)),
        ("grey16", (35, 35)),
        ("a_2", (35, 35)),
    ]:
        assert (out / f"{stem}_figure.png").exists()
        assert Image.open(out / f"{stem}_masks.png").size == size[::-1]  # at the input resolution
        z = np.load(out / f"{stem}_masks.npz")
        assert z["masks"].shape == (4, 35, 35) and z["masks"].dtype == np.float32
        assert np.allclose(z["masks"].sum(0), 1, atol=1e-4)
        assert z["labels"].shape == (35, 35) and z["labels_input"].shape == size
        assert z["attn"].shape == (3, 4, 35, 35) and z["image"].shape == (35, 35, 3)
        assert "scaled to [-1, 1]" in str(z["steps"])
    assert not list(out.glob("small*")) and not list(out.glob("text*"))
    a, a2 = np.load(out / "a_masks.npz"), np.load(out / "a_2_masks.npz")  # same image twice: same masks
    assert np.array_equal(a["masks"], a2["masks"])
    b = np.load(out / "b_masks.npz")
    assert tuple(b["crop_box"]) == (0, 17, 70, 87) and (b["labels_input"][:, :17] == -1).all()


def test_segment_run_folder_with_test_time_k_and_t(zoo, capsys, tmp_path):
    p = _images(tmp_path / "in")
    out = tmp_path / "seg"
    argv = ["segment", str(p["a.png"]), "--model", str(zoo["run"]), "--out", str(out), "--num-slots", "6"]
    assert main([*argv, "--iters", "2"]) == 0
    z = np.load(out / "a_masks.npz")
    assert z["masks"].shape == (6, 35, 35) and z["attn"].shape == (2, 6, 35, 35)
    assert "1 of 1 images segmented" in capsys.readouterr().out


def test_segment_set_prediction_draws_attention_only(tmp_path, capsys):
    from slotlab.config import load_config
    from slotlab.tasks.set_prediction import build_set_prediction_model
    from slotlab.train.state import CHECKPOINT_FORMAT

    cfg = load_config(
        "set_prediction_quick", ["data.image_size=32", "model.encoder_channels=[8,8,8,8]", "model.slot_dim=16"]
    )
    model = build_set_prediction_model(cfg["model"], 32)
    ckpt = tmp_path / "sp.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": {"config": cfg},
            "global_step": 0,
            "slotlab_format": CHECKPOINT_FORMAT,
            "slotlab_task": "set_prediction",
        },
        ckpt,
    )
    img = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(img)  # 3:2
    assert main(["segment", str(img), "--model", str(ckpt), "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr().out
    assert "no decoder" in cap and "squashed to 32x32, as the training scenes" in cap
    z = np.load(tmp_path / "o" / "scene_masks.npz")
    assert z["masks"].shape == (6, 32, 32) and z["attn"].shape == (3, 6, 8, 8) and z["pred"].shape == (6, 19)
    assert "recon" not in z.files and (tmp_path / "o" / "scene_figure.png").exists()


def _fake(dataset: str, clevr: bool, grey: bool = False) -> SegmentModel:
    return SegmentModel(None, {}, "object_discovery", (128, 128), "x", dataset, clevr, grey, None, True, True)


def test_clevr_crop_only_for_clevr_models():
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    p = prepare_image(frame, _fake("clevr6", clevr=True))
    assert p.crop_box == (29, 64, 221, 256) and p.image.shape == (128, 128, 3) and "CLEVR crop" in p.steps[0]
    big = np.kron(frame, np.ones((2, 2, 1), np.uint8))  # 480x640: the same box, scaled
    assert prepare_image(big, _fake("clevr6", clevr=True)).crop_box == (58, 128, 442, 512)
    square = prepare_image(frame[:, :240], _fake("clevr6", clevr=True))  # not 4:3: centred square instead
    assert square.crop_box == (0, 0, 240, 240) and "not 4:3" in square.steps[0]
    other = prepare_image(frame, _fake("multi_dsprites", clevr=False))  # other datasets: centred square
    assert other.crop_box == (0, 40, 240, 280) and "center-cropped to 240x240" in other.steps[0]
    grey = prepare_image(frame, _fake("clevr6_greyscale", clevr=True, grey=True)).image
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_set_prediction_entry_quotes_a_set_prediction_number(tiny_sp_run, tmp_path):
    # The card's paper number is its task's: a CLEVR6 set-prediction model must not quote CLEVR6's object-discovery
    # FG-ARI (Table 1), which it did when the lookup fell back to the dataset name.
    entry = make_entry(tiny_sp_run, "tiny_sp", dest=tmp_path / "zoo", measure_score=False)
    card = entry.card
    assert card["task"] == "set_prediction"
    assert card["scores"]["metric"] == "AP_inf"
    assert card["paper"] is None or card["paper"]["metric"] == "AP_inf", card["paper"]

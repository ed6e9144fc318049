"""``slotlab eval --data-path FILE`` reports the reconstruction error of the evaluated images against the model's
held-out error and warns when the images are far outside it (issue 25 item 5; the rule: slotlab.inference.domain).

The file is a small DeepMind-format Tetrominoes TFRecord written here (``tfrecord``, the test-only writer of
test_tfrecord.py); the model is the zoo's ``tetrominoes`` entry copied into a pretrained folder whose config has
small data sizes, so that the file holds ``train_size + eval_size`` records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_run

from slotlab.cli import main
from slotlab.data.splits import generate_split
from slotlab.evaluate import evaluate_checkpoint
from slotlab.inference.domain import FAR_FACTOR, DomainReference, binomial_tail, summarize_set
from slotlab.inference.domain_eval import REFERENCE_CACHE, reference_key
from slotlab.zoo import get_model, resolve_model

TRAIN, EVAL = 2, 16  # the pretrained folder's data sizes: the file needs TRAIN + EVAL records


def _one_byte_entries(a: np.ndarray) -> list[bytes]:
    """A BytesList as in the DeepMind files: one 1-byte string per element (C order)."""
    flat = np.ascontiguousarray(a, dtype=np.uint8).ravel().tobytes()
    return [flat[i : i + 1] for i in range(len(flat))]


def write_tetrominoes(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """A Tetrominoes TFRecord file of images uint8 [N, 35, 35, 3] and label maps [N, 35, 35] (0 = background)."""
    writer = pytest.importorskip("tfrecord.writer").TFRecordWriter(str(path))
    for image, label in zip(images, labels, strict=True):
        mask = (255 * (label[None] == np.arange(4)[:, None, None])).astype(np.uint8)[..., None]  # [K, H, W, 1]
        datum = {"image": (_one_byte_entries(image), "byte"), "mask": (_one_byte_entries(mask), "byte"),
                 "color": ([0.0] * 12, "float")}  # fmt: skip
        for name in ("x", "y", "shape", "visibility"):
            datum[name] = ([0.0] * 4, "float")
        writer.write(datum)
    writer.close()
    return path


def test_filed_tetrominoes_is_read_back(tmp_path):
    from slotlab.data.files import load_tfrecord_split

    d = generate_split("tetrominoes", "test", 3)
    back = load_tfrecord_split(write_tetrominoes(tmp_path / "t.tfrecords", d["image"], d["mask"]), "tetrominoes", 1, 2)
    np.testing.assert_array_equal(back["image"], d["image"][1:])
    np.testing.assert_array_equal(back["mask"], d["mask"][1:])


@pytest.fixture(scope="module")
def small_zoo_model(tmp_path_factory) -> Path:
    """The zoo's ``tetrominoes`` model (its card stores ``domain``) with data.train_size 2, eval_size 16."""
    folder = tmp_path_factory.mktemp("model") / "tetrominoes_small"
    shutil.copytree(resolve_model("tetrominoes"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["config"]["data"].update(train_size=TRAIN, eval_size=EVAL, batch_size=TRAIN, eval_batch_size=EVAL)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _files(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """In-domain (procedural Tetrominoes test images) and out-of-domain (uniform noise) files of n records."""
    d = generate_split("tetrominoes", "test", n)
    noise = np.random.default_rng(0).integers(0, 256, d["image"].shape, dtype=np.uint8)
    return (write_tetrominoes(tmp_path / "tetrominoes.tfrecords", d["image"], d["mask"]),
            write_tetrominoes(tmp_path / "noise.tfrecords", noise, d["mask"]))  # fmt: skip


def _eval_json(folder: Path, data: Path) -> dict:
    (path,) = folder.glob(f"eval-*-data-{data.name}.json")
    return json.loads(path.read_text())


def test_in_domain_file_gets_a_domain_line_and_no_warning(small_zoo_model, tmp_path, capsys):
    good, noise = _files(tmp_path, TRAIN + EVAL)
    assert main(["eval", str(small_zoo_model), "--data-path", str(good)]) == 0
    out, err = capsys.readouterr()
    card = get_model("tetrominoes").card["domain"]
    assert f"domain: reconstruction MSE of the {EVAL} evaluated images: median " in out
    assert f"on the model's 320 held-out test images (from its card {small_zoo_model / 'README.md'})" in out
    assert f"median {card['recon_mse_median']:.4f}, 95th percentile {card['recon_mse_p95']:.4f}" in out
    assert "warning" not in err
    rec = _eval_json(small_zoo_model, good)["domain"]
    assert rec["num_images"] == EVAL and rec["far_outside"] is False and rec["reference"]["num_images"] == 320
    assert rec["recon_mse_median"] < card["recon_mse_p95"]  # the typical image reconstructs as held-out ones do

    assert main(["eval", str(small_zoo_model), "--data-path", str(noise)]) == 0  # a warning, not an error
    out, err = capsys.readouterr()
    assert f"domain: reconstruction MSE of the {EVAL} evaluated images" in out
    assert f"warning: {EVAL} of {EVAL} evaluated images reconstruct far worse than the images the model" in err
    rec = _eval_json(small_zoo_model, noise)["domain"]
    assert rec["far_outside"] is True and rec["num_far"] == EVAL
    assert rec["recon_mse_median"] > FAR_FACTOR * card["recon_mse_p95"]
    records = [json.loads(line) for line in (small_zoo_model / "evals.jsonl").read_text().splitlines()]
    assert [r["domain"]["far_outside"] for r in records] == [False, True]


def test_python_evaluation_of_a_file_records_the_domain(small_zoo_model, tmp_path):
    _, noise = _files(tmp_path, TRAIN + EVAL)
    res = evaluate_checkpoint(small_zoo_model, data_path=str(noise), device="cpu")
    assert res["domain"]["far_outside"] is True
    assert "domain" not in evaluate_checkpoint(small_zoo_model, device="cpu", num_images=2)  # no file: no check


def test_run_folder_measures_its_reference_once(tiny_od_run, tmp_path, capsys):
    """A run folder has no card: the reference is measured on its own held-out eval images and cached."""
    run = copy_run(tiny_od_run, tmp_path / "run")
    good, _ = _files(tmp_path, 64 + 16)  # the tiny run's data.train_size + data.eval_size
    assert main(["eval", str(run), "--data-path", str(good)]) == 0
    out = capsys.readouterr().out
    cache = run / REFERENCE_CACHE
    assert f"on the model's 16 held-out eval images (measured now, cached in {cache})" in out
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["num_images"] == 16 and entry["split"] == "eval" and entry["checkpoint"] == "last.ckpt"
    assert main(["eval", str(run), "--data-path", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"on the model's 16 held-out eval images (measured earlier, cached in {cache})" in out
    ref = _eval_json(run, good)["domain"]["reference"]
    assert (ref["recon_mse_median"], ref["recon_mse_p95"]) == (entry["recon_mse_median"], entry["recon_mse_p95"])


def test_the_reference_cache_is_keyed_by_content(tmp_path):
    weights = tmp_path / "last.ckpt"
    weights.write_bytes(b"one")
    data = {"name": "tetrominoes", "eval_size": 16, "path": None}
    key = reference_key(weights, data, 16)
    assert reference_key(weights, data, 16) == key
    assert reference_key(weights, {**data, "seed": 1}, 16) != key
    assert reference_key(weights, data, 8) != key
    weights.write_bytes(b"two")  # other weights under the same name
    assert reference_key(weights, data, 16) != key


def test_the_rule_for_a_set_of_images():
    ref = DomainReference(median=0.001, p95=0.01, num_images=320)
    inside, far = np.full(320, 0.001), FAR_FACTOR * 0.01 + 0.01
    one_odd = summarize_set(np.r_[inside[:15], far], ref, "card")  # 1 of 16: what 5 % of held-out images do
    assert one_odd.num_far == 1 and not one_odd.far_outside and one_odd.warning() is None
    assert summarize_set(np.r_[inside[:290], np.full(30, far)], ref, "card").far_outside  # 30 of 320
    assert not summarize_set(np.r_[inside[:300], np.full(20, far)], ref, "card").far_outside  # 20 of 320
    assert summarize_set(np.array([far]), ref, "card").far_outside  # one image: segment's rule
    assert not summarize_set(np.array([far]), None, "no reference").far_outside
    assert "(no reference)" in summarize_set(np.array([far]), None, "no reference").line()
    assert binomial_tail(1, 16) == pytest.approx(1 - 0.95**16) and binomial_tail(0, 5) == 1.0

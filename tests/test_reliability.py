"""Reliability: same seed -> same first 100 losses; SIGKILL + resume -> the same weights as an uninterrupted
run; 2-process DDP (gloo) -> identical replicas and the single-process result; NaN loss -> clear stop with the
last good checkpoint kept; failed checkpoint save -> previous checkpoint survives."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_OD_AUTO_PRECISION, kill_at_checkpoint

from slotlab.cli import main

SMALL = TINY_OD_AUTO_PRECISION  # the machine's precision (bf16 where native), not the fp32 of TINY_OD


def losses(run_dir: Path) -> list[float]:
    out = {}
    for f in sorted((run_dir / "logs").glob("version_*/metrics.csv")):
        for row in csv.DictReader(open(f)):
            if row.get("train/loss"):
                out[int(row["step"])] = float(row["train/loss"])
    return [out[k] for k in sorted(out)]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "slotlab.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_same_seed_same_first_100_losses(tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "train",
                    *SMALL,
                    "trainer.max_steps=100",
                    "trainer.val_every=100",
                    "seed=3",
                    f"run.root={tmp_path}",
                    f"run.name={name}",
                ]
            )
            == 0
        )
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) == 100
    assert a == b  # bit-identical on CPU
    assert a[-1] < a[0]  # and it is learning
    assert (
        main(
            [
                "train",
                *SMALL,
                "trainer.max_steps=5",
                "trainer.val_every=5",
                "seed=4",
                f"run.root={tmp_path}",
                "run.name=c",
            ]
        )
        == 0
    )
    assert losses(tmp_path / "c")[:5] != a[:5]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    common = [*SMALL, "trainer.max_steps=40", "trainer.val_every=4", f"run.root={tmp_path}"]
    assert main(["train", *common, "run.name=full"]) == 0
    p = cli("train", *common, "run.name=killed")
    ckpt = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    killed_at = kill_at_checkpoint(p, ckpt, 12)
    assert 12 <= killed_at < 40
    assert main(["train", "--resume", str(tmp_path / "killed")]) == 0
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "killed")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k  # bit-exact
    assert losses(tmp_path / "killed")[-5:] == losses(tmp_path / "full")[-5:]


def test_ddp_two_cpu_processes(tmp_path):
    # fp32 pinned: the 1e-5 agreement below is fp32 rounding; under bf16 autocast (precision auto on AMX and on AMD
    # AVX-512-bf16 machines) the two reduction orders differ by bf16 rounding instead.
    common = [
        *SMALL,
        "trainer.max_steps=6",
        "trainer.val_every=6",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        f"run.root={tmp_path}",
    ]
    p = cli("train", *common, "trainer.devices=2", "trainer.strategy=ddp", "trainer.threads=1", "run.name=ddp")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
    assert main(["train", *common, "run.name=single"]) == 0
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    assert ddp["world_size"] == 2 and ddp["replica_max_diff"] == 0.0  # identical replicas
    # Same global batch, same per-sample noise: 2 processes compute what 1 process computes (up to rounding).
    wd, ws = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    for k in ws:
        torch.testing.assert_close(wd[k], ws[k], rtol=1e-4, atol=1e-5)
    # The held-out evaluation reduced across the 2 processes equals the single-process evaluation.
    val = [
        float(r["val/fg_ari"])
        for f in (tmp_path / "ddp" / "logs").glob("version_*/metrics.csv")
        for r in csv.DictReader(open(f))
        if r.get("val/fg_ari")
    ]
    assert val[-1] == pytest.approx(ddp["fg_ari_mean"], abs=1e-6)
    assert ddp["fg_ari_mean"] == pytest.approx(single["fg_ari_mean"], abs=1e-3)


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path, capsys, monkeypatch):
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

    assert (
        main(["train", *SMALL, "trainer.max_steps=2", "trainer.val_every=2", f"run.root={tmp_path}", "run.name=nan"])
        == 0
    )
    ckpt_path = tmp_path / "nan" / "checkpoints" / "last.ckpt"
    before = torch.load(ckpt_path, weights_only=True)
    # From now on the loss is NaN (as after a numerical blow-up).
    monkeypatch.setattr(ObjectDiscoveryModel, "loss", staticmethod(lambda out, image: out.recon.mean() * torch.nan))
    assert main(["train", "--resume", str(tmp_path / "nan"), "trainer.max_steps=6"]) == 2
    err = capsys.readouterr().err
    assert "training loss is nan at step 2" in err and "last good checkpoint" in err
    after = torch.load(ckpt_path, weights_only=True)
    assert after["global_step"] == before["global_step"] == 2
    for k, v in after["state_dict"].items():
        assert torch.isfinite(v).all() and torch.equal(v, before["state_dict"][k])


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from slotlab.train.callbacks import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state": 1}, path)

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"state": 1}
    assert not list(tmp_path.glob("*.tmp"))


def test_layout_ari_flags_stripes_not_objects():
    from slotlab.data.splits import generate_split
    from slotlab.train.failed_seed import layout_ari

    g = torch.Generator().manual_seed(0)
    truth = torch.from_numpy(generate_split("tetrominoes", "eval", 32)["mask"]).long()  # [32, 35, 35]
    objects = torch.nn.functional.one_hot(truth, 4).permute(0, 3, 1, 2).float()  # masks that follow objects
    bands = (torch.arange(35) * 4 // 35)[:, None].expand(35, 35)
    perms = torch.stack([torch.randperm(4, generator=g) for _ in range(32)])
    stripes = torch.nn.functional.one_hot(perms[:, bands], 4).permute(0, 3, 1, 2).float()  # [32, 4, 35, 35]
    assert layout_ari(stripes) > 0.99
    assert layout_ari(objects) < 0.2


def test_failed_seed_restart_on_a_constructed_failure(tmp_path, monkeypatch, capsys):
    """A model whose masks are horizontal stripes whatever the image is flagged, and the run restarts."""
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

    original = ObjectDiscoveryModel.forward

    def striped(self, image, *args, **kwargs):
        out = original(self, image, *args, **kwargs)
        k, h = out.masks.shape[1], out.masks.shape[-2]
        bands = (torch.arange(h) * k // h)[:, None].expand(h, out.masks.shape[-1])
        out.masks = (
            torch.nn.functional.one_hot(bands, k).permute(2, 0, 1)[None, :, None].float().expand_as(out.masks)
            + 0 * out.masks
        )
        return out

    monkeypatch.setattr(ObjectDiscoveryModel, "forward", striped)
    assert (
        main(
            [
                "train",
                *SMALL,
                "trainer.max_steps=6",
                "trainer.val_every=1",
                "trainer.failed_seed=restart",
                "trainer.failed_seed_after=0",
                "trainer.failed_seed_restarts=1",
                f"run.root={tmp_path}",
                "run.name=stuck",
            ]
        )
        == 2
    )  # still stuck after the restart: reported, non-zero exit
    captured = capsys.readouterr()
    assert "failed seed detected; restarting with seed 1" in captured.out
    assert "no restarts left" in captured.err
    assert "layout ARI" in (tmp_path / "stuck" / "FAILED_SEED.txt").read_text()
    assert (tmp_path / "stuck-restart1" / "FAILED_SEED.txt").exists()  # the constructed failure persists

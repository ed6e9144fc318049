"""Dev script: convert zoo entries of the old layout (``model.ckpt`` pickle + ``card.yaml``/``card.json``) into
the Hugging Face-style layout (``model.safetensors`` + ``config.json`` + ``README.md`` card), re-measuring each
score on the ``test`` split. The old files are removed once the new entry is whole.

    python tools/convert_zoo.py [ZOO_DIR ...]      # default: the package's slotlab/zoo/

The old checkpoint is read with ``torch.load(..., weights_only=True)``: converting runs no code from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml


def convert(folder: Path) -> str:
    from slotlab.inference.checkpoint_io import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, write_pretrained
    from slotlab.train.runtime import machine_kind
    from slotlab.zoo import _sha256, measure, read_card

    old_ckpt = folder / "model.ckpt"
    old_card = next((folder / n for n in ("card.yaml", "card.json") if (folder / n).exists()), None)
    if not old_ckpt.exists() or old_card is None:
        return f"{folder.name}: not an old-layout entry, left alone"
    card = yaml.safe_load(old_card.read_text())  # JSON is YAML
    ckpt = load_checkpoint(old_ckpt)
    before = (card.get("scores") or {}).get("value")
    write_pretrained(ckpt, folder)  # weights + config first: measure() reads the folder
    scores = measure(folder)
    scores["command"] = f"slotlab eval --pretrained {folder.name}"
    scores["measured_on"] = machine_kind()
    scores["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    card.pop("config", None)  # lives in config.json
    card["scores"] = scores
    meta = json.loads((folder / CONFIG_FILE).read_text())
    card["checkpoint"] = {
        **(card.get("checkpoint") or {}),
        "file": WEIGHTS_FILE,
        "bytes": (folder / WEIGHTS_FILE).stat().st_size,
        "sha256": _sha256(folder / WEIGHTS_FILE),
        "slotlab_format": meta["slotlab_format"],
    }
    write_pretrained(ckpt, folder, card)
    read_card(folder)  # the new entry reads back
    old_ckpt.unlink()
    old_card.unlink()
    return f"{folder.name}: {scores['metric']} {before} (old card) -> {scores['value']:.4f} on {scores['split']}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("zoo", nargs="*", help="zoo folders (default: the package's)")
    args = p.parse_args(argv)
    from slotlab.zoo import package_zoo_dir

    roots = [Path(z) for z in args.zoo] or [package_zoo_dir()]
    for root in roots:
        for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))):
            print(convert(folder), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

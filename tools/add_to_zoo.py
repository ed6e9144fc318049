"""Dev script: turn a finished run folder into a model-zoo entry shipped with the package.

    python tools/add_to_zoo.py RUN_DIR NAME [--checkpoint last|best|PATH] [--dest DIR] [--no-measure]
                               [--set model.eval_iters=7 ...]

Writes the Hugging Face-style folder ``slotlab/zoo/NAME/``: ``model.safetensors`` (fp32 weights, no optimizer
state), ``config.json`` (config, step, format) and the ``README.md`` card (task, dataset, the score measured now on
the ``test`` split by the same code as
``slotlab eval --pretrained NAME``, the machine, training time, the paper's number), and prints the size.
See slotlab/zoo/__init__.py (the zoo serves the paper's Table 1 / Figure 5 numbers as re-measurable models).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a finished run folder (or a .ckpt file)")
    p.add_argument("name", help="zoo name, e.g. tetrominoes_quick")
    p.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint path")
    p.add_argument("--dest", default=None, help="zoo folder (default: the package's slotlab/zoo/)")
    p.add_argument("--no-measure", action="store_true", help="take the score from results.json instead")
    p.add_argument("--machine", default=None, help="what it was trained on (default: this machine)")
    p.add_argument("--notes", default=None, help="free text for the card")
    p.add_argument("--overwrite", action="store_true", help="replace an existing entry")
    p.add_argument(
        "--set", nargs="+", default=None, metavar="KEY=VALUE",
        help="keys that act at evaluation only (e.g. model.eval_spatial_prior=0.3), chosen on the eval split",
    )  # fmt: skip
    args = p.parse_args(argv)

    from slotlab.train.checkpoints import CheckpointError
    from slotlab.zoo import ZooEntryError, make_entry

    t0 = time.perf_counter()
    try:
        entry = make_entry(
            args.run,
            args.name,
            dest=args.dest,
            checkpoint=args.checkpoint,
            measure_score=not args.no_measure,
            machine=args.machine,
            notes=args.notes,
            overwrite=args.overwrite,
            evaluation=args.set,
        )
    except (ZooEntryError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    source = Path(args.run)
    ckpt = source / "checkpoints" / "last.ckpt" if source.is_dir() and args.checkpoint == "last" else None
    before = f" (run checkpoint {ckpt.stat().st_size / 1e6:.2f} MB)" if ckpt is not None and ckpt.exists() else ""
    metric, value = entry.score()
    print(f"zoo entry {entry.folder}")
    n = entry.card["checkpoint"]["parameters"]
    print(f"  model.safetensors {entry.size_bytes / 1e6:.2f} MB{before}, {n:,} fp32 weights")
    print(f"  {metric} {value:.4f} ({entry.card['scores']['command']}) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dev script: re-measure zoo entries' scores on the ``test`` split after the data they are scored on changed
(e.g. a renderer change re-renders the built-in CLEVR images), keeping the weights and the rest of the card.

    python tools/remeasure_zoo.py NAME [NAME ...] [--note TEXT]

The card's old score moves to ``scores_before`` with the date it was measured; ``--note`` is appended to ``notes``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone


def remeasure(name: str, note: str | None) -> str:
    from slotlab.inference.checkpoint_io import load_checkpoint, write_pretrained
    from slotlab.machine import machine_kind
    from slotlab.zoo import get_model, measure, read_card

    folder = get_model(name).folder
    card = read_card(folder)
    card.pop("config", None)  # lives in config.json
    before = card.get("scores") or {}
    scores = measure(folder)
    scores["command"] = f"slotlab eval --pretrained {name}"
    scores["measured_on"] = machine_kind()
    scores["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    card["scores_before"] = {k: before.get(k) for k in ("metric", "value", "split", "measured_at")}
    card["scores"] = scores
    if note:
        card["notes"] = f"{card['notes']} {note}" if card.get("notes") else note
    write_pretrained(load_checkpoint(folder), folder, card)  # same weights: the same bytes and sha256
    read_card(folder)  # reads back, sha256 checked on use
    return f"{name}: {scores['metric']} {before.get('value')} -> {scores['value']:.4f} on {scores['split']}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="zoo names")
    p.add_argument("--note", default=None, help="text appended to the card's notes")
    args = p.parse_args(argv)
    for name in args.names:
        print(remeasure(name, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

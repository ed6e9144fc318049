"""Dev script: re-measure zoo entries' scores on the ``test`` split after the data they are scored on changed
(e.g. a renderer change re-renders the built-in CLEVR images), keeping the weights and the rest of the card.

    python tools/remeasure_zoo.py NAME [NAME ...] [--note TEXT] [--set model.eval_iters=7 ...]

The card's old score moves to ``scores_before`` with the date it was measured; ``--note`` is appended to ``notes``.
``--set`` first sets keys that act at evaluation only (e.g. the test-time T chosen on the eval split; the weights
stay the same bytes), and the card's notes name them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone


def remeasure(name: str, note: str | None, evaluation: list[str] | None = None) -> str:
    from slotlab.inference.checkpoint_io import load_checkpoint, write_pretrained
    from slotlab.machine import machine_kind
    from slotlab.zoo import evaluation_note, get_model, measure, read_card, set_evaluation_keys

    folder = get_model(name).folder
    card = read_card(folder)
    card.pop("config", None)  # lives in config.json
    before = card.get("scores") or {}
    if evaluation:
        ckpt = load_checkpoint(folder)
        set_note = evaluation_note(set_evaluation_keys(ckpt, evaluation))
        note = f"{note} {set_note}" if note else set_note
        write_pretrained(ckpt, folder, card)  # the config first: measure() reads it
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
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE", help="keys that act at evaluation only")
    args = p.parse_args(argv)
    from slotlab.zoo import ZooEntryError

    for name in args.names:
        try:
            print(remeasure(name, args.note, args.set))
        except ZooEntryError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

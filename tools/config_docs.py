"""Write the generated key table of docs/configs.md from the config schema of every registered task.

python tools/config_docs.py           # rewrite the table between its markers in docs/configs.md
python tools/config_docs.py --check   # exit 1 when docs/configs.md is out of date (tests/test_config_schema.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slotlab.config import task_schemas
from slotlab.config_schema import markdown, splice

DOC = Path(__file__).resolve().parents[1] / "docs" / "configs.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/configs.md is up to date")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = splice(text, markdown(task_schemas()))
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python tools/config_docs.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

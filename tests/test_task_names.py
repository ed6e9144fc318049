"""No task is named outside ``slotlab/tasks/``: the CLI, the reporting layer, the inference layer, the training
stack, the config layer and the data layer reach a task only through the registry (:mod:`slotlab.tasks`) and its
:class:`~slotlab.tasks.base.Task` / :class:`~slotlab.tasks.presenter.Presenter`, so that a task is one module.

The check is the literal one of issue 26 (``grep -rn "object_discovery\\|set_prediction" slotlab --include=*.py |
grep -v "^slotlab/tasks/"``), run in Python over the source text (comments and docstrings included), with an
explicit allow-list of the lines that may name a task and why.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "slotlab"
TASK_NAMES = re.compile(r"object_discovery|set_prediction")

# (file relative to the repository, the stripped line) -> why it may name a task. At most 5 (issue 26's bar).
ALLOWED: dict[tuple[str, str], str] = {}


def source_lines() -> list[tuple[str, int, str]]:
    """(file, line number, line) of every line of slotlab/**/*.py outside slotlab/tasks/."""
    lines = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if not rel.startswith("slotlab/tasks/"):
            lines += [(rel, number, line) for number, line in enumerate(path.read_text().splitlines(), start=1)]
    return lines


def task_name_lines() -> list[tuple[str, int, str]]:
    """The lines of :func:`source_lines` that name a task (issue 26's grep)."""
    return [(f, n, line) for f, n, line in source_lines() if TASK_NAMES.search(line)]


def test_no_task_is_named_outside_slotlab_tasks():
    hits = task_name_lines()
    unexpected = [f"{f}:{n}:{line}" for f, n, line in hits if (f, line.strip()) not in ALLOWED]
    assert not unexpected, (
        "a task is named outside slotlab/tasks/ (ask the task: slotlab.tasks.get_task(cfg['task']), its Task / "
        "Presenter hooks, task_name(cfg) for the default task):\n" + "\n".join(unexpected)
    )
    assert len(ALLOWED) <= 5


def test_the_allow_list_holds_only_lines_that_exist():
    present = {(f, line.strip()) for f, _, line in task_name_lines()}
    stale = [key for key in ALLOWED if key not in present]
    assert not stale, f"allowed lines that are gone (remove them from ALLOWED): {stale}"


def test_no_branch_on_any_registered_tasks_name():
    """Every registered task (the video task too, whose name is also a common word): no line outside
    ``slotlab/tasks/`` compares a task with its name as a string literal (``cfg["task"] == "video"``)."""
    from slotlab.tasks import task_names

    names = "|".join(re.escape(n) for n in task_names())
    literal = re.compile(rf"[\"']({names})[\"']")
    hits = [
        f"{f}:{n}:{line}"
        for f, n, line in source_lines()
        if literal.search(line) and "task" in line.lower() and (f, line.strip()) not in ALLOWED
    ]
    assert not hits, "a task is named by a string literal outside slotlab/tasks/:\n" + "\n".join(hits)


def test_the_check_sees_a_task_name():
    """The pattern and the walk themselves: a check that matches nothing would pass everything."""
    assert TASK_NAMES.search('if cfg["task"] == "set_prediction":')
    assert TASK_NAMES.search("from slotlab.tasks.object_discovery import build_model")
    assert not TASK_NAMES.search("object discovery and set prediction, in words")
    naming = [p for p in PACKAGE.rglob("*.py") if TASK_NAMES.search(p.read_text())]
    assert any(p.is_relative_to(PACKAGE / "tasks") for p in naming)  # the tasks name themselves

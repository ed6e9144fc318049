"""The tasks slotlab trains, evaluates, draws and reports, by the name a config's ``task:`` gives them: the one
registry of tasks.

Adding a task means adding one module (or folder) here with a :class:`~slotlab.tasks.base.Task` subclass (its
config schema, model, data, loss, metrics, evaluation; its :class:`~slotlab.tasks.presenter.Presenter` for text and
pictures) and registering an instance with :func:`register` (the built-in ones below; a task defined elsewhere, e.g.
in a test or a user's script, registers itself the same way); ``slotlab train / eval / figures / report`` then
serve it. Nothing outside ``slotlab/tasks/`` names a task (``tests/test_task_names.py``).
"""

from __future__ import annotations

from typing import Any

from slotlab.errors import ConfigError
from slotlab.tasks.base import Task
from slotlab.tasks.object_discovery import ObjectDiscovery
from slotlab.tasks.set_prediction import SetPrediction
from slotlab.tasks.video import Video

TASKS: dict[str, Task] = {}


def register(task: Task, replace: bool = False) -> Task:
    """Make ``task`` known under ``task.name`` (a config's ``task:``); returns it. A name already taken by another
    task raises ValueError unless ``replace``."""
    old = TASKS.get(task.name)
    if old is not None and old is not task and not replace:
        raise ValueError(f"task {task.name!r} is already registered ({type(old).__name__})")
    TASKS[task.name] = task
    return task


def unregister(name: str) -> None:
    """Forget the task called ``name`` (a no-op if unknown)."""
    TASKS.pop(name, None)


def task_names() -> tuple[str, ...]:
    """The names of the registered tasks, built-in ones first."""
    return tuple(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (a config's ``task``); ConfigError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; expected {' or '.join(TASKS)}")
    return TASKS[name]


DEFAULT_TASK = register(ObjectDiscovery()).name  # the task of a config that names none
register(SetPrediction())
register(Video())


def task_name(cfg: dict[str, Any] | None) -> str:
    """The task a (raw or validated) config names: its ``task``, :data:`DEFAULT_TASK` when it names none."""
    return cfg.get("task", DEFAULT_TASK) if isinstance(cfg, dict) else DEFAULT_TASK


__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "register", "task_name", "task_names", "unregister"]

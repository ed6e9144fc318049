"""The tasks slotlab trains, evaluates, draws and reports, by the name a config's ``task:`` gives them.

Adding a task means adding one module here with a :class:`~slotlab.tasks.base.Task` subclass and one line in
:data:`TASKS` (and its schema in :mod:`slotlab.defaults`); ``slotlab train / eval / figures / report`` then serve it.
"""

from __future__ import annotations

from slotlab.errors import ConfigError
from slotlab.tasks.base import Task
from slotlab.tasks.object_discovery import ObjectDiscovery
from slotlab.tasks.set_prediction import SetPrediction

TASKS: dict[str, Task] = {t.name: t for t in (ObjectDiscovery(), SetPrediction())}


def get_task(name: str) -> Task:
    """The task called ``name`` (a config's ``task``); ConfigError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; expected {' or '.join(TASKS)}")
    return TASKS[name]

"""What other apps hear of, or add to, a task's changes, so `tasks` never imports them.

`task_finished(task=...)` is sent inside the transaction that finished a task
registered through the API (not for backfills), for any app that listens.

`finish_writes`: what other apps write when such a task finishes, registered from
their AppConfig.ready() with `write_on_finish` (billing rates the task's usage).
Each is done in the transaction that finishes the task, as a receiver of
`task_finished` would be, and on PostgreSQL's common path as a part of the one
statement that finishes it (tasks.services._finish_at_once): no statement, no
transaction of its own. The metrics rollups do not listen: the finishing UPDATE
marks the task `rollup_pending` for the drain (tasks.rollups).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

if TYPE_CHECKING:
    from tasks.models import ExecutionTask

task_finished = Signal()

# The name the finishing statement gives the finished task's row (all its columns, as
# the UPDATE … RETURNING * left them) for the writes' queries to read.
FINISHED_ROW = "changed"


@dataclass(frozen=True)
class FinishWrite:
    """A write another app makes when a task finishes, done both ways alike:

    `run(task)`: for the finished task (any database, inside the transaction that
    finished it); `sql()`: the same write as one data-modifying query with no
    parameters, reading the finished task from FINISHED_ROW (0 or 1 rows), made a
    part of PostgreSQL's finishing statement (`WITH … , write AS (<sql>) …`). Both
    must be safe to repeat (a retry finishes nothing and writes nothing, but a write
    may meet its own earlier row: ON CONFLICT DO NOTHING)."""

    run: Callable[[ExecutionTask], Any]
    sql: Callable[[], str]


finish_writes: dict[str, FinishWrite] = {}


def write_on_finish(name: str, write: FinishWrite) -> None:
    """Register (or replace) the write called `name`; from an AppConfig.ready()."""
    finish_writes[name] = write

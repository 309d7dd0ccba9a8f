"""Signals other apps listen to, so `tasks` never imports them.

`task_finished(task=...)` is sent inside the transaction that finished a task
registered through the API (not for backfills); billing rates usage from it.
The metrics rollups do not listen: the finishing UPDATE marks the task
`rollup_pending` for the drain (tasks.rollups).
"""

from django.dispatch import Signal

task_finished = Signal()

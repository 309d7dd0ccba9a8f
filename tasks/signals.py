"""Signals other apps listen to, so `tasks` never imports them.

`task_finished(task=...)` is sent inside the transaction that finished a task
registered through the API (not for backfills); billing rates usage from it
and metrics update their rollups.
"""

from django.dispatch import Signal

task_finished = Signal()

"""Signal receivers: usage is rated the moment a task finishes, in its transaction."""

from billing.services import usage_record_for_task


def rate_finished_task(sender, task, **kwargs) -> None:
    usage_record_for_task(task=task)

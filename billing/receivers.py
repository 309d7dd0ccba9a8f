"""Signal receivers: usage is rated the moment a task finishes, in its transaction."""

from billing.services import usage_rate


def rate_finished_task(sender, task, **kwargs) -> None:
    # One statement (billing.services.usage_rate): the finish path does not need the record back.
    usage_rate(task=task)

"""RQ jobs of the tasks app. Each is safe to run twice."""

from tasks import services


def fail_abandoned_tasks() -> int:
    return services.fail_abandoned_tasks()

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    # Finishing a task marks it for the metrics rollups (tasks.rollups.drain_pending),
    # in the UPDATE that finishes it: no receiver of task_finished here.

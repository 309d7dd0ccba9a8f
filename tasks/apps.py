from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self) -> None:
        from tasks import rollups
        from tasks.signals import task_finished

        # Metrics rollups count a task in the transaction that finished it.
        task_finished.connect(rollups.fold_finished_task, dispatch_uid="tasks.rollups.fold_finished_task")

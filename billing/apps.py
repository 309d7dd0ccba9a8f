from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import receivers
        from tasks.signals import task_finished

        task_finished.connect(receivers.rate_finished_task, dispatch_uid="billing.rate_finished_task")

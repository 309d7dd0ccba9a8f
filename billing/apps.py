from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import receivers
        from tasks.signals import write_on_finish

        write_on_finish("billing.usage", receivers.RATE_FINISHED_TASK)

"""System checks: settings that would make production unsafe."""

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def check_stripe_webhook_secret(app_configs, **kwargs):
    if settings.STRIPE_API_KEY and not settings.STRIPE_WEBHOOK_SECRET:
        return [
            Warning(
                "STRIPE_API_KEY is set but STRIPE_WEBHOOK_SECRET is not: webhooks will be refused.",
                id="fsar.W001",
            )
        ]
    return []

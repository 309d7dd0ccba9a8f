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


# A bearer token a scraper stores in a file: long enough that guessing it is out of reach.
METRICS_TOKEN_MIN_LENGTH = 32


@register(deploy=True)
def check_metrics_token(app_configs, **kwargs):
    token = settings.METRICS_TOKEN
    if token and len(token) < METRICS_TOKEN_MIN_LENGTH:
        return [
            Warning(
                f"METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters: anyone who guesses it "
                'reads /metrics. Use e.g. python -c "import secrets; print(secrets.token_urlsafe(32))".',
                id="fsar.W002",
            )
        ]
    return []

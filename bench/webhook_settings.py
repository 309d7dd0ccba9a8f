"""Settings for `python -m bench webhooks`: the project's, plus the baseline endpoint."""

from fsar.settings import *  # noqa: F403

ROOT_URLCONF = "bench.webhook_urls"

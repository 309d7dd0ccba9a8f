"""RQ jobs of assurance. Each takes plain values, reloads rows, and is safe to run twice."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from assurance import services
from core.roles import OPERATORS

logger = logging.getLogger(__name__)


def mail_operators(subject: str, body: str) -> int:
    recipients = list(
        get_user_model()
        .objects.filter(groups__name=OPERATORS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not recipients:
        return 0
    return send_mail(subject=subject, message=body, from_email=None, recipient_list=recipients)


def release_held(ai_model: str) -> int:
    return services.release_held(ai_model)


def audits_sweep() -> dict:
    """Periodic: built-in suites that are due, and demotions of overdue versions."""
    return services.sweep()

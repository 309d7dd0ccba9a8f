"""A person's notification preferences (the mails themselves: reviews.notifications)."""

from __future__ import annotations

from django.db import transaction


@transaction.atomic
def notification_preference_set(*, user, case_opened: bool, sla_reminders: bool):
    """Turn the non-essential mails on or off for one person."""
    from reviews.models import NotificationPreference

    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, defaults={"case_opened": case_opened, "sla_reminders": sla_reminders}
    )
    return preference

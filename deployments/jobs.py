"""RQ jobs for deployments. Each takes plain values, reloads rows, and is safe to run twice."""

from __future__ import annotations

import django_rq

from deployments import services


def enqueue(func, *args):
    return django_rq.get_queue("default").enqueue(func, *args)


def redecide_unregistered(ai_model: str) -> int:
    """After a version is registered: tasks held because it was not, decided again."""
    return services.redecide_unregistered(ai_model=ai_model)


def redecide_all_unregistered() -> int:
    """Periodic safety net: the same for every version registered since its tasks were held."""
    return services.redecide_all_unregistered()


def rollouts_tick() -> int:
    """Periodic (every minute): due step analyses of progressing rollouts, then
    due and running rollback drills."""
    from deployments import analysis, drills

    ran = analysis.analyze_rollouts()
    drills.drills_due()
    return ran


def mail_drill_failed(drill_id: int) -> int:
    """A failed rollback drill, mailed to every operator."""
    from django.conf import settings
    from django.core.mail import EmailMessage, get_connection

    from deployments.models import RollbackDrill
    from reviews.notifications import operator_emails

    drill = RollbackDrill.objects.select_related("target").filter(pk=drill_id).first()
    if drill is None:
        return 0
    recipients = operator_emails()
    subject = f"[FSAR] Rollback drill failed: {drill.target.ai_model} ({drill.family})"
    body = (
        f"The rollback drill {drill.pk} of {drill.target.ai_model} (family {drill.family}) failed "
        f"at {drill.finished_at:%Y-%m-%d %H:%M} UTC: {drill.reason}\n\n"
        f"Until a drill passes, no rollout of {drill.family} that rolls back to it can start.\n"
        f"Committee case: {drill.case_id}\n{settings.SITE_URL}/models/\n"
    )
    connection = get_connection()
    connection.send_messages([EmailMessage(subject, body, None, [to], connection=connection) for to in recipients])
    return len(recipients)

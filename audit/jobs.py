"""RQ jobs of the audit chain."""

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from audit.chain import verify_chain
from core.roles import OPERATORS

logger = logging.getLogger(__name__)


def verify_audit_chain_job() -> bool:
    """Verify the whole chain (daily); on a break, mail every operator with an address."""
    report = verify_chain()
    if report.ok:
        logger.info("audit chain OK: %d entries, head %s", report.entries, report.head)
        return True
    logger.error("AUDIT CHAIN BROKEN: %s", report.problem)
    recipients = list(
        get_user_model()
        .objects.filter(groups__name=OPERATORS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if recipients:
        send_mail(
            subject="[FSAR] The audit chain failed verification",
            message=(
                f"The daily verification of the audit chain failed after {report.entries} good entries:\n\n"
                f"{report.problem}\n\nSomeone changed audit records outside FSAR. Run "
                "`manage.py verify_audit_chain --expect-head <the last head you wrote down>` and investigate."
            ),
            from_email=None,
            recipient_list=recipients,
        )
    return False

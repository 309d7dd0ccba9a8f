"""RQ jobs of the audit chain."""

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from audit.anchor import append_anchor
from audit.chain import ChainReport, verify_chain
from core.roles import OPERATORS

logger = logging.getLogger(__name__)


def _operator_addresses() -> list[str]:
    return list(
        get_user_model()
        .objects.filter(groups__name=OPERATORS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def _segments_text(report: ChainReport) -> str:
    return "\n".join(f"  {segment}" for segment in report.segments) or "  (no entries)"


def verify_audit_chain_job() -> bool:
    """Verify the whole chain (daily) and anchor its head outside the database:
    mail it to every operator with an address and append it to the anchor file
    (AUDIT_ANCHOR_FILE), so a later rewrite of the database cannot hide. On a
    break, mail the operators that instead, and anchor nothing."""
    report = verify_chain()
    recipients = _operator_addresses()
    if not report.ok:
        logger.error("AUDIT CHAIN BROKEN: %s", report.problem)
        if recipients:
            send_mail(
                subject="[FSAR] The audit chain failed verification",
                message=(
                    f"The daily verification of the audit chain failed after {report.entries} good entries:\n\n"
                    f"{report.problem}\n\nSegments verified before the break:\n{_segments_text(report)}\n\n"
                    "Someone changed audit records outside FSAR. Run `manage.py verify_audit_chain --expect-head "
                    "<the last head you wrote down>` and investigate."
                ),
                from_email=None,
                recipient_list=recipients,
            )
        return False
    now = timezone.now()
    last = report.segments[-1] if report.segments else None
    seq, key_id = (last.last_seq, last.key_id) if last else (0, "")
    path = append_anchor(seq=seq, hash=report.head, key_id=key_id, at=now)
    logger.info("audit chain OK: %d entries, head #%d %s (anchored in %s)", report.entries, seq, report.head, path)
    if recipients:
        warning = (
            "\nWARNING: the chain is keyed with the published DEVELOPMENT key (AUDIT_CHAIN_KEY is not set): "
            "anyone with the database can recompute it.\n"
            if report.development_key
            else ""
        )
        send_mail(
            subject=f"[FSAR] Audit chain head #{seq} for {now:%Y-%m-%d}",
            message=(
                f"The audit chain verified: {report.entries} entries.\n\n"
                f"Head: #{seq} {report.head}\nKey: {key_id or 'none'}\n\n"
                f"Segments:\n{_segments_text(report)}\n{warning}\n"
                "Keep this mail: it is a record of the chain outside FSAR's database. To prove later that "
                f"nothing up to this entry was changed: `manage.py verify_audit_chain --expect-head {report.head}`."
            ),
            from_email=None,
            recipient_list=recipients,
        )
    return True

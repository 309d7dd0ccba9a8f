"""Committee members' two-factor devices (django-otp TOTP): enrolment, its
confirmation by a first code, checking a code, and an operator's removal of a lost
device. Two-factor guards the committee's decisions, so a device confirmed or
removed is on the audit chain (`two_factor.enrolled`, `two_factor.removed`);
django-otp's devices have no history table of their own, and the chain is their
record. Logging the session in (`django_otp.login`) stays with the view."""

from __future__ import annotations

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from reviews.services.common import _chain
from reviews.services.errors import NotAllowed

DEVICE_NAME = "Authenticator app"


@transaction.atomic
def totp_enrol_start(*, user) -> TOTPDevice:
    """An unconfirmed device for `user` (the one already pending, if any), whose secret
    the enrolment page shows. Refused when the user has a confirmed device."""
    if TOTPDevice.objects.devices_for_user(user, confirmed=True).exists():
        raise NotAllowed("two-factor is already on for this account")
    pending = TOTPDevice.objects.devices_for_user(user, confirmed=False).select_for_update().first()
    return pending or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


@transaction.atomic
def totp_enrol_confirm(*, user, token: str) -> TOTPDevice | None:
    """Confirm the user's pending device with a first code from the app; None when
    there is none pending or the code does not match (django-otp counts the failure
    for its throttle)."""
    pending = TOTPDevice.objects.devices_for_user(user, confirmed=False).select_for_update().first()
    if pending is None or not pending.verify_token((token or "").strip()):
        return None
    pending.confirmed = True
    pending.save(update_fields=["confirmed"])
    _chain("two_factor.enrolled", subject=f"user:{user.pk}", by=user, device=pending.pk, name=pending.name)
    return pending


def totp_verify(*, user, token: str) -> TOTPDevice | None:
    """The user's confirmed device that accepts `token` (django-otp records its use,
    so a code is accepted once), or None."""
    token = (token or "").strip()
    for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
        if device.verify_token(token):
            return device
    return None


@transaction.atomic
def totp_device_remove(*, device_id: int, by, reason: str) -> None:
    """Remove a member's device (a lost phone): they enrol again before their next
    decision if two-factor is required. Needs a reason; on the chain."""
    reason = (reason or "").strip()
    if not reason:
        raise NotAllowed("removing a two-factor device needs a reason", field="reason")
    device = TOTPDevice.objects.select_for_update().select_related("user").get(pk=device_id)
    _chain(
        "two_factor.removed",
        subject=f"user:{device.user_id}",
        by=by,
        member=device.user.get_username(),
        device=device.pk,
        confirmed=device.confirmed,
        reason=reason,
    )
    device.delete()

"""Signal receivers. At login, the time is noted in the session (a decision needs a
recent one: reviews.views.recent_login_and_two_factor_required). When the ethics
committee changes (a member added, removed or deactivated), recheck which cases
can still reach their quorum, once the change commits (a job: the whole queue is read)."""

from __future__ import annotations

import time

from core.jobs import enqueue_on_commit
from core.roles import COMMITTEE


def _recheck_on_commit() -> None:
    enqueue_on_commit("reviews.jobs.recheck_short_of_members")


def committee_membership_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """m2m_changed on User.groups, from either side."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    from django.contrib.auth.models import Group

    if reverse:  # group.user_set changed
        involved = instance.name == COMMITTEE
    else:  # user.groups changed; a clear does not say which groups it removed
        involved = pk_set is None or Group.objects.filter(pk__in=pk_set, name=COMMITTEE).exists()
    if involved:
        _recheck_on_commit()


def committee_member_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    """A committee member's account saved: it may have been deactivated or reactivated."""
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    if instance.groups.filter(name=COMMITTEE).exists():
        _recheck_on_commit()


# The session key holding when the person last logged in (seconds since the epoch).
LOGIN_AT = "fsar_login_at"


def note_login_time(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver: decisive actions need a login this recent."""
    if request is not None and hasattr(request, "session"):
        request.session[LOGIN_AT] = int(time.time())

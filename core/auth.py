"""The authentication backend: Django's ModelBackend, whose session user comes with its
roles read in the same statement (settings.AUTHENTICATION_BACKENDS)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.db.models import F

from core.roles import remember_roles
from core.sql import select_once


class RolesBackend(ModelBackend):
    """ModelBackend whose `get_user` (the session's user, read once a request) reads the
    user's group names in the same statement, a LEFT JOIN giving one row per group, so
    that `core.roles.user_roles` asks nothing more: a logged-in page makes one statement
    fewer (session, user, groups: now session, user with its groups). The statement is the
    ORM's, built once per process: building it cost several times running it.

    A login it refuses stops there (PermissionDenied): Django's ModelBackend, listed after
    it only so that sessions logged in before it keep their user, would otherwise check
    the same password again (its hasher costs what a login costs). The async paths are
    ModelBackend's (roles then read by `user_roles`, as before)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            raise PermissionDenied
        return user

    def get_user(self, user_id):
        users = get_user_model()._default_manager
        connection = connections[users.db]
        # The ORM's statement, built once (core.sql.select_once), run with this user's id.
        sql = select_once(
            "core.auth.user_with_groups", connection, lambda: users.filter(pk=0).annotate(fsar_group=F("groups__name"))
        )
        pk = users.model._meta.pk
        rows = list(users.raw(sql, [pk.get_db_prep_value(pk.to_python(user_id), connection)]))
        if not rows or not self.user_can_authenticate(rows[0]):
            return None
        user = rows[0]
        remember_roles(user, [row.fsar_group for row in rows if row.fsar_group is not None])
        return user

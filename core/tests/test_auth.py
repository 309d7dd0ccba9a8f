"""core.auth.RolesBackend: a page reads the session's user with its role groups in one
statement; logins, refusals and sessions from before it behave as with Django's ModelBackend."""

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.auth import RolesBackend
from core.roles import ALL_ROLES, COMMITTEE, OPERATORS, user_roles
from core.sql import select_once
from fsar.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db
HELD = "/tasks/held/"


def test_a_page_reads_the_user_and_its_roles_in_one_statement(client, operator):
    client.force_login(operator)
    client.get(HELD)  # the session's first read
    with CaptureQueriesContext(connection) as queries:
        assert client.get(HELD).status_code == 200
    statements = [q["sql"] for q in queries]
    # The session, the user with its groups, the held list: no statement of its own for the roles.
    assert len(statements) == 3, statements
    (user_read,) = [sql for sql in statements if '"auth_user"' in sql]
    assert '"auth_group"' in user_read
    assert sum('"auth_group"' in sql for sql in statements) == 1


@pytest.mark.parametrize(
    "groups,superuser,roles",
    [
        ((), False, frozenset()),
        ((OPERATORS,), False, frozenset({OPERATORS})),
        ((OPERATORS, COMMITTEE), False, frozenset({OPERATORS, COMMITTEE})),
        ((), True, frozenset(ALL_ROLES)),
    ],
    ids=["no-role", "operator", "two-roles", "superuser"],
)
def test_the_session_user_comes_with_exactly_its_roles(django_user_model, django_assert_num_queries, groups,
                                                      superuser, roles):  # fmt: skip
    user = make_user(django_user_model, "dora", is_superuser=superuser)
    user.groups.add(*Group.objects.filter(name__in=groups))
    Group.objects.create(name="Someone else's group")
    with django_assert_num_queries(1):
        loaded = RolesBackend().get_user(str(user.pk))
    with django_assert_num_queries(0):
        assert loaded == user and user_roles(loaded) == roles


def test_an_inactive_or_deleted_user_is_no_session_user(django_user_model, operator):
    operator.is_active = False
    operator.save()
    assert RolesBackend().get_user(operator.pk) is None
    assert RolesBackend().get_user(999_999) is None


def test_a_session_logged_in_before_the_backend_keeps_its_user(client, operator, settings):
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get(HELD).status_code == 200
    settings.AUTHENTICATION_BACKENDS = ["core.auth.RolesBackend"]  # without the legacy entry: logged out
    assert client.get(HELD).status_code == 302


def test_a_login_is_recorded_with_the_roles_backend(client, operator):
    response = client.post(reverse("login"), {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session[BACKEND_SESSION_KEY] == "core.auth.RolesBackend"
    assert client.get(HELD).status_code == 200


@pytest.mark.parametrize("username", ["olivia", "no-such-user"])
def test_a_refused_login_hashes_the_password_once(client, operator, monkeypatch, username):
    """Django's ModelBackend, listed second, would check the same password again."""
    user_model = get_user_model()
    hashed = []
    check, set_password = user_model.check_password, user_model.set_password
    monkeypatch.setattr(user_model, "check_password", lambda self, raw: hashed.append(raw) or check(self, raw))
    monkeypatch.setattr(user_model, "set_password", lambda self, raw: hashed.append(raw) or set_password(self, raw))
    response = client.post(reverse("login"), {"username": username, "password": "nope"})
    assert response.status_code == 200 and b"did not match" in response.content
    assert hashed == ["nope"]


def test_a_statement_built_once_takes_exactly_one_parameter():
    with pytest.raises(ValueError, match="2 parameters"):
        select_once("two", connection, lambda: get_user_model().objects.filter(pk=1, username="x"))

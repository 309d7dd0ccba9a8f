"""The three roles and the helpers every view uses to ask "who may see this".

Roles are Django groups created by the data migration `fsar.0001_roles`.
Superusers count as every role.
"""

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse

COMMITTEE = "Ethics committee"
OPERATORS = "Operators"
CUSTOMERS = "Customers"
ALL_ROLES = (COMMITTEE, OPERATORS, CUSTOMERS)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The role names a user holds, cached on the user object for the request (read with
    the user itself when core.auth.RolesBackend loaded it)."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_fsar_roles", None)
    if cached is None:
        remember_roles(user, () if user.is_superuser else user.groups.values_list("name", flat=True))
        cached = user._fsar_roles
    return cached


def remember_roles(user: AbstractBaseUser, group_names: Iterable[str]) -> None:
    """Tell `user_roles` this user object's roles, from its group names read along with
    it (core.auth reads them in the same statement as the session's user)."""
    user._fsar_roles = frozenset(ALL_ROLES) if user.is_superuser else frozenset(group_names)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """Only users holding one of `roles` see the view; everyone else gets a 404,
    so a page's existence is not disclosed to roles that may not use it."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not has_role(request.user, *roles):
                raise Http404("No such page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator

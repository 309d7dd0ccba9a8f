from django.http import HttpRequest

from core.roles import COMMITTEE, CUSTOMERS, OPERATORS, user_roles


def roles(request: HttpRequest) -> dict:
    """Role flags for navigation: `is_operator`, `is_committee`, `is_customer`."""
    user = getattr(request, "user", None)
    held = user_roles(user) if user is not None else frozenset()
    return {
        "is_operator": OPERATORS in held,
        "is_committee": COMMITTEE in held,
        "is_customer": CUSTOMERS in held,
    }

"""The permission matrix: every page × every role → the answer it must get.

Add a row for every page a person uses: its URL name or path and who may see it,
written with the helpers below. `anon` is a visitor who is not logged in
(redirected to the login page, except on public pages); roles without access
get 404 so a page's existence is not disclosed (the admin answers with its own
login redirect). Each page × role pair is its own test.
"""

import pytest
from django.urls import reverse

ROLES = ("anon", "nobody", "operator", "committee", "customer", "superuser")


def everyone(status: int) -> dict[str, int]:
    """Every role, anonymous visitors included, gets `status`."""
    return dict.fromkeys(ROLES, status)


def only(*roles: str, status: int = 200, anon: int = 302) -> dict[str, int]:
    """`roles` and the superuser get `status`; anonymous visitors `anon` (the login
    redirect); every other role 404 (the default for a role not in the dict)."""
    allowed = dict.fromkeys((*roles, "superuser"), status) if roles else {}
    return {"anon": anon, **allowed}


# Every logged-in role sees the page.
SIGNED_IN = only("nobody", "operator", "committee", "customer")
# An object that does not exist: the login redirect, then 404 for everyone.
NOT_FOUND = only()
# An admin page operators may use: everyone else gets the admin's own login redirect.
ADMIN = {**everyone(302), "operator": 200, "superuser": 200}

# (URL name or path, {role: expected status}); roles not listed expect 404.
PAGES = [
    ("home", SIGNED_IN),
    ("login", everyone(200)),
    ("healthz", everyone(200)),
    # A scraper's bearer token opens /metrics, never a role or a login (fsar/tests/test_prometheus.py).
    ("metrics", everyone(404)),
    ("favicon", everyone(301)),
    ("reviews:format", SIGNED_IN),
    ("billing:usage", only("customer")),
    ("billing:usage_csv", only("customer")),
    ("billing:invoices", only("customer")),
    ("/billing/invoices/999999/", NOT_FOUND),
    ("billing:runs", only("operator")),
    ("/billing/runs/999999/", NOT_FOUND),
    ("billing:stripe_webhook", everyone(405)),
    ("billing:roi", only("operator")),
    ("/admin/billing/stripeevent/", ADMIN),
    ("/admin/billing/customer/", ADMIN),
    ("/admin/billing/serviceoffering/", ADMIN),
    ("/admin/billing/invoice/", ADMIN),
    ("/admin/billing/invoicerun/", ADMIN),
    ("/admin/billing/usagerecord/", ADMIN),
    ("tasks:metrics", only("operator")),
    ("tasks:held", only("operator")),
    # The API's index is public; its schema needs an API key (tested apart) or a staff login;
    # the interactive docs are a page for operators and the committee.
    ("/api/v1/", everyone(200)),
    ("/api/v1/openapi.json", only("operator", "committee", anon=401)),
    ("/api/v1/docs", only("operator", "committee")),
    ("audit:chain", only("operator")),
    ("/admin/billing/customer/add/", ADMIN),
    ("/admin/billing/serviceoffering/add/", ADMIN),
    ("/admin/", ADMIN),
    ("/admin/tasks/executiontask/", ADMIN),
    ("/admin/tasks/apikey/", ADMIN),
    ("reviews:upload", only("operator")),
    ("reviews:queue", only("operator", "committee")),
    ("reviews:two_factor", only("committee")),
    ("reviews:two_factor_verify", only("committee")),
    # Committee actions are POST only (405 to a GET); everyone else gets 404.
    ("/reviews/cases/999999/vote/", only("committee", status=405)),
    ("/reviews/cases/999999/recuse/", only("committee", status=405)),
    ("/reviews/cases/999999/revoke/", only("committee", status=405)),
    ("/reviews/cases/999999/comment/", only("committee", status=405)),
    ("/reviews/cases/999999/claim/", only("committee", status=405)),
    ("/reviews/cases/999999/release/", only("committee", status=405)),
    ("/reviews/cases/999999/escalate/", only("committee", status=405)),
    ("/admin/reviews/vote/", ADMIN),
    ("reviews:gate", only("operator", "committee")),
    ("/reviews/cases/999999/", NOT_FOUND),
    ("/reviews/cases/999999/export.json", NOT_FOUND),
    ("/reviews/cases/999999/export.csv", NOT_FOUND),
    ("reviews:export", only("operator")),
    ("reviews:notifications", only("operator", "committee")),
    ("deployments:models", only("operator", "committee")),
    ("/models/versions/999999/", NOT_FOUND),
    ("/models/versions/999999/retire/", only("operator", status=405)),
    ("/admin/deployments/modelversion/", ADMIN),
    ("/admin/deployments/modelrule/", ADMIN),
    ("/admin/reviews/policychange/", ADMIN),
    ("/admin/reviews/policyrule/", ADMIN),
    ("/admin/reviews/callbackdelivery/", ADMIN),
    # The review settings are one row: the list redirects to it; operators may change it.
    ("/admin/reviews/reviewsettings/", everyone(302)),
    ("/admin/reviews/reviewsettings/1/change/", ADMIN),
    ("/admin/reviews/reviewsettings/1/history/", ADMIN),
    # Indicators: who sees which series and alert is in indicators/tests/test_views_pages.py.
    ("indicators:overview", only("operator", "committee")),
    ("/indicators/series/999999/", NOT_FOUND),
    ("/indicators/alerts/999999/", NOT_FOUND),
    ("/indicators/alerts/999999/acknowledge/", only("operator", "committee", status=405)),
]

# The user each role logs in as (a conftest fixture); anon logs in as nobody.
ROLE_FIXTURES = {
    "nobody": "nobody",
    "operator": "operator",
    "committee": "alice",
    "customer": "customer_user",
    "superuser": "superuser",
}


def resolve(target: str) -> str:
    return target if target.startswith("/") else reverse(target)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target,expected", PAGES, ids=[target for target, _ in PAGES])
def test_every_page_answers_each_role_as_the_matrix_says(client, request, target, expected, role):
    url = resolve(target)
    if role != "anon":
        client.force_login(request.getfixturevalue(ROLE_FIXTURES[role]))
    response = client.get(url)
    want = expected.get(role, 404)
    assert response.status_code == want, f"{role} on {url}: got {response.status_code}, want {want}"
    if want == 302 and role == "anon" and not url.startswith("/admin/"):
        assert response["Location"].startswith(reverse("login"))


def test_the_helpers_spell_the_matrix_as_it_was_written():
    """The shorthands mean what the rows used to spell out."""
    assert ADMIN == {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200}
    assert only("operator", "committee", anon=401) == {"anon": 401, "operator": 200, "committee": 200, "superuser": 200}
    assert only("committee", status=405) == {"anon": 302, "committee": 405, "superuser": 405}
    assert NOT_FOUND == {"anon": 302}

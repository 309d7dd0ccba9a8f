"""The permission matrix: every page × every role → the answer it must get.

Add a row for every page a person uses. `anon` is a visitor who is not logged in
(redirected to the login page, except on public pages); roles without access
get 404 so a page's existence is not disclosed (the admin answers with its own
login redirect).
"""

import pytest
from django.urls import reverse

ROLES = ("anon", "nobody", "operator", "committee", "customer", "superuser")

# (url name or path, {role: expected status}); roles not listed expect 404.
PAGES = [
    ("home", {"anon": 302, "nobody": 200, "operator": 200, "committee": 200, "customer": 200, "superuser": 200}),
    ("login", {r: 200 for r in ROLES}),
    ("healthz", {r: 200 for r in ROLES}),
    ("favicon", {r: 301 for r in ROLES}),
    (
        "reviews:format",
        {"anon": 302, "nobody": 200, "operator": 200, "committee": 200, "customer": 200, "superuser": 200},
    ),
    ("billing:usage", {"anon": 302, "customer": 200, "superuser": 200}),
    ("billing:usage_csv", {"anon": 302, "customer": 200, "superuser": 200}),
    ("billing:invoices", {"anon": 302, "customer": 200, "superuser": 200}),
    ("/billing/invoices/999999/", {"anon": 302}),
    ("billing:runs", {"anon": 302, "operator": 200, "superuser": 200}),
    ("/billing/runs/999999/", {"anon": 302}),
    ("billing:stripe_webhook", {r: 405 for r in ROLES}),
    ("billing:roi", {"anon": 302, "operator": 200, "superuser": 200}),
    (
        "/admin/billing/stripeevent/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/customer/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/serviceoffering/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/invoice/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/invoicerun/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/usagerecord/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    ("tasks:metrics", {"anon": 302, "operator": 200, "superuser": 200}),
    ("tasks:held", {"anon": 302, "operator": 200, "superuser": 200}),
    # The API's index is public; its schema needs an API key (tested apart) or a staff login;
    # the interactive docs are a page for operators and the committee.
    ("/api/v1/", {r: 200 for r in ROLES}),
    ("/api/v1/openapi.json", {"anon": 401, "operator": 200, "committee": 200, "superuser": 200}),
    ("/api/v1/docs", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("audit:chain", {"anon": 302, "operator": 200, "superuser": 200}),
    (
        "/admin/billing/customer/add/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/billing/serviceoffering/add/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    ("/admin/", {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200}),
    (
        "/admin/tasks/executiontask/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/tasks/apikey/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    ("reviews:upload", {"anon": 302, "operator": 200, "superuser": 200}),
    ("reviews:queue", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("reviews:two_factor", {"anon": 302, "committee": 200, "superuser": 200}),
    ("reviews:two_factor_verify", {"anon": 302, "committee": 200, "superuser": 200}),
    # Committee actions are POST only (405 to a GET); everyone else gets 404.
    ("/reviews/cases/999999/vote/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/recuse/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/revoke/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/comment/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/claim/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/release/", {"anon": 302, "committee": 405, "superuser": 405}),
    ("/reviews/cases/999999/escalate/", {"anon": 302, "committee": 405, "superuser": 405}),
    (
        "/admin/reviews/vote/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    ("reviews:gate", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("/reviews/cases/999999/", {"anon": 302}),
    ("/reviews/cases/999999/export.json", {"anon": 302}),
    ("/reviews/cases/999999/export.csv", {"anon": 302}),
    ("reviews:export", {"anon": 302, "operator": 200, "superuser": 200}),
    ("reviews:notifications", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("deployments:models", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("/models/versions/999999/", {"anon": 302}),
    ("/models/versions/999999/retire/", {"anon": 302, "operator": 405, "superuser": 405}),
    (
        "/admin/deployments/modelversion/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/deployments/modelrule/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/reviews/policychange/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/reviews/policyrule/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/reviews/callbackdelivery/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    # The review settings are one row: the list redirects to it; operators may change it.
    (
        "/admin/reviews/reviewsettings/",
        {"anon": 302, "nobody": 302, "operator": 302, "committee": 302, "customer": 302, "superuser": 302},
    ),
    (
        "/admin/reviews/reviewsettings/1/change/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/reviews/reviewsettings/1/history/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
]


@pytest.fixture
def user_for(operator, alice, customer_user, nobody, superuser):
    return {
        "anon": None,
        "nobody": nobody,
        "operator": operator,
        "committee": alice,
        "customer": customer_user,
        "superuser": superuser,
    }


def resolve(page: str) -> str:
    return page if page.startswith("/") else reverse(page)


@pytest.mark.django_db
@pytest.mark.parametrize("page,expected", PAGES, ids=[p for p, _ in PAGES])
def test_every_page_answers_each_role_as_the_matrix_says(client, user_for, page, expected):
    url = resolve(page)
    for role in ROLES:
        client.logout()
        if user_for[role] is not None:
            client.force_login(user_for[role])
        response = client.get(url)
        want = expected.get(role, 404)
        assert response.status_code == want, f"{role} on {url}: got {response.status_code}, want {want}"
        if want == 302 and role == "anon" and not url.startswith("/admin/"):
            assert response["Location"].startswith(reverse("login"))

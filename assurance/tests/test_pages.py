"""Audit pages: the permission rows of assurance's pages and endpoints, the grid,
the run page (evidence download, garak's probes, promptfoo's failures) and the
dashboard's failed and overdue audits."""

import pytest

from assurance.models import AuditRun
from assurance.tests.support import make_suite, post_run, sample
from fsar.tests.test_permissions import ROLES, resolve

pytestmark = pytest.mark.django_db

# (url name or path, {role: expected status}); roles not listed expect 404.
PAGES = [
    ("assurance:grid", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
    ("/audits/runs/999999/", {"anon": 302}),
    ("/audits/runs/999999/evidence/", {"anon": 302}),
    ("assurance:upload", {"anon": 302, "operator": 405, "superuser": 405}),
    (
        "/admin/assurance/auditsuite/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/assurance/auditsuite/add/",
        {"anon": 302, "nobody": 302, "operator": 200, "committee": 302, "customer": 302, "superuser": 200},
    ),
    (
        "/admin/assurance/auditrun/",
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


# The parameter is `target`, not `page`: that name is Playwright's fixture, and would make this a browser test.
@pytest.mark.parametrize("target,expected", PAGES, ids=[p for p, _ in PAGES])
def test_every_audit_page_answers_each_role_as_the_matrix_says(client, user_for, target, expected):
    url = resolve(target)
    for role in ROLES:
        client.logout()
        if user_for[role] is not None:
            client.force_login(user_for[role])
        response = client.get(url)
        want = expected.get(role, 404)
        assert response.status_code == want, f"{role} on {url}: got {response.status_code}, want {want}"


def test_the_run_pages_answer_by_role(client, ai, version, garak_suite, user_for):
    run_id = post_run(
        ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
    ).json()["id"]
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    for role in ROLES:
        client.logout()
        if user_for[role] is not None:
            client.force_login(user_for[role])
        for url in (f"/audits/runs/{run_id}/", f"/audits/runs/{run_id}/evidence/"):
            want = {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}.get(role, 404)
            assert client.get(url).status_code == want, (role, url)


@pytest.mark.parametrize(
    ("path", "scopes", "want"),
    [
        ("/api/v1/audits/status?ai_model=coder-2026-11", ("read",), 200),
        ("/api/v1/audits/status?ai_model=coder-2026-11", ("audits",), 200),
        ("/api/v1/audits/status?ai_model=coder-2026-11", ("tasks",), 403),
    ],
)
def test_api_scopes(client, make_api_key, version, path, scopes, want):
    _, secret = make_api_key(scopes=scopes)
    assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == want
    assert client.get(path).status_code == 401


def test_the_run_page_shows_garak_probes_and_the_evidence_downloads(client, ai, version, garak_suite, operator):
    run_id = post_run(
        ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
    ).json()["id"]
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.force_login(operator)
    page = client.get(f"/audits/runs/{run_id}/").content.decode()
    assert 'data-testid="garak-probes"' in page and "promptinject.HijackHateHumans" in page
    assert AuditRun.objects.get(pk=run_id).evidence_sha256 in page
    evidence = client.get(f"/audits/runs/{run_id}/evidence/")
    assert evidence["Content-Disposition"].startswith("attachment;")
    assert b"".join(evidence.streaming_content if evidence.streaming else [evidence.content]) == sample(
        "garak_new.report.jsonl"
    )


def test_the_run_page_lists_promptfoo_failures(client, ai, version, promptfoo_suite, operator):
    run_id = post_run(
        ai, suite="promptfoo-redteam", ai_model=version.ai_model, fmt="promptfoo", report=sample("promptfoo_fail.json")
    ).json()["id"]
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.force_login(operator)
    page = client.get(f"/audits/runs/{run_id}/").content.decode()
    assert 'data-testid="promptfoo-failures"' in page
    assert "The output disclosed a customer&#x27;s address" in page


def test_the_dashboard_shows_failed_and_overdue_audits(client, ai, version, operator):
    make_suite("pf", source="promptfoo", criteria=[{"metric": "pass_rate", "comparison": ">=", "threshold": 0.99}])
    make_suite("never-run", schedule="0 3 * * *")
    post_run(ai, suite="pf", ai_model=version.ai_model, fmt="promptfoo", report=sample("promptfoo_fail.json"))
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.force_login(operator)
    page = client.get("/").content.decode()
    assert page.count('data-testid="audit-problem"') == 2
    assert "never-run" in page and "overdue" in page and "pf" in page

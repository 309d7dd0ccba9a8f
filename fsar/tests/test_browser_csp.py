"""In Chromium: every main page, as each role, loads under the
Content-Security-Policy with no violation (no inline script or style, nothing
from another origin), and a hostile report's remote images are never requested."""

import io
import json
import warnings
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from billing.models import Invoice, InvoiceRun
from deployments.models import ModelVersion
from fsar.management.commands.seed_demo import DEMO_PASSWORD
from reviews.models import Case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TRACKER = "https://tracker.example/pixel.png"
HOSTILE_REPORT = "\n".join(
    [
        "# FSAR Proposal Report",
        "- id: fsar_csp-remote-image",
        "- timestamp: 2026-02-01T10:00:00Z",
        "- severity: 35",
        "- block_execution: false",
        "- proposal:",
        "",
        f'implement_idea: see ![the plan]({TRACKER}?md) and <img src="{TRACKER}?html"> for details',
        "",
        "## Risks",
        f"- ![risk]({TRACKER}?risk) <script>alert(1)</script>",
        "",
        "## Mitigations",
        '- <a href="javascript:alert(1)" style="color:red">click</a> ![inline](data:image/png;base64,iVBORw0KGgo=)',
        "",
    ]
)
# Listens from before any page script runs; the page's CSP does not apply to scripts Playwright adds.
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile || ''}:${e.lineNumber || ''}`));
"""


def pages_for(role: str, *, case_id: int, invoice_id: int, run_id: int, version: ModelVersion) -> list[str]:
    from assurance.models import AuditRun

    audit_run = AuditRun.objects.filter(format="promptfoo").values_list("pk", flat=True).first()
    models = ["/models/", f"/models/versions/{version.pk}/", f"/reviews/cases/{version.case_id}/", "/audits/",
              f"/audits/runs/{audit_run}/", "/indicators/"]  # fmt: skip
    committee = ["/", "/reviews/", f"/reviews/cases/{case_id}/", "/reviews/gate/", "/reviews/2fa/",
                 "/reviews/notifications/", *models]  # fmt: skip
    return {
        "operator": [
            "/", "/tasks/metrics/", "/reviews/", f"/reviews/cases/{case_id}/", "/reviews/upload/", "/reviews/gate/",
            "/reviews/export/", "/billing/runs/", f"/billing/runs/{run_id}/", "/billing/roi/", "/audit/",
            "/admin/", "/admin/tasks/apikey/", "/admin/tasks/apikey/add/", "/admin/reviews/policyrule/",
            "/admin/tasks/executiontask/", "/api/v1/docs", "/no-such-page/", *models,
            "/admin/deployments/modelrule/", "/admin/deployments/modelversion/",
        ],
        "alice": committee,
        "customer": ["/", "/billing/", "/billing/invoices/", f"/billing/invoices/{invoice_id}/"],
        "anonymous": ["/login/", "/login/?next=/reviews/"],
    }[role]  # fmt: skip


def settled(page: Page, url: str, in_flight: set[str], name: str):
    """Goes to the page and waits until the network is idle. Twice in CI (2026-12-01, four
    test processes and their browsers on two cores) the operator's task list was still
    loading after 30 s, once only, and never here under the same load: a page that does
    not settle is loaded once more, with a warning naming what was still in flight, and
    fails the test if it does not settle again."""
    reply = page.goto(url)
    try:
        page.wait_for_load_state("networkidle")
        return reply
    except PlaywrightTimeoutError:
        warnings.warn(f"{name}: still loading after 30 s, loaded again: {sorted(in_flight)}", stacklevel=1)
    in_flight.clear()
    reply = page.goto(url)
    try:
        page.wait_for_load_state("networkidle")
    except PlaywrightTimeoutError as exc:
        raise AssertionError(f"{name}: still loading after 30 s, twice: {sorted(in_flight)}") from exc
    return reply


@pytest.fixture
def demo_key() -> str:
    """The demo data (`make run`'s), small; returns the AI side's API key."""
    out = io.StringIO()
    call_command("seed_demo", tasks=300, stdout=out)
    return out.getvalue().rsplit("Authorization: Bearer ", 1)[1].strip()


def test_every_main_page_loads_with_no_csp_violation_and_no_remote_request(page: Page, live_server, demo_key, client):
    response = client.post(
        "/api/v1/proposals",
        data=HOSTILE_REPORT.encode(),
        content_type="text/markdown",
        HTTP_AUTHORIZATION=f"Bearer {demo_key}",
    )
    assert response.status_code in (200, 201), response.content
    case_id = Case.objects.filter(reports__report_id="fsar_csp-remote-image").get().pk
    invoice_id = Invoice.objects.filter(customer__users__username="customer").first().pk
    run_id = InvoiceRun.objects.order_by("pk").first().pk if InvoiceRun.objects.exists() else 0

    origin = urlsplit(live_server.url).netloc
    elsewhere, console = [], []
    page.context.add_init_script(LISTEN)
    page.on("request", lambda r: urlsplit(r.url).netloc not in (origin, "") and elsewhere.append(r.url))
    page.on("console", lambda m: "Content Security Policy" in m.text and console.append(m.text))
    in_flight: set[str] = set()  # named when a page does not settle
    page.on("request", lambda r: in_flight.add(r.url))
    page.on("requestfinished", lambda r: in_flight.discard(r.url))
    page.on("requestfailed", lambda r: in_flight.discard(r.url))

    problems = {}
    for role in ("anonymous", "operator", "alice", "customer"):
        page.context.clear_cookies()
        if role != "anonymous":
            page.goto(f"{live_server.url}/login/")
            page.fill("#id_username", role)
            page.fill("#id_password", DEMO_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
        pending = ModelVersion.objects.get(ai_model="gpt-5.2-preview")
        for path in pages_for(role, case_id=case_id, invoice_id=invoice_id, run_id=run_id, version=pending):
            if not run_id and "/runs/0/" in path:
                continue
            console.clear()
            reply = settled(page, f"{live_server.url}{path}", in_flight, f"{role} {path}")
            assert reply is not None and "Content-Security-Policy" in {k.title() for k in reply.headers}, path
            violations = page.evaluate("window.__csp") + console
            if violations:
                problems[f"{role} {path}"] = violations
    assert problems == {}, json.dumps(problems, indent=1)
    assert elsewhere == []

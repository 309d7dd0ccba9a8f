"""In Chromium: an operator acknowledges an alert from the dashboard; a committee
member neither sees per-reviewer series listed nor opens one by its address (the
chair does); /indicators/ and an alert page draw their charts under the
Content-Security-Policy with no console error; the pages fit a phone."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in
from indicators.tests.pages_support import drift_alert, make_series, reviewer_alert

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Listens from before any page script runs (as fsar/tests/test_browser_csp.py).
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));
"""


def test_an_operator_acknowledges_an_alert_from_the_dashboard(page: Page, live_server, operator):
    alert = drift_alert(make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 1010, 1250, 1300]))
    log_in(page, live_server, "olivia")
    section = page.get_by_test_id("indicator-alerts")
    row = section.locator(f'[data-alert="{alert.pk}"]')
    expect(row).to_have_attribute("data-state", "firing")
    form = row.get_by_test_id("dashboard-ack")
    form.get_by_role("button", name="Acknowledge").click()  # no reason: the browser refuses (required)
    expect(row).to_have_attribute("data-state", "firing")
    form.get_by_label(f"Reason for acknowledging alert {alert.pk}").fill("Rolling back coder-1; on it.")
    form.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".messages")).to_contain_text(f"Alert {alert.pk} acknowledged")
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
    row = page.get_by_test_id("indicator-alerts").locator(f'[data-alert="{alert.pk}"]')
    expect(row).to_have_attribute("data-state", "acknowledged")
    expect(row).to_contain_text("by olivia")
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by == operator
    row.get_by_role("link").click()
    history = page.get_by_test_id("alert-history")
    expect(history).to_contain_text("by olivia: Rolling back coder-1; on it.")


def test_a_committee_member_cannot_open_per_reviewer_series(page: Page, live_server, operator, alice, bob, charlie):
    from reviews import services as review_services

    review_services.review_settings_set(by=operator, chair=alice, reason="Alice chairs from this quarter.")
    watched = make_series("reviewer.approval_rate", member=charlie, values=[0.7, 1.0, 1.0])
    model = make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 990])
    alert = reviewer_alert(charlie)

    log_in(page, live_server, "bob")
    page.get_by_role("link", name="Indicators", exact=True).click()
    expect(page.locator(f'[data-testid="series-row"][data-key="{model.key}"]')).to_have_count(1)
    expect(page.locator('[data-scope="reviewer"]')).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text(alert.title)
    reply = page.goto(f"{live_server.url}/indicators/series/{watched.pk}/")
    assert reply.status == 404
    reply = page.goto(f"{live_server.url}/indicators/alerts/{alert.pk}/")
    assert reply.status == 404

    # charlie, the member the alert is about, neither.
    log_in(page, live_server, "charlie")
    assert page.goto(f"{live_server.url}/indicators/series/{watched.pk}/").status == 404
    assert page.goto(f"{live_server.url}/indicators/alerts/{alert.pk}/").status == 404

    # The chair does.
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/indicators/")
    row = page.locator('[data-testid="series-row"][data-scope="reviewer"]')
    expect(row).to_have_count(1)
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Approval rate · charlie")


def test_the_indicators_page_draws_sparklines_under_the_csp(page: Page, live_server, operator):
    model = make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 1010, 990, 1250, 1300])
    make_series("committee.approval_rate", ref=(0.6, 0.05), values=[0.6, 0.62, 0.58, 0.61])
    make_series("committee.expired", values=[])  # no points yet: says so, draws nothing
    alert = drift_alert(model, change_days_ago=2)
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.context.add_init_script(LISTEN)

    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/indicators/")
    page.wait_for_load_state("networkidle")
    sparks = page.get_by_test_id("sparkline")
    expect(sparks).to_have_count(3)
    drawn = page.locator('[data-testid="sparkline"].drawn canvas')
    expect(drawn).to_have_count(2)
    expect(page.locator('[data-testid="sparkline"].empty')).to_have_text("no points yet")
    # The model series' chart has the value, the band's two edges, the mean and the firing threshold.
    spark = page.locator(f'[data-indicator-chart="spark-{model.pk}"]')
    assert spark.evaluate("el => el.uplot.series.length") == 6
    assert spark.evaluate("el => el.uplot.data[5][0]") == pytest.approx(1000 + 1.75 * 40)
    expect(page.get_by_test_id("open-alerts").locator(f'[data-alert="{alert.pk}"]')).to_be_visible()

    page.goto(f"{live_server.url}/indicators/alerts/{alert.pk}/")
    page.wait_for_load_state("networkidle")
    chart = page.locator('[data-indicator-chart="alert-chart-0"]')
    expect(chart.locator("canvas")).to_have_count(1)
    assert chart.evaluate("el => el.uplot.data[0].length") == 5
    expect(page.get_by_test_id("change-point")).to_be_visible()
    assert page.evaluate("window.__csp") == []
    assert errors == []


def test_the_indicator_pages_fit_a_phone(browser, live_server, operator):
    model = make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 1010, 990, 1250, 1300])
    alert = drift_alert(model)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, live_server, "olivia")
    too_wide = {}
    for path in ("/", "/indicators/", f"/indicators/series/{model.pk}/", f"/indicators/alerts/{alert.pk}/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            too_wide[path] = width
    assert too_wide == {}
    context.close()

"""In Chromium: an operator starts a rollout from /models/, sees the analysis
chart, promotes a step, rolls back, and sees the route change."""

import pytest
from playwright.sync_api import Page, expect

from conftest import log_in
from deployments import analysis, routing
from deployments.models import Rollout
from deployments.tests.conftest import finished_tasks, passed_drill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_starts_a_rollout_promotes_a_step_rolls_back_and_sees_the_route_change(
    page: Page, live_server, family_pair, operator
):
    stable, candidate = family_pair
    finished_tasks("coder-stable", 30, failed=1, prefix="warmup")  # the family runs on coder-stable
    passed_drill(stable)
    key = next(f"customer-{i}" for i in range(1000) if routing.bucket("coder", f"customer-{i}") < 2500)

    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/models/")
    split = page.locator('[data-testid="family-split"][data-family="coder"]')
    expect(split.get_by_test_id("split")).to_have_text("coder-stable 100%")
    expect(split.get_by_test_id("last-drill")).to_contain_text("pass")
    split.get_by_text("Start a rollout").click()
    form = split.get_by_test_id("rollout-new")
    form.get_by_label("Weights (%)").fill("25, 50, 100")
    form.get_by_label("Minimum minutes per step").fill("0")
    form.get_by_label("Minimum finished candidate tasks per step").fill("5")
    form.get_by_label("Why").fill("Ship the new coder to a quarter of the traffic.")
    form.get_by_role("button", name="Start the rollout").click()
    expect(page.get_by_test_id("rollout-weight")).to_have_text("25%")
    rollout = Rollout.objects.get()

    page.get_by_label("Route a key").fill(key)
    page.get_by_role("button", name="Route").click()
    expect(page.get_by_test_id("route-answer")).to_contain_text("coder-next (candidate, candidate at 25%)")

    # The periodic loop analyses the step: equal figures pass and move on to 50%.
    finished_tasks("coder-stable", 30, failed=1, prefix="s1")
    finished_tasks("coder-next", 30, failed=1, prefix="c1")
    assert analysis.analyze_rollouts() == 1
    page.reload()
    expect(page.get_by_test_id("rollout-weight")).to_have_text("50%")
    expect(page.get_by_test_id("analyses")).to_contain_text("pass")
    chart = page.get_by_test_id("chart-rate")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".u-axis")).to_have_count(2)
    assert chart.evaluate("el => el.uplot.axes.map(a => a.label)") == [
        "end of the analysis window (UTC)",
        "failure rate",
    ]
    assert chart.evaluate("el => el.uplot.axes[1].values(el.uplot, [0, 0.05])") == ["0.0%", "5.0%"]
    expect(chart).to_contain_text("threshold")  # the legend: candidate, stable and the threshold line
    limit = chart.evaluate("el => el.uplot.data[3][0]")
    assert limit == pytest.approx(max(1 / 30 * 1.5, 1 / 30 + 0.02), abs=1e-6)
    p95 = page.get_by_test_id("chart-p95")
    assert p95.evaluate("el => el.uplot.axes[1].label") == "p95 duration"

    page.get_by_label("Why").fill("Fifty percent looked healthy for an hour.")
    page.get_by_role("button", name="Promote to the next step").click()
    expect(page.get_by_test_id("rollout-weight")).to_have_text("100%")
    expect(page.get_by_test_id("route-answer")).to_have_count(0)

    page.get_by_label("Why").fill("Customers report odd answers from the candidate.")
    page.get_by_role("button", name="Roll back now").click()
    expect(page.get_by_test_id("rollout-state")).to_have_text("Rolled back")
    expect(page.get_by_test_id("rollout-weight")).to_have_text("0%")
    page.get_by_label("Route a key").fill(key)
    page.get_by_role("button", name="Route").click()
    expect(page.get_by_test_id("route-answer")).to_contain_text("coder-stable (stable, candidate at 0%)")
    expect(page.get_by_test_id("history")).to_contain_text("Customers report odd answers")

    page.goto(f"{live_server.url}/models/")
    expect(split.get_by_test_id("split")).to_have_text("coder-stable 100%")
    expect(split).to_contain_text(f"{rollout.pk} coder-next (rolled back)")

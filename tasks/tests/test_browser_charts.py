"""In Chromium: the metrics charts (uPlot) with axes, legends and hover read-outs;
sparklines on the dashboard; and the same numbers as tables without JavaScript."""

import random
import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in
from tasks.tests.test_metrics import random_tasks, store
from tasks.tests.test_metrics_page import _shift

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def history():
    store(*[_shift(t, datetime.now(UTC)) for t in random_tasks(random.Random(9), 400, days=10)])


def test_the_drill_down_draws_a_trend_per_model_with_axes_legend_and_hover_values(
    page: Page, live_server, operator, history
):
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/tasks/metrics/?window=7d&task_type=implement_idea")
    trend = page.get_by_test_id("model-trend")
    expect(trend.locator("canvas")).to_have_count(1)
    legend = trend.locator(".u-legend")
    for model in ("gpt-5.1", "claude-sonnet-5", "(no model recorded)"):
        expect(legend).to_contain_text(model)
    expect(trend.locator(".u-axis")).to_have_count(2)
    canvas = trend.locator(".chart-canvas")
    assert canvas.evaluate("el => el.uplot.axes.map(a => a.label)") == ["day (UTC)", "duration"]
    # The value axis reads in duration units, whatever they are for these numbers.
    ticks = canvas.evaluate("el => el.uplot.axes[1].values(el.uplot, [500, 1500, 90000, 7200000])")
    assert ticks == ["500 ms", "1.5 s", "1.5 min", "2 h"]
    expect(trend.locator("details.chart-data")).not_to_have_attribute("open", "")  # folded once drawn

    chart = page.get_by_test_id("chart-implement_idea")
    expect(chart.locator("canvas")).to_have_count(2)  # durations, and the failure rate
    rate = chart.locator(".chart-canvas.rate")
    assert rate.evaluate("el => el.uplot.axes[1].label") == "failed"
    assert rate.evaluate("el => el.uplot.axes[1].values(el.uplot, [0, 0.05])") == ["0.0%", "5.0%"]
    # Hovering the plot fills the legend with that day's values, in their units.
    over = chart.locator(".u-over").first
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.move(box["x"] + box["width"] * 0.5 + 2, box["y"] + box["height"] / 2)
    legend = chart.locator(".u-legend").first
    mean = legend.locator(".u-series").nth(1).locator(".u-value")
    expect(mean).not_to_have_text("—")
    expect(mean).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s)$|^\d+ min \d\d s$|^\d+ h \d\d min$"))
    expect(legend.locator(".u-series").first.locator(".u-value")).to_have_text(re.compile(r"^20\d\d-\d\d-\d\d$"))
    # The model rows link to their tasks.
    row_link = page.get_by_test_id("metrics-table").get_by_role("link", name="gpt-5.1")
    expect(row_link).to_have_attribute("href", "/admin/tasks/executiontask/?task_type__exact=implement_idea&q=gpt-5.1")


def test_the_dashboard_has_a_sparkline_per_task_type(page: Page, live_server, operator, history):
    log_in(page, live_server, "olivia")
    sparks = page.locator("[data-testid=task-performance] td.spark")
    expect(sparks.first.locator("canvas")).to_have_count(1)
    assert sparks.first.get_attribute("title").startswith("Hourly mean over the last 24 hours")


def test_without_javascript_the_charts_are_tables(browser, live_server, operator, history):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server, "olivia")
    expect(page.locator("[data-testid=task-performance] td.spark").first).to_contain_text(" to ")
    page.goto(f"{live_server.url}/tasks/metrics/?window=7d&task_type=implement_idea")
    expect(page.locator("canvas")).to_have_count(0)
    table = page.get_by_test_id("model-trend-table")
    expect(table).to_be_visible()
    expect(table.locator("thead")).to_contain_text("gpt-5.1")
    expect(table.locator("tbody tr")).to_have_count(8)
    expect(page.get_by_test_id("chart-table-implement_idea")).to_be_visible()
    context.close()

"""The operator's metrics page, the dashboard summary, and (in Chromium) that the
page shows the API's numbers for the same window."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from django.utils.formats import localize
from playwright.sync_api import Page, expect

from fsar.testing import PASSWORD
from tasks import charts
from tasks.formatting import duration, exact_ms
from tasks.metrics_display import WINDOW_CHOICES
from tasks.metrics_query import Window
from tasks.models import ExecutionTask, TaskMetricsRollup, TaskStatus
from tasks.tests.test_metrics import make_task, random_tasks, store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PAGE = "/tasks/metrics/"


def slow_and_fast_history() -> None:
    """self_improvement is the slowest type; llama got 50% slower this week."""
    this_week, last_week = NOW - timedelta(days=1), NOW - timedelta(days=8)
    store(
        make_task(finished_at=this_week, task_type="self_improvement", ai_model="claude-opus-5", duration_ms=9000),
        make_task(finished_at=this_week, ai_model="llama-4-70b", duration_ms=3000, status=TaskStatus.FAILED),
        make_task(finished_at=last_week, ai_model="llama-4-70b", duration_ms=2000),
        make_task(finished_at=this_week, ai_model="gpt-5.1", duration_ms=1000),
        make_task(finished_at=last_week, ai_model="gpt-5.1", duration_ms=1000),
    )


@pytest.mark.django_db
def test_the_operator_sees_each_type_with_the_slowest_and_the_biggest_regression(client, operator):
    slow_and_fast_history()
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        response = client.get(PAGE)
    assert response.status_code == 200
    groups = response.context["groups"]
    assert [(g["task_type"], g["count"], g["mean_ms"]) for g in groups] == [
        ("implement_idea", 2, 2000.0),
        ("self_improvement", 1, 9000.0),
    ]
    assert response.context["slowest_type"]["task_type"] == "self_improvement"
    assert response.context["slowest_model"]["ai_model"] == "claude-opus-5"
    regression = response.context["biggest_regression"]
    assert (regression["ai_model"], regression["mean_ms_change"]) == ("llama-4-70b", 0.5)
    html = response.content.decode()
    assert "+50.0%" in html
    # Each type's chart: its data for uPlot in a JSON block (no inline script), and the same numbers as a table.
    (chart,) = [c for c in response.context["charts"] if c["task_type"] == "implement_idea"]
    assert '<script id="trend-implement_idea" type="application/json">' in html
    assert [s["label"] for s in chart["series"]] == ["mean", "p95"] and chart["rate"]["label"] == "failure rate"
    assert len(chart["x"]) == len(chart["series"][0]["values"]) == len(chart["rows"]) == 8  # 7 days, by day
    assert all(isinstance(t, int) for t in chart["x"])
    assert 'data-testid="chart-table-implement_idea"' in html
    assert "<svg" not in html and " onclick=" not in html and "<script>" not in html


@pytest.mark.django_db
def test_drilling_down_from_a_type_shows_its_models(client, operator):
    slow_and_fast_history()
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        response = client.get(PAGE, {"task_type": "implement_idea", "window": "30d"})
    rows = [(g["ai_model"], g["count"], g["failure_rate"], g["regressed"]) for g in response.context["groups"]]
    assert rows == [("gpt-5.1", 2, 0.0, False), ("llama-4-70b", 2, 0.5, False)]  # 30 days: both weeks in one window
    assert list(response.context["charts"]) and response.context["charts"][0]["task_type"] == "implement_idea"
    # The per-model trend: one mean-duration series per model, and each model's row links to its tasks.
    trend = response.context["model_trend"]
    assert [s["label"] for s in trend["series"]] == ["gpt-5.1", "llama-4-70b"]
    assert all(s["unit"] == "ms" for s in trend["series"])
    html = response.content.decode()
    assert '<script id="trend-models-data" type="application/json">' in html
    assert "/admin/tasks/executiontask/?task_type__exact=implement_idea&amp;q=llama-4-70b" in html


@pytest.mark.django_db
def test_the_table_rows_built_in_python_escape_what_they_show_and_mark_the_slowest(client, operator):
    """The table's rows are HTML made in tasks/charts.py: a model name is escaped in its
    attribute, its sort key and its link; the slowest model and the regressed one are marked."""
    odd = "<b>\"x\"&'y'</b>"
    store(
        make_task(finished_at=NOW - timedelta(days=1), ai_model=odd, duration_ms=5000),
        make_task(finished_at=NOW - timedelta(days=8), ai_model=odd, duration_ms=1000),
        make_task(finished_at=NOW - timedelta(days=1), ai_model=None, duration_ms=900),
    )
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        html = client.get(PAGE, {"task_type": "implement_idea"}).content.decode()
    assert odd not in html
    escaped = "&lt;b&gt;&quot;x&quot;&amp;&#x27;y&#x27;&lt;/b&gt;"
    row = f'<tr data-task-type="implement_idea" data-ai-model="{escaped}"\n          class="regressed slowest">'
    assert row in html
    assert f'<th scope="row" data-sort="{escaped}">' in html
    assert "q=%3Cb%3E%22x%22%26%27y%27%3C/b%3E" in html
    assert '<td class="num bad" data-field="mean_ms_change" data-sort="4.0">+400.0%</td>' in html
    assert '<tr data-task-type="implement_idea" data-ai-model=""\n          class="">' in html
    assert '<th scope="row" data-sort="(no model recorded)">\n          (no model recorded)\n        </th>' in html


@pytest.mark.parametrize("language", ["en-us", "de", "fr"])
@pytest.mark.parametrize("grouping", [False, True])
def test_the_rows_sort_keys_are_what_localize_printed(settings, language, grouping):
    """table_rows formats its raw figures with the separators looked up once per table:
    the same text as `localize` per value, in any language, grouped or not."""
    settings.USE_THOUSAND_SEPARATOR = grouping
    values = [0, 7, -3, 1_234_567, 1234.5, 0.0523, -0.1234, 1e-05, -2.5e-07, 1e16, 123_456_789.1, 2.0]
    with translation.override(language):
        formatted = charts.number_format()
        assert [formatted(v) for v in values] == [localize(v) for v in values]


# The window's header and menu as the template printed them (tasks/charts.py builds them now).
_WINDOW_AS_TEMPLATED = Template(
    '{{ w.since.isoformat }}|{{ w.until.isoformat }}|{{ w.since|date:"Y-m-d H:i" }}|{{ w.until|date:"Y-m-d H:i" }}|'
    '{{ w.length.days|default:"1" }}{% if w.length.days %} day{{ w.length.days|pluralize }}{% else %} day{% endif %}'
)
_OPTIONS_AS_TEMPLATED = Template(
    '{% for key, label in choices %}<option value="{{ key }}"{% if key == choice %} selected{% endif %}>'
    "{{ label }}</option>{% endfor %}"
)


@pytest.mark.parametrize("length", [timedelta(hours=12), *[length for _, length in WINDOW_CHOICES.values()]])
def test_the_window_header_and_menu_read_as_the_template_wrote_them(length):
    until = datetime(2026, 11, 20, 12, 34, 56, 789012, tzinfo=UTC)
    window = Window(until - length, until)
    shown = charts.window_shown(window.since, window.until)
    expected = _WINDOW_AS_TEMPLATED.render(Context({"w": window}))
    assert "|".join(shown[k] for k in ("since_iso", "until_iso", "since", "until", "previous")) == expected
    choices = [(key, label) for key, (label, _) in WINDOW_CHOICES.items()]
    for choice in (*WINDOW_CHOICES, "none"):
        menu = _OPTIONS_AS_TEMPLATED.render(Context({"choices": choices, "choice": choice}))
        assert charts.window_options(WINDOW_CHOICES, choice) == menu


@pytest.mark.django_db
@pytest.mark.parametrize("params,field", [({"window": "1y"}, "window"), ({"task_type": "nap"}, "task_type")])
def test_a_bad_choice_answers_400_naming_it(client, operator, params, field):
    client.force_login(operator)
    response = client.get(PAGE, params)
    assert response.status_code == 400
    assert f"{field}:" in response.content.decode()


@pytest.mark.django_db
def test_the_page_makes_the_same_queries_for_ten_tasks_and_a_thousand(client, operator):
    rng = random.Random(2)
    client.force_login(operator)
    store(*random_tasks(rng, 10, days=8))
    with time_machine.travel(NOW, tick=False):
        client.get(PAGE)
        with CaptureQueriesContext(connection) as small:
            client.get(PAGE)
        store(*random_tasks(rng, 1000, days=8))
        with CaptureQueriesContext(connection) as large:
            client.get(PAGE)
    assert len(small) == len(large), [q["sql"] for q in large]


@pytest.mark.django_db
def test_the_dashboard_compares_each_types_last_24_hours_with_the_24_before(client, operator):
    store(
        make_task(finished_at=NOW - timedelta(hours=2), duration_ms=1200),
        make_task(finished_at=NOW - timedelta(hours=3), duration_ms=1400),
        make_task(finished_at=NOW - timedelta(hours=30), duration_ms=1000),
        make_task(finished_at=NOW - timedelta(hours=50), duration_ms=99_000),  # older than both windows
    )
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        response = client.get("/")
    (row,) = response.context["task_performance"]
    assert (row["task_type"], row["count"], row["mean_ms"], row["p95_ms"]) == ("implement_idea", 2, 1300.0, 1390.0)
    assert (row["previous_mean_ms"], row["previous_p95_ms"], row["mean_change"]) == (1000.0, 1000.0, 0.3)
    html = response.content.decode()
    assert 'data-testid="task-performance"' in html and "+30.0%" in html
    assert 'href="/tasks/metrics/"' in html
    # The sparkline's data: 24 hourly means, the two tasks' hours filled in; without JS, their range as text.
    spark = json.loads(row["hourly_json"])
    assert len(spark) in (24, 25) and sorted(v for _, v in spark if v is not None) == [1200.0, 1400.0]
    assert '<td class="spark" data-field="sparkline"' in html and "1.2 s to 1.4 s" in html


# --- In the browser ------------------------------------------------------------------------


def number(text: str) -> float | None:
    text = text.strip().replace(",", "")
    if text == "—":
        return None
    return float(text.rstrip("%"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_page_shows_the_apis_numbers_for_the_same_window(page: Page, live_server, operator, client, api_key):
    now = datetime.now(UTC)
    store(*[_shift(t, now) for t in random_tasks(random.Random(9), 600, days=20)])
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.goto(f"{live_server.url}/")
    page.get_by_test_id("metrics-link").click()
    page.select_option("#window", "30d")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("link", name="Implement idea").click()
    expect(page.get_by_role("heading", name="Task performance: Implement idea")).to_be_visible()

    window = page.get_by_test_id("metrics-window")
    since, until = window.get_attribute("data-since"), window.get_attribute("data-until")
    _, secret = api_key
    body = client.get(
        "/api/v1/metrics/tasks",
        {"since": since, "until": until, "group_by": "ai_model"},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    ).json()
    expected = [g for g in body["groups"] if g["task_type"] == "implement_idea"]
    rows = page.locator("[data-testid=metrics-table] tbody tr")
    expect(rows).to_have_count(len(expected))
    assert len(expected) == 3
    for group in expected:
        row = page.locator(f'[data-testid=metrics-table] tbody tr[data-ai-model="{group["ai_model"] or ""}"]')
        cells = {cell.get_attribute("data-field"): cell for cell in row.locator("td").all()}
        shown = {field: number(cell.inner_text()) for field, cell in cells.items() if not field.endswith("_ms")}
        assert shown["count"] == group["count"]
        for field in ("mean_ms", "p50_ms", "p95_ms", "max_ms"):
            # People read the duration in its unit; the exact figure sorts the column and is its tooltip.
            assert cells[field].inner_text().strip() == duration(group[field]), field
            assert float(cells[field].get_attribute("data-sort")) == group[field], field
            assert cells[field].get_attribute("title") == exact_ms(group[field]), field
        assert shown["failure_rate"] == round(group["failure_rate"] * 100, 2)
        if group["mean_ms_change"] is None:
            assert shown["mean_ms_change"] is None
        else:
            assert shown["mean_ms_change"] == round(group["mean_ms_change"] * 100, 1)

    # A first click sorts by p95 slowest first; a second, fastest first.
    by_p95 = sorted(expected, key=lambda g: g["p95_ms"])
    page.get_by_role("button", name="p95").click()
    expect(rows.first).to_have_attribute("data-ai-model", by_p95[-1]["ai_model"] or "")
    page.get_by_role("button", name="p95").click()
    expect(rows.first).to_have_attribute("data-ai-model", by_p95[0]["ai_model"] or "")


def _shift(task, now: datetime):
    """Move a task generated around NOW to the same place around the real now."""
    delta = now - NOW
    for name in ("created_at", "started_at", "finished_at"):
        if getattr(task, name) is not None:
            setattr(task, name, getattr(task, name) + delta)
    return task


@pytest.mark.django_db
def test_backfilled_tasks_stay_in_the_figures_and_are_marked_per_row(client, operator):
    live = [make_task(finished_at=NOW - timedelta(hours=h), ai_model="gpt-5.1") for h in (1, 2)]
    for task in live:
        task.source = "api"
    store(
        *live,
        make_task(finished_at=NOW - timedelta(hours=3), ai_model="gpt-5.1"),  # backfilled (make_task's default)
        make_task(finished_at=NOW - timedelta(hours=4), ai_model="llama-4-70b"),
        make_task(finished_at=NOW - timedelta(hours=5), task_type="self_improvement", ai_model=None),
        make_task(finished_at=NOW - timedelta(days=30), ai_model="gpt-5.1"),  # outside the window
    )
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        by_type = client.get(PAGE)
        by_model = client.get(PAGE, {"task_type": "implement_idea"})
    assert [(r["task_type"], r["count"], r["backfilled"]) for r in by_type.context["rows"]] == [
        ("implement_idea", 4, 2),
        ("self_improvement", 1, 1),
    ]
    assert [(r["ai_model"], r["count"], r["backfilled"]) for r in by_model.context["rows"]] == [
        ("gpt-5.1", 3, 1),
        ("llama-4-70b", 1, 1),
    ]
    html = by_type.content.decode()
    assert 'data-field="backfilled" data-sort="2"' in html
    assert "never in a gate decision" in html


@pytest.mark.django_db
def test_the_rollup_engine_marks_backfilled_tasks_as_the_raw_rows_do_in_whole_hours_edges_and_the_pending_queue(
    client, operator, settings
):
    now = NOW + timedelta(minutes=30)  # both edges of the 7-day window are partial hours
    live = make_task(finished_at=NOW - timedelta(hours=5), ai_model="gpt-5.1")
    live.source = "api"
    store(
        live,
        make_task(finished_at=NOW - timedelta(hours=3, minutes=10), ai_model="gpt-5.1"),  # whole hours: rollup rows
        make_task(finished_at=NOW - timedelta(hours=4, minutes=10), ai_model="llama-4-70b"),
        make_task(finished_at=NOW - timedelta(hours=30), ai_model="gpt-5.1"),
        make_task(finished_at=now - timedelta(minutes=5), ai_model="gpt-5.1"),  # the last, partial hour
        make_task(finished_at=now - timedelta(days=7, minutes=-5), task_type="self_improvement", ai_model=None),
    )
    pending = make_task(finished_at=NOW - timedelta(hours=2, minutes=5), ai_model="llama-4-70b")
    pending.rollup_pending = True  # finished, not drained yet: read from the raw rows
    ExecutionTask.objects.bulk_create([pending])
    client.force_login(operator)
    answers = {}
    for engine, limit in (("rollup", 0), ("exact", 10**9)):
        settings.METRICS_EXACT_MAX_TASKS = limit
        with time_machine.travel(now, tick=False):
            by_type = client.get(PAGE)
            by_model = client.get(PAGE, {"task_type": "implement_idea"})
        answers[engine] = (
            [(r["task_type"], r["count"], r["backfilled"]) for r in by_type.context["rows"]],
            [(r["ai_model"], r["count"], r["backfilled"]) for r in by_model.context["rows"]],
        )
    assert (
        answers["rollup"]
        == answers["exact"]
        == (
            [("implement_idea", 6, 5), ("self_improvement", 1, 1)],
            [("gpt-5.1", 4, 3), ("llama-4-70b", 2, 2)],
        )
    )
    assert TaskMetricsRollup.objects.filter(backfilled__gt=0).exists()  # the whole hours' marks came from rollups

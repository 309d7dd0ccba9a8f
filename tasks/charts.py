"""The metrics page's presentation (tasks/views.py): table rows formatted for people,
and each trend as chart data for static/fsar/charts.js (uPlot), with the same points
as a table for readers without JavaScript. The figures come from tasks.metrics_display."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from html import escape as _escape

from django.template.defaultfilters import urlencode
from django.urls import reverse
from django.utils import numberformat
from django.utils.formats import get_format
from django.utils.html import json_script
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from tasks.formatting import duration, exact_ms, percent

# The table rows below are HTML built here rather than in the template (a template
# variable costs ~50 times a format field; docs/metrics.md). Every value is escaped by
# `escape` (the standard library's: the same five entities as Django's, without its
# SafeString bookkeeping per value), and each block marked safe once, whole.


def escape(value: object) -> str:
    return _escape(value if isinstance(value, str) else str(value))


# The numbers under a chart, one table row a bucket.
_CHART_ROW = (
    '<tr><th scope="row"><time datetime="{}">{}</time></th><td class="num">{}</td>'
    '<td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>'
)


def window_shown(since: datetime, until: datetime) -> dict[str, str]:
    """The window as the page's header shows it: ISO 8601 for the attributes, to the minute
    in UTC for people, and the length of the previous window it is compared with, in days
    (what the template made of it with `isoformat`, `date:"Y-m-d H:i"`, `default:"1"` and
    `pluralize`, each a variable lookup or filter call costing more than the formatting)."""
    days = (until - since).days
    return {
        "since_iso": since.isoformat(),
        "until_iso": until.isoformat(),
        "since": f"{since.astimezone(UTC):%Y-%m-%d %H:%M}",
        "until": f"{until.astimezone(UTC):%Y-%m-%d %H:%M}",
        "previous": f"{days or 1} day{'s' if days > 1 else ''}",
    }


def window_options(choices: dict[str, tuple[str, timedelta]], selected: str) -> SafeString:
    """The window menu's <option>s, the chosen one selected."""
    return mark_safe(  # noqa: S308 - every value escaped
        "".join(
            f'<option value="{escape(key)}"{" selected" if key == selected else ""}>{escape(label)}</option>'
            for key, (label, _) in choices.items()
        )
    )


def with_backfilled(row: dict, counts: dict[tuple[str, str | None], int], *, by_model: bool) -> dict:
    """Mark how many of a row's finished tasks were backfilled: its model's on a
    type's page, every model's of its type on the per-type table."""
    if by_model:
        n = counts.get((row["task_type"], row["ai_model"]), 0)
    else:
        n = sum(count for (task_type, _), count in counts.items() if task_type == row["task_type"])
    return {**row, "backfilled": n, "backfilled_shown": f"{n:,}"}


def present(group: dict | None, labels: dict) -> dict | None:
    """A group with its figures formatted for people; raw values stay for sorting."""
    if group is None:
        return None
    return {
        **group,
        "label": labels.get(group["task_type"], group["task_type"]),
        "model_label": group["ai_model"] if group["ai_model"] is not None else "(no model recorded)",
        "shown": {
            "count": f"{group['count']:,}",
            **{f: duration(group[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms")},
            "exact": {f: exact_ms(group[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms")},
            "failure_rate": percent(group["failure_rate"]),
            "mean_ms_change": percent(group["mean_ms_change"], signed=True),
        },
    }


_TABLE_ROW = (
    '\n      <tr data-task-type="{task_type}" data-ai-model="{ai_model}"\n          class="{classes}">\n'
    '        <th scope="row" data-sort="{sort_label}">\n          {name}\n        </th>\n'
    '        <td class="num" data-field="count" data-sort="{count}">{shown_count}</td>\n'
    '        <td class="num" data-field="mean_ms" data-sort="{mean_ms}" title="{exact_mean_ms}">{shown_mean_ms}</td>\n'
    '        <td class="num" data-field="p50_ms" data-sort="{p50_ms}" title="{exact_p50_ms}">{shown_p50_ms}</td>\n'
    '        <td class="num" data-field="p95_ms" data-sort="{p95_ms}" title="{exact_p95_ms}">{shown_p95_ms}</td>\n'
    '        <td class="num" data-field="max_ms" data-sort="{max_ms}" title="{exact_max_ms}">{shown_max_ms}</td>\n'
    '        <td class="num" data-field="failure_rate" data-sort="{failure_rate}">{shown_failure_rate}</td>\n'
    '        <td class="num{change_class}" data-field="mean_ms_change" data-sort="{mean_ms_change}">'
    "{shown_mean_ms_change}</td>\n"
    '        <td class="num" data-field="backfilled" data-sort="{backfilled}">{backfilled_shown}</td>\n'
    "      </tr>\n    "
)


def number_format() -> Callable[[int | float], str]:
    """`django.utils.formats.localize` of an int or a float (as the template printed the
    table's raw figures), with the active language's separators and grouping looked up
    once rather than for every value: `localize` reads the language and three formats
    each time (~25 µs a value, 25 values a page)."""
    language = get_language()
    return partial(
        numberformat.format,
        decimal_sep=get_format("DECIMAL_SEPARATOR", language, use_l10n=True),
        grouping=get_format("NUMBER_GROUPING", language, use_l10n=True),
        thousand_sep=get_format("THOUSAND_SEPARATOR", language, use_l10n=True),
        use_l10n=True,
    )


def table_rows(
    rows: list[dict], *, task_type: str | None, task_type_label: str, window_choice: str, slowest: dict | None
) -> SafeString:
    """The metrics table's rows as HTML (each figure shown, its exact value as a tooltip,
    its raw value to sort on), built here rather than by the template's ~35 variables a
    row. Per type each row links to its models; per model, to the model's tasks."""
    tasks_url = reverse("admin:tasks_executiontask_changelist") if task_type else ""
    label = escape(task_type_label) if task_type else ""
    localize = number_format()

    def sort_key(value: int | float | None) -> str:
        """A raw figure as the template printed it for sorting (`|default_if_none:''`)."""
        return "" if value is None else localize(value)

    html = []
    for row in rows:
        if task_type is None:
            slowest_here = slowest is not None and slowest["task_type"] == row["task_type"]
            sort_label = escape(row["label"])
            name = (
                f'<a href="?window={escape(window_choice)}&amp;task_type={escape(row["task_type"])}">{sort_label}</a>'
            )
        else:
            slowest_here = slowest is not None and slowest["ai_model"] == row["ai_model"]
            sort_label = escape(row["model_label"])
            if row["ai_model"] is None:
                name = sort_label
            else:
                query = (
                    f"task_type__exact={escape(urlencode(row['task_type']))}&amp;q={escape(urlencode(row['ai_model']))}"
                )
                name = f'<a href="{escape(tasks_url)}?{query}" title="This model\'s {label} tasks">{sort_label}</a>'
        shown = row["shown"]
        exact = shown["exact"]
        html.append(
            _TABLE_ROW.format(
                task_type=escape(row["task_type"]),
                ai_model="" if row["ai_model"] is None else escape(row["ai_model"]),
                classes=("regressed" if row["regressed"] else "") + (" slowest" if slowest_here else ""),
                sort_label=sort_label,
                name=name,
                count=escape(localize(row["count"])),
                shown_count=escape(shown["count"]),
                **{f: escape(sort_key(row[f])) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms", "failure_rate")},
                **{f"exact_{f}": escape(exact[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms")},
                **{f"shown_{f}": escape(shown[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms", "failure_rate")},
                change_class=" bad" if row["regressed"] else "",
                mean_ms_change=escape(sort_key(row["mean_ms_change"])),
                shown_mean_ms_change=escape(shown["mean_ms_change"]),
                backfilled=escape(localize(row["backfilled"])),
                backfilled_shown=escape(row["backfilled_shown"]),
            )
        )
    return mark_safe("".join(html))  # noqa: S308 - every value escaped above


def chart(points: list[dict], bucket: str, *, title: str, chart_id: str) -> dict:
    """A task type's trend as chart data (static/fsar/charts.js draws it with uPlot):
    mean and p95 duration in ms, and failure rate, per bucket; None where a bucket
    has no finished task. The same points are the table shown without JavaScript:
    `rows`, and as HTML `table_rows`; `script` is the chart data's JSON block."""
    data = {
        "id": chart_id,
        "title": title,
        "bucket": bucket,
        "x": [int(p["start"].timestamp()) for p in points],
        "series": [
            {"label": "mean", "unit": "ms", "values": [p["mean_ms"] for p in points]},
            {"label": "p95", "unit": "ms", "values": [p["p95_ms"] for p in points]},
        ],
        "rate": {"label": "failure rate", "unit": "ratio", "values": [p["failure_rate"] for p in points]},
    }
    rows = [
        {
            "start": p["start"],
            "label": label_time(p["start"], bucket),
            "count": p["count"],
            "mean": duration(p["mean_ms"]),
            "p95": duration(p["p95_ms"]),
            "failure_rate": percent(p["failure_rate"]),
        }
        for p in points
    ]
    return {
        **data,
        "rows": rows,
        "script": json_script(data, chart_id),
        "table_rows": mark_safe(  # noqa: S308 - every value escaped
            "".join(
                _CHART_ROW.format(
                    escape(r["start"].isoformat()),
                    escape(r["label"]),
                    r["count"],
                    escape(r["mean"]),
                    escape(r["p95"]),
                    escape(r["failure_rate"]),
                )
                for r in rows
            )
        ),
    }


def model_trend(series: dict, bucket: str, *, title: str) -> dict | None:
    """The drill-down's per-model trend: one mean-duration series per model."""
    if not series:
        return None
    starts = [p["start"] for p in next(iter(series.values()))]
    names = {model: model if model is not None else "(no model recorded)" for model in series}
    data = {
        "id": "trend-models",
        "title": title,
        "bucket": bucket,
        "x": [int(start.timestamp()) for start in starts],
        "series": [
            {"label": names[model], "unit": "ms", "values": [p["mean_ms"] for p in points]}
            for model, points in series.items()
        ],
    }
    rows = [
        {
            "label": label_time(start, bucket),
            "values": [duration(points[i]["mean_ms"]) for points in series.values()],
        }
        for i, start in enumerate(starts)
    ]
    return {
        **data,
        "columns": [names[model] for model in series],
        "rows": rows,
        "script": json_script(data, "trend-models-data"),
        "table_rows": mark_safe(  # noqa: S308 - every value escaped
            "".join(
                f'<tr><th scope="row">{escape(row["label"])}</th>'
                + "".join(f'<td class="num">{escape(v)}</td>' for v in row["values"])
                + "</tr>"
                for row in rows
            )
        ),
    }


def label_time(moment: datetime, bucket: str) -> str:
    return moment.strftime("%b %d %H:00" if bucket == "hour" else "%b %d")

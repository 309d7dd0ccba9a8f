"""The collector /metrics builds for each scrape (docs/deployment.md lists every family).

Built per scrape, registered in a registry of its own, then dropped: nothing is
counted in a process, so every gunicorn worker gives the same answer for the same
database, and a restart loses nothing. Names follow Prometheus's conventions: the
`fsar_` prefix, base units (`_seconds`), gauges for states read from the
database (nothing here is a counter: each family is the state now or over a
stated window), and bounded labels only (never a task id, a member or free text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fsar.prometheus import readings
from indicators.models import OPEN_STATES, AlertKind
from reviews.models import case_kinds
from tasks.models import TaskType

# At most this many rule names per family: rules are named in the policy tables (which
# change only through the committee), but a label set must stay bounded whatever happens.
RULE_LABELS_MAX = 100
OTHER = "other"


class Omitted:
    """Series left out of the output because a label value was not allowed, per family."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, family: str, n: int = 1) -> None:
        self.counts[family] = self.counts.get(family, 0) + n


Provider = Callable[["Scrape"], Iterable[Metric]]


class Scrape:
    """What one scrape shares between the providers: the time, the allowed model names."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.models = readings.model_labels()
        self.allowed_models = frozenset(self.models)
        self.omitted = Omitted()

    def age(self, since: datetime | None) -> float:
        return max(0.0, (self.now - since).total_seconds()) if since is not None else 0.0


def bounded(pairs: Iterable[tuple[tuple[str, ...], float]], *, limit: int) -> list[tuple[tuple[str, ...], float]]:
    """Keep the `limit` label sets with the largest values; fold the rest into one set
    whose last label is OTHER (summed), so the output stays bounded and valid."""
    ordered = sorted(pairs, key=lambda p: (-p[1], p[0]))
    kept = dict(ordered[:limit])
    folded: dict[tuple[str, ...], float] = {}
    for labels, value in ordered[limit:]:
        key = (*labels[:-1], OTHER)
        folded[key] = folded.get(key, 0) + value
    for key, value in sorted(folded.items()):
        # A rule really named "other" among the kept ones takes the folded rest too:
        # one label set must never appear twice.
        kept[key] = kept.get(key, 0) + value
    return list(kept.items())


def gate_families(scrape: Scrape) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "fsar_gate_decisions_last_hour",
        "Gate decisions on the tasks registered in the last hour, by action (allow, hold, deny) "
        "and the rule that decided.",
        labels=["action", "rule"],
    )
    rows = readings.gate_decisions(scrape.now)
    for (action, rule), n in bounded((((a, r), n) for a, r, n in rows), limit=RULE_LABELS_MAX):
        family.add_metric([action, rule], n)
    yield family

    held = readings.held_tasks()
    family = GaugeMetricFamily(
        "fsar_tasks_held", "Tasks held for review now, by the rule that holds them.", labels=["rule"]
    )
    for (rule,), n in bounded((((r,), n) for r, n in held.by_rule), limit=RULE_LABELS_MAX):
        family.add_metric([rule], n)
    yield family
    yield GaugeMetricFamily(
        "fsar_tasks_held_oldest_age_seconds",
        "Time since the oldest held task was registered (0 when none is held).",
        value=scrape.age(held.oldest),
    )


def case_families(scrape: Scrape) -> Iterator[Metric]:
    cases = readings.open_cases(scrape.now)
    kinds = [value for value, _ in case_kinds()]
    kinds += [k for k in cases.by_age if k not in kinds]
    by_age = GaugeMetricFamily(
        "fsar_review_cases_open",
        "Cases in the committee's queue (open, changes requested, expired approval, advisory) "
        "by kind and age since opened: lt_1h, 1h_to_1d, 1d_to_7d, ge_7d.",
        labels=["kind", "age"],
    )
    overdue = GaugeMetricFamily(
        "fsar_review_cases_overdue", "Cases in the committee's queue past their due time, by kind.", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        "fsar_review_cases_oldest_open_age_seconds",
        "Time since the oldest case in the queue was opened, by kind (0 when none).",
        labels=["kind"],
    )
    for kind in kinds:
        counts = cases.by_age.get(kind, {})
        for label, _ in readings.CASE_AGE_BUCKETS:
            by_age.add_metric([kind, label], counts.get(label, 0))
        overdue.add_metric([kind], cases.overdue.get(kind, 0))
        oldest.add_metric([kind], scrape.age(cases.oldest.get(kind)))
    yield from (by_age, overdue, oldest)


def webhook_families(scrape: Scrape) -> Iterator[Metric]:
    stripe = readings.stripe_backlog()
    family = GaugeMetricFamily(
        "fsar_stripe_events_unapplied",
        "Stored Stripe webhook events not yet applied: pending, or failed and waiting for a replay.",
        labels=["status"],
    )
    for status, n in sorted(stripe.by_status.items()):
        family.add_metric([status], n)
    yield family
    yield GaugeMetricFamily(
        "fsar_stripe_events_oldest_unapplied_age_seconds",
        "Time since the oldest unapplied Stripe event arrived (0 when none): the webhook lag.",
        value=scrape.age(stripe.oldest),
    )
    callbacks = readings.callback_backlog()
    family = GaugeMetricFamily(
        "fsar_callback_deliveries_undelivered",
        "Signed callbacks to the AI side not delivered: pending (retrying) or failed (given up).",
        labels=["status"],
    )
    for status, n in sorted(callbacks.by_status.items()):
        family.add_metric([status], n)
    yield family
    yield GaugeMetricFamily(
        "fsar_callback_deliveries_oldest_pending_age_seconds",
        "Time since the oldest pending callback was recorded (0 when none): the callback lag.",
        value=scrape.age(callbacks.oldest),
    )


def audit_families(scrape: Scrape) -> Iterator[Metric]:
    verdicts = readings.audit_verdicts(scrape.models)
    verdict = GaugeMetricFamily(
        "fsar_audit_verdict",
        "1 for the latest verdict (pass, fail, inconclusive, error) of each enabled audit suite on each "
        "model version (the bounded set of fsar_metrics_model_labels).",
        labels=["model", "suite", "verdict"],
    )
    received = GaugeMetricFamily(
        "fsar_audit_verdict_timestamp_seconds",
        "When the run with the latest verdict arrived (Unix time), per model version and suite.",
        labels=["model", "suite"],
    )
    for v in verdicts:
        verdict.add_metric([v.model, v.suite, v.verdict], 1)
        received.add_metric([v.model, v.suite], v.received_at.timestamp())
    yield from (verdict, received)


# Label names an indicator series may carry into /metrics, and what they are called there.
INDICATOR_LABELS = {"task_type": "task_type", "ai_model": "model"}


def indicator_families(scrape: Scrape) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "fsar_indicator_value",
        "The latest point of each indicator series (the unit ends its name: _ms, _rate, _share, _s, ...), "
        "per task type and model, or committee-wide. Per-reviewer series are never exported.",
        labels=["series", "task_type", "model"],
    )
    task_types = frozenset(TaskType.values)
    latest = None
    for point in readings.indicator_values():
        labels = point.labels
        unknown = set(labels) - set(INDICATOR_LABELS)
        model, task_type = labels.get("ai_model", ""), labels.get("task_type", "")
        if unknown or (model and model not in scrape.allowed_models) or (task_type and task_type not in task_types):
            scrape.omitted.add("fsar_indicator_value")
            continue
        family.add_metric([point.series, task_type, model], point.value)
        latest = point.at if latest is None or point.at > latest else latest
    yield family
    yield GaugeMetricFamily(
        "fsar_indicator_latest_point_timestamp_seconds",
        "When the newest exported indicator point was computed (Unix time; 0 when none): alert when it stops moving.",
        value=latest.timestamp() if latest is not None else 0.0,
    )

    counts: dict[tuple[str, str, str], int] = {
        (kind, state, ""): 0 for kind in AlertKind.values for state in OPEN_STATES
    }
    for (kind, state, ai_model), n in readings.open_alert_counts().items():
        model = ai_model if not ai_model or ai_model in scrape.allowed_models else OTHER
        key = (kind, state, model)
        counts[key] = counts.get(key, 0) + n
    family = GaugeMetricFamily(
        "fsar_indicator_alerts_open",
        "Indicator alerts firing or acknowledged (not yet resolved), by kind, state and the model "
        "they are about (empty when none; `other` outside fsar_metrics_model_labels). Never the member.",
        labels=["kind", "state", "model"],
    )
    for (kind, state, model), n in sorted(counts.items()):
        family.add_metric([kind, state, model], n)
    yield family


PROVIDERS: tuple[Provider, ...] = (
    gate_families,
    case_families,
    webhook_families,
    audit_families,
    indicator_families,
)


class FsarCollector(Collector):
    """One scrape's families, read from the database when `collect` runs."""

    def __init__(self, *, now: datetime, providers: tuple[Provider, ...] = PROVIDERS) -> None:
        self.now = now
        self.providers = providers

    def collect(self) -> Iterator[Metric]:
        scrape = Scrape(self.now)
        for provider in self.providers:
            yield from provider(scrape)
        yield GaugeMetricFamily(
            "fsar_metrics_model_labels",
            "How many model versions may appear as `model` label values (not retired, approved first, "
            f"then newest; at most {readings.MODEL_LABELS_MAX}).",
            value=len(scrape.models),
        )
        omitted = GaugeMetricFamily(
            "fsar_metrics_omitted_series",
            "Series left out of this scrape because a label value was not allowed (a model outside "
            "fsar_metrics_model_labels, a task type FSAR does not know, an unknown label), by family.",
            labels=["family"],
        )
        for family, n in sorted(scrape.omitted.counts.items()):
            omitted.add_metric([family], n)
        yield omitted

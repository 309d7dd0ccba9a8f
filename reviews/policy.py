"""Policy rules as the gate evaluates them: immutable snapshots, cached per
process and reloaded when `GateState.rules_version` changes, and the matching
that records which values each rule compared."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from reviews.models import Action, MetricKind, PolicyRule
from tasks.models import TaskType


class BrokenRule(Exception):
    """A rule the gate cannot evaluate; the gate then fails closed."""


@dataclass(frozen=True)
class Subject:
    """What a rule looks at. None means the subject lacks it (and a condition on
    it does not hold). `metric` is called lazily: (kind, window) -> value or None;
    `alert_firing` too, only when a rule asks: () -> whether an indicator alert
    about the subject's model is firing (the gate composes it: fsar/gate.py)."""

    task_type: str | None = None
    ai_model: str | None = None
    customer: str | None = None
    severity: int | None = None
    block_execution: bool | None = None
    proposal: str | None = None
    metric: Callable[[str, int], float | None] | None = field(default=None, compare=False)
    alert_firing: Callable[[], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    priority: int
    task_types: tuple[str, ...]
    ai_model_glob: str
    severity_min: int | None
    severity_max: int | None
    block_execution: bool | None
    words: tuple[str, ...]
    customers: tuple[str, ...]
    metric: str
    metric_threshold: float | None
    metric_window: int | None
    model_alert_firing: bool
    action: str
    quorum: int
    sla_hours: int
    approval_valid_hours: int
    decide_by_majority: bool
    advisory_min_severity: int | None

    @classmethod
    def from_model(cls, rule: PolicyRule) -> Rule:
        snapshot = cls(
            id=rule.pk,
            name=rule.name,
            priority=rule.priority,
            task_types=tuple(rule.task_types or ()),
            ai_model_glob=rule.ai_model_glob,
            severity_min=rule.severity_min,
            severity_max=rule.severity_max,
            block_execution=rule.block_execution,
            words=tuple(w.strip().lower() for w in rule.proposal_words.split(",") if w.strip()),
            customers=tuple(rule.customers or ()),
            metric=rule.metric,
            metric_threshold=rule.metric_threshold,
            metric_window=rule.metric_window,
            model_alert_firing=bool(rule.model_alert_firing),
            action=rule.action,
            quorum=rule.quorum,
            sla_hours=rule.sla_hours,
            approval_valid_hours=rule.approval_valid_hours,
            decide_by_majority=rule.decide_by_majority,
            advisory_min_severity=rule.advisory_min_severity,
        )
        snapshot.check()
        return snapshot

    def check(self) -> None:
        """Raise BrokenRule when the rule cannot be evaluated as written."""
        problems = []
        if self.action not in Action.values:
            problems.append(f"unknown action {self.action!r}")
        if not isinstance(self.task_types, tuple) or any(t not in TaskType.values for t in self.task_types):
            problems.append(f"unknown task type in {list(self.task_types)!r}")
        if any(not isinstance(c, str) for c in self.customers):
            problems.append("customers must be strings")
        if self.metric:
            if self.metric not in MetricKind.values:
                problems.append(f"unknown metric {self.metric!r}")
            if self.metric_threshold is None or not self.metric_window:
                problems.append("a metric needs a threshold and a window of at least 1 task")
        if self.severity_min is not None and self.severity_max is not None and self.severity_min > self.severity_max:
            problems.append("severity_min is above severity_max")
        if self.action == Action.HOLD and self.quorum < 1:
            problems.append("a hold needs a quorum of at least 1")
        if problems:
            raise BrokenRule(f"rule {self.name!r}: " + "; ".join(problems))

    def match(self, subject: Subject) -> dict | None:
        """The compared values when every set condition holds, else None."""
        values: dict = {}
        if self.task_types:
            if subject.task_type is None or subject.task_type not in self.task_types:
                return None
            values["task_type"] = subject.task_type
            values["task_types"] = list(self.task_types)
        if self.ai_model_glob:
            if subject.ai_model is None or not fnmatch.fnmatchcase(subject.ai_model, self.ai_model_glob):
                return None
            values["ai_model"] = subject.ai_model
            values["ai_model_glob"] = self.ai_model_glob
        if self.severity_min is not None or self.severity_max is not None:
            if subject.severity is None:
                return None
            if self.severity_min is not None and subject.severity < self.severity_min:
                return None
            if self.severity_max is not None and subject.severity > self.severity_max:
                return None
            values["severity"] = subject.severity
            if self.severity_min is not None:
                values["severity_min"] = self.severity_min
            if self.severity_max is not None:
                values["severity_max"] = self.severity_max
        if self.block_execution is not None:
            if subject.block_execution is None or subject.block_execution != self.block_execution:
                return None
            values["block_execution"] = subject.block_execution
        if self.words:
            if subject.proposal is None:
                return None
            text = subject.proposal.lower()
            found = [w for w in self.words if w in text]
            if not found:
                return None
            values["words_found"] = found
        if self.customers:
            if subject.customer is None or subject.customer not in self.customers:
                return None
            values["customer"] = subject.customer
        if self.metric:
            if subject.ai_model is None or subject.metric is None:
                return None
            value = subject.metric(self.metric, self.metric_window)
            if value is None or not value > self.metric_threshold:
                return None
            values[self.metric] = value
            values["metric_threshold"] = self.metric_threshold
            values["metric_window"] = self.metric_window
        if self.model_alert_firing:
            if subject.ai_model is None or subject.alert_firing is None:
                return None
            if not subject.alert_firing():
                return None
            values["model_alert_firing"] = True
        return values

    def describe(self, values: dict) -> str:
        if not values:
            return f"rule {self.name!r} (no conditions) → {self.action}"
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        return f"rule {self.name!r} matched ({shown}) → {self.action}"


_cache_lock = threading.Lock()
_cache: dict[str, object] = {"version": None, "rules": ()}


def active_rules(version: str) -> tuple[Rule, ...]:
    """The enabled rules in order, cached per process for one `rules_version`."""
    if _cache["version"] == version:
        return _cache["rules"]  # type: ignore[return-value]
    rows = list(PolicyRule.objects.filter(enabled=True).order_by("priority", "id"))
    if not rows and not PolicyRule.objects.exists():
        # No policy at all (a database emptied since its migrations): the built-in
        # defaults apply, never "allow everything". Disabled rules do not count as none.
        from reviews.defaults import DEFAULT_RULES

        rows = [PolicyRule(**spec) for spec in DEFAULT_RULES]
    rules = tuple(Rule.from_model(r) for r in rows)
    with _cache_lock:
        _cache["version"] = version
        _cache["rules"] = rules
    return rules


def cached_version() -> str | None:
    """The rules version whose rules this process holds (active_rules answers it without
    reading), or None: what the intake assumes is still current, and checks in the
    statement that stores the report (services.intake._store_assuming)."""
    return _cache["version"]  # type: ignore[return-value]


def clear_cache() -> None:
    with _cache_lock:
        _cache["version"] = None
        _cache["rules"] = ()


def first_match(rules: tuple[Rule, ...], subject: Subject) -> tuple[Rule, dict] | None:
    for rule in rules:
        values = rule.match(subject)
        if values is not None:
            return rule, values
    return None

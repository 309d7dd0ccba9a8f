"""Model-version criteria as the registration evaluates them: immutable rule
snapshots, the matching that records which values each rule compared, and the
built-in defaults that apply when no rule exists at all."""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from dataclasses import dataclass

from deployments.models import Comparison, ModelRule, RuleAction

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
NO_RULE_POLICY = "no-matching-rule"
NO_RULE_QUORUM = 2

COMPARE = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}

DEFAULT_RULES = [
    {
        "name": "missing-failure-rate-block",
        "priority": 10,
        "description": "A version whose evaluation has no failure_rate is blocked: there is nothing to judge it on.",
        "required_metrics": ["failure_rate"],
        "action": "deny",
    },
    {
        "name": "new-version-hold",
        "priority": 1000,
        "description": "Every other new version is held for the committee: two approvals.",
        "action": "hold",
        "quorum": 2,
    },
]


def install_default_rules(rule_model=None) -> int:
    """Create the default rules that are missing (by name); returns how many it created."""
    if rule_model is None:
        rule_model = ModelRule
    created = 0
    for spec in DEFAULT_RULES:
        _, was_created = rule_model.objects.get_or_create(name=spec["name"], defaults=spec)
        created += was_created
    return created


class BrokenRule(ValueError):
    """A rule that cannot be evaluated as written; registration then fails closed."""


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    priority: int
    family_glob: str
    required_metrics: tuple[str, ...]
    metric: str
    comparison: str
    threshold: float | None
    action: str
    quorum: int
    sla_hours: int
    approval_valid_hours: int

    @classmethod
    def from_model(cls, rule: ModelRule) -> Rule:
        required = rule.required_metrics
        snapshot = cls(
            id=rule.pk,
            name=rule.name,
            priority=rule.priority,
            family_glob=rule.family_glob,
            required_metrics=tuple(required) if isinstance(required, list) else (required,),
            metric=rule.metric,
            comparison=rule.comparison,
            threshold=rule.threshold,
            action=rule.action,
            quorum=rule.quorum,
            sla_hours=rule.sla_hours,
            approval_valid_hours=rule.approval_valid_hours,
        )
        snapshot.check()
        return snapshot

    def check(self) -> None:
        """Raise BrokenRule when the rule cannot be evaluated as written."""
        problems = []
        if self.action not in RuleAction.values:
            problems.append(f"unknown action {self.action!r}")
        if any(not isinstance(m, str) or not METRIC_NAME.match(m) for m in self.required_metrics):
            problems.append("required_metrics must be a list of metric names (lower case, digits, _)")
        if self.metric or self.comparison or self.threshold is not None:
            if not METRIC_NAME.match(self.metric or ""):
                problems.append("a comparison needs a metric name (lower case, digits, _)")
            if self.comparison not in COMPARE:
                problems.append(f"a comparison needs one of {', '.join(COMPARE)}")
            if self.threshold is None or not math.isfinite(self.threshold):
                problems.append("a comparison needs a finite threshold")
        if self.action == RuleAction.HOLD and self.quorum < 1:
            problems.append("a hold needs a quorum of at least 1")
        if problems:
            raise BrokenRule(f"rule {self.name!r}: " + "; ".join(problems))

    def match(self, *, family: str, evaluation: dict[str, float]) -> dict | None:
        """The compared values when every set condition holds, else None."""
        values: dict = {}
        if self.family_glob:
            if not fnmatch.fnmatchcase(family, self.family_glob):
                return None
            values["family"] = family
            values["family_glob"] = self.family_glob
        if self.required_metrics:
            missing = [m for m in self.required_metrics if m not in evaluation]
            if not missing:
                return None
            values["missing"] = missing
        if self.metric:
            value = evaluation.get(self.metric)
            if value is None or not COMPARE[self.comparison](value, self.threshold):
                return None
            values[self.metric] = value
            values["comparison"] = f"{self.comparison} {self.threshold:g}"
        return values

    def describe(self, values: dict) -> str:
        if not values:
            return f"rule {self.name!r} (no conditions) → {self.action}"
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        return f"rule {self.name!r} matched ({shown}) → {self.action}"


@dataclass(frozen=True)
class Verdict:
    """What the criteria decided on one version."""

    action: str
    reason: str
    policy: str
    values: dict
    quorum: int
    sla_hours: int
    approval_valid_hours: int


def active_rules() -> tuple[Rule, ...]:
    """The enabled rules in order. With no rule at all (a database emptied since
    its migrations) the built-in defaults apply, never "nothing to check"."""
    rows = list(ModelRule.objects.filter(enabled=True).order_by("priority", "id"))
    if not rows and not ModelRule.objects.exists():
        rows = [ModelRule(pk=0, **spec) for spec in DEFAULT_RULES]
    return tuple(Rule.from_model(r) for r in rows)


def evaluate(*, family: str, evaluation: dict[str, float], rules: tuple[Rule, ...] | None = None) -> Verdict:
    """The first matching rule's decision; no match holds for the committee (fail closed)."""
    for rule in rules if rules is not None else active_rules():
        values = rule.match(family=family, evaluation=evaluation)
        if values is not None:
            return Verdict(
                action=rule.action,
                reason=rule.describe(values),
                policy=rule.name,
                values=values,
                quorum=rule.quorum,
                sla_hours=rule.sla_hours,
                approval_valid_hours=rule.approval_valid_hours,
            )
    return Verdict(
        action=RuleAction.HOLD,
        reason=f"no model-version rule matched; held for the committee (quorum {NO_RULE_QUORUM})",
        policy=NO_RULE_POLICY,
        values={},
        quorum=NO_RULE_QUORUM,
        sla_hours=72,
        approval_valid_hours=24 * 90,
    )


def check_rule(rule: ModelRule) -> None:
    """Raise BrokenRule for a rule that could not be evaluated (the admin form and policy changes)."""
    Rule.from_model(rule)

"""Policy changes: proposed and approved by the committee, or made at once by a
superuser in an emergency and reviewed in retrospect. The same for the gate's
policy rules and for the policy tables of the apps above reviews that are
registered as governed (reviews.governed): a change names its `target`.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from reviews import governed
from reviews.models import (
    WAITING_STATUSES,
    Case,
    CaseStatus,
    PolicyChange,
    PolicyRule,
)
from reviews.services.common import _chain, _notify, check_rationale
from reviews.services.errors import NotAllowed
from reviews.services.quorum import _check_short_of_members

POLICY_FIELDS = tuple(f.name for f in PolicyRule._meta.concrete_fields if f.name != "id")


def rule_values(rule: PolicyRule) -> dict:
    """A rule's values as stored in a PolicyChange (JSON round-tripped, so they compare equal later)."""
    return _spec(governed.POLICY_RULE).values(rule)


def _spec(target: str) -> governed.Governed:
    spec = governed.get(target)
    if spec is None:
        raise NotAllowed(f"{target!r} is not governed by policy-change review", field="target")
    return spec


def policy_change_quorum() -> int:
    from django.conf import settings

    return getattr(settings, "REVIEWS_POLICY_CHANGE_QUORUM", 2)


def _prepare_policy_change(*, spec: governed.Governed, operation: str, rule_id: int | None, values: dict | None):
    """Lock the row and work out (row, operation, before, proposed, diff, name); raise
    NotAllowed for a change that could not be applied (unknown fields, a row its
    app could not evaluate, a duplicate name, or nothing that would change)."""
    import json

    values = dict(values or {})
    unknown = sorted(set(values) - set(spec.fields))
    if unknown:
        raise NotAllowed(f"unknown {spec.label} fields: {', '.join(unknown)}", field=unknown[0])
    if operation not in PolicyChange.Operation.values:
        raise NotAllowed(f"operation must be one of {', '.join(PolicyChange.Operation.values)}", field="operation")
    rule = None
    if operation == PolicyChange.Operation.CREATE:
        before: dict = {}
        proposed = {**spec.values(spec.model()), **values}
    else:
        rule = spec.model.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise NotAllowed(f"no {spec.label} with id {rule_id}", field="rule")
        before = spec.values(rule)
        if operation == PolicyChange.Operation.CHANGE:
            proposed = {**before, **values}
        elif operation == PolicyChange.Operation.DISABLE:
            proposed = {**before, "enabled": False}
        else:
            proposed = {}
    proposed = json.loads(json.dumps(proposed, default=str))
    if proposed:
        from django.core.exceptions import ValidationError

        candidate = spec.model(**proposed)
        try:
            candidate.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            field, problems = next(iter(exc.message_dict.items()))
            raise NotAllowed(f"{field}: {' '.join(problems)}", field=field) from None
        candidate.pk = rule.pk if rule else 0
        if spec.check is not None:
            try:
                spec.check(candidate)
            except ValueError as exc:
                raise NotAllowed(str(exc)) from None
        if "name" in spec.fields:
            others = spec.model.objects.filter(name=proposed["name"]).exclude(pk=rule.pk if rule else None)
            if others.exists():
                raise NotAllowed(f"a {spec.label} named {proposed['name']!r} already exists", field="name")
    diff = {k: [before.get(k), proposed.get(k)] for k in spec.fields if before.get(k) != proposed.get(k)}
    if not diff:
        raise NotAllowed("this would change nothing")
    if operation == PolicyChange.Operation.CHANGE and set(diff) == {"enabled"} and proposed["enabled"] is False:
        operation = PolicyChange.Operation.DISABLE
    name = spec.name_of(rule) if rule else str(proposed.get("name", ""))[:100]
    return rule, operation, before, proposed, diff, name


def _pending(spec: governed.Governed, row, name: str):
    """Pending changes to the same row (or, for a create, to a row of the same name)."""
    pending = PolicyChange.objects.filter(status=PolicyChange.Status.PENDING, target=spec.target)
    return pending.filter(object_id=row.pk) if row else pending.filter(object_id__isnull=True, rule_name=name)


def _policy_case(*, title: str, rule: PolicyRule | None, name: str, now, why: str) -> Case:
    from django.conf import settings

    case = Case(
        kind=Case.Kind.POLICY,
        status=CaseStatus.OPEN,
        title=title[:300],
        rule=rule,
        rule_name=name,
        quorum=policy_change_quorum(),
        sla_hours=settings.REVIEWS_POLICY_CHANGE_SLA_HOURS,
        opened_at=now,
        due_at=now + timedelta(hours=settings.REVIEWS_POLICY_CHANGE_SLA_HOURS),
    )
    case._change_reason = why
    case.save()
    _notify("notify_case_opened", case.pk)
    return case


@transaction.atomic
def policy_change_propose(
    *,
    by,
    operation: str,
    reason: str,
    rule_id: int | None = None,
    values: dict | None = None,
    target: str = governed.POLICY_RULE,
) -> PolicyChange:
    """Propose creating, changing, disabling or deleting a policy rule, or a row of
    another governed policy table (`target`, e.g. "deployments.modelrule"; `rule_id`
    is then that row's id). Nothing changes in what the gate reads until the
    committee approves the change's case (quorum `REVIEWS_POLICY_CHANGE_QUORUM`,
    default 2; the proposer cannot vote on it). One pending change per row."""
    reason = check_rationale(reason, field="reason")
    spec = _spec(target)
    rule, operation, before, proposed, diff, name = _prepare_policy_change(
        spec=spec, operation=operation, rule_id=rule_id, values=values
    )
    clash = _pending(spec, rule, name).first()
    if clash is not None:
        raise NotAllowed(
            f"{spec.label} {name!r} already has a pending change (case {clash.case_id}); decide that one first"
        )
    now = timezone.now()
    case = _policy_case(
        title=f"Policy change: {operation} {spec.label} {name}",
        rule=rule if spec.target == governed.POLICY_RULE else None,
        name=name,
        now=now,
        why=f"proposed by {by}",
    )
    return _record_policy_change(
        emergency=False, case=case, by=by, now=now, operation=operation, spec=spec, rule=rule, name=name,
        before=before, proposed=proposed, diff=diff, reason=reason,
    )  # fmt: skip


@transaction.atomic
def policy_change_emergency(
    *,
    by,
    operation: str,
    reason: str,
    rule_id: int | None = None,
    values: dict | None = None,
    target: str = governed.POLICY_RULE,
) -> PolicyChange:
    """A superuser's emergency change: applied at once, with a retrospective case
    opened for the committee. Pending changes to the same rule are superseded
    (their cases closed as rejected), since they were proposed against values
    that no longer hold."""
    if not getattr(by, "is_superuser", False):
        raise NotAllowed("only a superuser can make an emergency policy change")
    reason = check_rationale(reason, field="reason")
    spec = _spec(target)
    rule, operation, before, proposed, diff, name = _prepare_policy_change(
        spec=spec, operation=operation, rule_id=rule_id, values=values
    )
    now = timezone.now()
    for old in _pending(spec, rule, name).select_for_update():
        _supersede(old, by=by, now=now)
    case = _policy_case(
        title=f"Retrospective review: emergency {operation} of {spec.label} {name}",
        rule=rule if spec.target == governed.POLICY_RULE else None,
        name=name,
        now=now,
        why=f"emergency change by {by}: review in retrospect",
    )
    change = _record_policy_change(
        emergency=True, case=case, by=by, now=now, operation=operation, spec=spec, rule=rule, name=name,
        before=before, proposed=proposed, diff=diff, reason=reason,
    )  # fmt: skip
    _apply_policy_change(change, rule=rule, by=by)
    return change


def _record_policy_change(
    *, emergency: bool, case: Case, by, now, operation, spec, rule, name, before, proposed, diff, reason
) -> PolicyChange:
    """Store a proposed (or emergency) policy change under its case, with history and on the chain."""
    change = PolicyChange(
        operation=operation,
        target=spec.target,
        object_id=rule.pk if rule else None,
        rule=rule if spec.target == governed.POLICY_RULE else None,
        rule_name=name,
        before=before,
        proposed=proposed,
        diff=diff,
        reason=reason,
        emergency=emergency,
        proposed_by=by,
        proposed_at=now,
        case=case,
    )
    change._history_user = by
    change._change_reason = f"{'emergency' if emergency else 'proposed'}: {reason}"
    change.save()
    _check_short_of_members(case)  # a proposer on a small committee may leave too few voters
    _chain(
        "policy.emergency" if emergency else "policy.proposed",
        subject=f"policy_change:{change.pk}",
        by=by,
        case=case.pk,
        operation=operation,
        target=spec.target,
        rule=name,
        rule_id=rule.pk if rule else None,
        diff=diff,
        reason=reason,
    )
    return change


def _supersede(change: PolicyChange, *, by, now) -> None:
    change.status = PolicyChange.Status.SUPERSEDED
    change._history_user = by
    change._change_reason = "superseded by an emergency change"
    change.save()
    case = Case.objects.select_for_update().get(pk=change.case_id)
    if case.status in WAITING_STATUSES:
        case.status = CaseStatus.REJECTED
        case.rationale = "superseded by an emergency change to the same rule"
        case.decided_at = now
        case.decided_by = by
        case._history_user = by
        case._change_reason = "superseded by an emergency change"
        case.save()
    _chain("policy.superseded", subject=f"policy_change:{change.pk}", by=by, case=case.pk, rule=change.rule_name)


def _apply_policy_change(change: PolicyChange, *, rule, by):
    """Write the change to the governed row (already locked by the caller), with
    history, and tell its app (`applied`: the gate's rules bump the rules version
    so every process reloads its cached rules)."""
    spec = _spec(change.target)
    why = f"policy change {change.pk} ({'emergency' if change.emergency else f'case {change.case_id}'})"
    if change.operation == PolicyChange.Operation.DELETE:
        rule._history_user = by
        rule._change_reason = why
        rule.delete()
        rule = None
    else:
        rule = rule or spec.model()
        for name, value in change.proposed.items():
            setattr(rule, name, value)
        rule._history_user = by
        rule._change_reason = why
        rule.save()
    change.object_id = rule.pk if rule else None
    change.rule = rule if spec.target == governed.POLICY_RULE else None
    change.status = PolicyChange.Status.APPLIED
    change.applied_at = timezone.now()
    change._history_user = by
    change._change_reason = "applied"
    change.save()
    if spec.applied is not None:
        spec.applied()
    _chain(
        "policy.applied",
        subject=f"policy_change:{change.pk}",
        by=by,
        case=change.case_id,
        operation=change.operation,
        target=change.target,
        rule=change.rule_name,
        rule_id=rule.pk if rule else None,
        values=change.proposed,
        emergency=change.emergency,
    )
    return rule


def _policy_case_decided(case: Case, *, decision: str, by) -> None:
    """The committee decided a policy change's case: apply it, or close it unapplied.
    A retrospective case (emergency change) only records the committee's verdict;
    undoing an emergency change is a new proposal."""
    change = PolicyChange.objects.select_for_update().get(case=case)
    if change.emergency:
        _chain("policy.reviewed", subject=f"policy_change:{change.pk}", by=by, case=case.pk, decision=decision)
        return
    if change.status != PolicyChange.Status.PENDING:
        raise NotAllowed(f"policy change {change.pk} is {change.status}")
    if decision == CaseStatus.APPROVED:
        spec = _spec(change.target)
        rule = None
        if change.operation != PolicyChange.Operation.CREATE:
            rule = spec.model.objects.select_for_update().filter(pk=change.object_id).first()
            if rule is None or spec.values(rule) != change.before:
                raise NotAllowed(
                    f"{spec.label} {change.rule_name!r} changed since this was proposed; reject this and propose again"
                )
        elif "name" in spec.fields and spec.model.objects.filter(name=change.proposed["name"]).exists():
            raise NotAllowed(
                f"a {spec.label} named {change.proposed['name']!r} exists now; reject this and propose again"
            )
        _apply_policy_change(change, rule=rule, by=by)
        return
    change.status = (
        PolicyChange.Status.REJECTED if decision == CaseStatus.REJECTED else PolicyChange.Status.CHANGES_REQUESTED
    )
    change._history_user = by
    change._change_reason = f"{decision}: {case.rationale}"
    change.save()
    _chain(f"policy.{change.status}", subject=f"policy_change:{change.pk}", by=by, case=case.pk)

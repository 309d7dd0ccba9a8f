"""The gate: the decision on a task being registered (settings.TASK_GATE through
fsar.gate), the case details the task API shows, and the gate's state: the kill
switch (pause, resume, deciding again what the pause held), the rules version,
and the operators' review settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.jobs import enqueue_on_commit
from reviews import policy, selectors
from reviews.models import (
    WAITING_STATUSES,
    Action,
    CallbackDelivery,
    Case,
    CaseStatus,
    GateState,
    PolicyRule,
    Report,
    ReviewSettings,
    new_rules_version,
)
from reviews.services.callbacks import STOPPABLE, task_callbacks_queue
from reviews.services.common import NO_RULE_POLICY, PAUSE_POLICY, _chain, _open_case, _reopen
from reviews.services.errors import NotAllowed, UnknownProposal
from tasks.gate import GateDecision, GateUnavailable, ask_gate, require_transaction
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_gate_update

logger = logging.getLogger(__name__)
AlertProvider = Callable[[str], bool]


def recheck_task(
    task: ExecutionTask, *, state: GateState | None = None, alert_firing: AlertProvider | None = None
) -> GateDecision:
    """The gate's answer now for a task stored as allowed that is about to start
    (settings.TASK_GATE_RECHECK through fsar.gate), inside the start's transaction.

    The same decision as at registration, from the current state: the kill switch,
    the linked report's case (revoked, revised, rejected, or its approval lapsed,
    whether or not `cases_expire` has run), and the current rules with the model's
    metrics. A report that has gone since is a denial. When the task is now held
    on the case that allowed it, the reason says what changed that case since.
    Cost when nothing changed: what registration costs (one query, cached rules)."""
    try:
        decision = decide_task(task, state=state, alert_firing=alert_firing)
    except UnknownProposal:
        return GateDecision("deny", f"its report {task.proposal_ref} no longer exists", None, None)
    if decision.decision == "hold" and decision.case and str(decision.case) == task.gate_case:
        change = selectors.latest_case_change(int(decision.case))
        if change:
            return replace(decision, reason=f"{decision.reason}; since the task was allowed: {change}")
    return decision


def decide_task(
    task: ExecutionTask, *, state: GateState | None = None, alert_firing: AlertProvider | None = None
) -> GateDecision:
    """The execution gate's decision on a task being registered.

    Called inside task_register's transaction (so a case it opens is rolled back
    with the task). Raises on anything it cannot decide; the caller fails closed.
    Cost when nothing is held: one query for the gate state (none when the
    composing gate passes the `state` it read already), cached rules.

    `alert_firing(ai_model) -> bool` answers the rules' "alert firing for this
    model" condition (reviews never imports indicators: fsar/gate.py passes it),
    asked only when a rule that reaches the task uses it. Without it, such a rule
    cannot be evaluated and the gate fails closed (BrokenRule).
    """
    state = state or selectors.gate_state()
    if state.paused:
        return GateDecision("hold", f"the gate is paused: {state.reason}", PAUSE_POLICY, None)
    report = None
    if task.proposal_ref:
        # A honeypot does not exist for the AI: a task naming it is refused as an unknown proposal.
        report = selectors.report_for_client(task.proposal_ref)
        if report is None:
            raise UnknownProposal(task.proposal_ref)
        linked = _decision_from_report(report)
        if linked is not None:
            return linked
    subject = policy.Subject(
        task_type=task.task_type,
        ai_model=task.ai_model,
        customer=task.customer_ref,
        severity=report.severity if report else None,
        block_execution=report.block_execution if report else None,
        proposal=report.proposal if report else None,
        metric=(lambda kind, window: selectors.model_metric(task.ai_model, kind, window)) if task.ai_model else None,
        alert_firing=(lambda: _alert_firing(alert_firing, task.ai_model)) if task.ai_model else None,
    )
    matched = policy.first_match(policy.active_rules(state.rules_version), subject)
    if matched is None:
        return _hold_for_tasks(task, None, "no policy rule matched")
    rule, values = matched
    reason = rule.describe(values)
    if rule.action == Action.ALLOW:
        return GateDecision("allow", reason, rule.name, None)
    if rule.action == Action.DENY:
        return GateDecision("deny", reason, rule.name, None)
    return _hold_for_tasks(task, rule, reason)


def _alert_firing(provider: AlertProvider | None, ai_model: str) -> bool:
    if provider is None:
        raise policy.BrokenRule("a rule asks whether an alert is firing for the model, and no one can answer")
    return bool(provider(ai_model))


def _decision_from_report(report: Report) -> GateDecision | None:
    """A task linked to a held or denied report is held or denied with it."""
    name = report.report_id
    if report.gate_decision == Action.DENY:
        return GateDecision("deny", f"its report {name} was denied: {report.gate_reason}", report.gate_policy, None)
    case = report.case
    if case is None or case.status == CaseStatus.ADVISORY:
        return None
    case_ref = case.pk
    if case.status == CaseStatus.APPROVED:
        if case.approved_until is None or case.approved_until > timezone.now():
            return GateDecision("allow", f"its report {name} was approved (case {case.pk})", case.rule_name, case_ref)
    if case.status == CaseStatus.REJECTED:
        return GateDecision(
            "deny", f"its report {name} was rejected (case {case.pk}): {case.rationale}", case.rule_name, case_ref
        )
    if case.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):
        require_transaction()
        locked = Case.objects.select_for_update().get(pk=case.pk)
        _reopen(locked, quorum=locked.quorum, why=f"approval lapsed; task {name} needs a new decision")
    return GateDecision(
        "hold", f"its report {name} is waiting for the committee (case {case.pk})", case.rule_name, case_ref
    )


def _hold_for_tasks(task: ExecutionTask, rule: policy.Rule | None, reason: str) -> GateDecision:
    """One case per (rule, task type, AI model): join the waiting one, ride on a
    current approval, or open one."""
    require_transaction()  # the case's row lock, and the case it may open, commit with the task
    rule_name = rule.name if rule else NO_RULE_POLICY
    subject = {"task_type": task.task_type, "ai_model": task.ai_model or ""}
    latest = (
        Case.objects.select_for_update()
        .filter(kind=Case.Kind.TASKS, rule_name=rule_name, **subject)
        .order_by("-id")
        .first()
    )
    now = timezone.now()
    if latest is not None:
        if latest.status == CaseStatus.APPROVED and latest.approved_until and latest.approved_until > now:
            return GateDecision(
                "allow",
                f"{reason}; covered by the approval of case {latest.pk} "
                f"until {latest.approved_until:%Y-%m-%d %H:%M} UTC",
                rule_name,
                latest.pk,
            )
        if latest.status in WAITING_STATUSES:
            return GateDecision("hold", f"{reason}; waiting on case {latest.pk}", rule_name, latest.pk)
        if latest.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):
            _reopen(latest, quorum=latest.quorum, why=f"approval lapsed; task {task.external_id} needs a decision")
            return GateDecision("hold", f"{reason}; waiting on case {latest.pk}", rule_name, latest.pk)
    try:
        with transaction.atomic():
            case = _open_case(
                kind=Case.Kind.TASKS,
                status=CaseStatus.OPEN,
                title=f"{task.task_type} on {task.ai_model or 'any model'} ({rule_name})",
                rule=rule,
                now=now,
                why=f"task {task.external_id}: {reason}",
                **subject,
            )
    except IntegrityError:
        # Another registration opened the case a moment ago: join it.
        case = Case.objects.filter(
            kind=Case.Kind.TASKS, rule_name=rule_name, status__in=WAITING_STATUSES, **subject
        ).latest("id")
    return GateDecision("hold", f"{reason}; waiting on case {case.pk}", rule_name, case.pk)


def task_gate_details(task: ExecutionTask) -> dict:
    """Extra gate keys for the task API: the case's status and, once decided, its rationale."""
    return tasks_gate_details([task])[task.pk]


def tasks_gate_details(tasks: list[ExecutionTask]) -> dict[int, dict]:
    """`task_gate_details` for many tasks (a page of the task list), in one query."""
    case_ids = {task.gate_case_id for task in tasks if task.gate_case and task.gate_case_id is not None}
    cases = {}
    if case_ids:
        cases = {row["pk"]: row for row in Case.objects.filter(pk__in=case_ids).values("pk", "status", "rationale")}
    details = {}
    for task in tasks:
        case = cases.get(task.gate_case_id) if task.gate_case else None
        details[task.pk] = (
            {"case_status": case["status"], "rationale": case["rationale"] or None}
            if case is not None
            else {"case_status": None, "rationale": None}
        )
    return details


@transaction.atomic
def gate_pause(*, by, reason: str) -> GateState:
    """Pause the gate: every new task is held, a task allowed before the pause is
    held when it tries to start (tasks.services.task_start asks the gate again),
    and tasks running or allowed but not started get a `stop` callback."""
    state = _gate_set_paused(True, by=by, reason=reason)
    stopping = ExecutionTask.objects.filter(status__in=STOPPABLE, submitted_by__callback__enabled=True)
    task_callbacks_queue(list(stopping), CallbackDelivery.Type.STOP, case=None, reason=state.reason, decision="hold")
    return state


@transaction.atomic
def gate_resume(*, by, reason: str) -> GateState:
    """Resume the gate; tasks held only by the pause are decided again (by a job)."""
    state = _gate_set_paused(False, by=by, reason=reason)
    enqueue_on_commit("reviews.jobs.redecide_paused_tasks")
    return state


def _gate_set_paused(paused: bool, *, by, reason: str) -> GateState:
    """Pause or resume, with a reason, recorded in the row's history and the audit
    chain (`gate.paused` / `gate.resumed`); refused when the gate is already so."""
    verb = "pausing" if paused else "resuming"
    if not reason.strip():
        raise NotAllowed(f"{verb} the gate needs a reason", field="reason")
    state = _gate_state_locked()
    if state.paused == paused:
        raise NotAllowed("the gate is already paused" if paused else "the gate is not paused")
    state.paused = paused
    state.reason = reason.strip()
    state.changed_at = timezone.now()
    state.changed_by = by
    state._history_user = by
    done = "paused" if paused else "resumed"
    state._change_reason = f"{done}: {state.reason}"
    state.save()
    _chain(f"gate.{done}", subject="gate", by=by, reason=state.reason)
    return state


_UNCHANGED = object()


@transaction.atomic
def review_settings_set(*, by, reason: str, require_totp: bool | None = None, chair=_UNCHANGED) -> ReviewSettings:
    """Change the operators' review settings: two-factor for decisions, and the
    committee chair (an active committee member, or None: every operator is told
    instead; reviews.selectors.committee_chairs). The row's history and an
    audit-chain entry (`review_settings.changed`, with `{field: [before, after]}`)
    record who, what and why. A save that changes nothing is refused, so every
    entry is a change; a setting left out (None / not given) is kept."""
    from core.roles import COMMITTEE, has_role

    reason = reason.strip()
    if not reason:
        raise NotAllowed("changing the review settings needs a reason", field="reason")
    row = _review_settings_locked()
    diff: dict = {}
    said = []
    if require_totp is not None and row.require_totp != require_totp:
        diff["require_totp"] = [row.require_totp, require_totp]
        row.require_totp = require_totp
        said.append(f"two-factor {'required' if require_totp else 'optional'}")
    if chair is not _UNCHANGED and row.chair_id != (chair.pk if chair is not None else None):
        if chair is not None and not (chair.is_active and has_role(chair, COMMITTEE)):
            raise NotAllowed(f"{chair} is not an active committee member: the chair is one", field="chair")
        before = row.chair.get_username() if row.chair_id else None
        diff["chair"] = [before, chair.get_username() if chair is not None else None]
        row.chair = chair
        said.append(f"chair {chair.get_username()}" if chair is not None else "no chair (every operator)")
    if not diff:
        if chair is _UNCHANGED and require_totp is not None:
            raise NotAllowed("nothing changed: two-factor is already " + ("required" if require_totp else "optional"))
        raise NotAllowed("nothing changed")
    row.reason = reason
    row.changed_at = timezone.now()
    row.changed_by = by
    row._history_user = by
    row._change_reason = f"{', '.join(said)}: {reason}"
    row.save()
    _chain("review_settings.changed", subject="review_settings", by=by, diff=diff, reason=reason)
    return row


def redecide_paused_tasks() -> int:
    """Give every task held only by the pause the gate's current decision (the whole
    gate's: held_tasks_decide_again)."""
    if selectors.gate_state().paused:
        return 0
    return held_tasks_decide_again(policy=PAUSE_POLICY, why="gate resumed")


def held_tasks_decide_again(*, policy: str, why: str, ai_model: str | None = None) -> int:
    """Give every task held by `policy` (and on `ai_model`, if given) the whole
    gate's decision now (settings.TASK_GATE), so the parts of it that apps above
    reviews add apply too (a model version revoked during a pause; a version
    registered since its tasks were held). Safe to run twice: a task changes only
    while still held by `policy`, each under its row lock; one the gate cannot
    decide now stays held for the next run. Returns how many changed (released,
    denied, or held on something else)."""
    held = ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_policy=policy)
    if ai_model is not None:
        held = held.filter(ai_model=ai_model)
    changed = 0
    for task_id in list(held.values_list("pk", flat=True)):
        with transaction.atomic():
            task = ExecutionTask.objects.select_for_update().get(pk=task_id)
            if task.status != TaskStatus.HELD or task.gate_policy != policy:
                continue
            try:
                decision = ask_gate(task)
            except GateUnavailable:
                logger.warning("The gate could not decide on held task %s; it stays held", task.external_id)
                continue
            updated = task_gate_update(
                task_id=task_id, decision=decision, actor=Actor.system(), reason=f"{why}: {decision.decision}"
            )
            if updated is None:
                continue
            changed += 1
            if decision.decision != "hold":
                kind = CallbackDelivery.Type.RELEASED if decision.decision == "allow" else CallbackDelivery.Type.DENIED
                task_callbacks_queue([updated], kind, case=None)
    return changed


@transaction.atomic
def rules_changed(*, why: str = "") -> None:
    """Bump the rules version so every process reloads its cached rules (policy
    rules, model versions and their criteria). The version itself is not in the
    gate state's history (it is a cache key), but each bump leaves a history row
    there saying why, so the gate's history lists every change that moved it."""
    state = _gate_state_locked()
    state.rules_version = new_rules_version()
    state._change_reason = f"{selectors.RULES_CHANGED}{why.strip() or 'no reason given'}"
    state.save()


def _gate_state_locked() -> GateState:
    """The gate's row, locked. Writing it is this module's (the selector only reads):
    a missing row is written again as the selector read it, paused
    (selectors.GATE_STATE_MISSING), so the write that follows starts from what the gate
    was answering."""
    state = GateState.objects.select_for_update().filter(pk=1).first()
    if state is not None:
        return state
    try:
        with transaction.atomic():
            state = GateState(pk=1, paused=True, reason=selectors.GATE_STATE_MISSING)
            state._change_reason = "the state row was missing: written again as it read, paused"
            state.save(force_insert=True)
    except IntegrityError:  # written meanwhile by another request
        state = GateState.objects.select_for_update().get(pk=1)
    return state


def _review_settings_locked() -> ReviewSettings:
    row = ReviewSettings.objects.select_for_update().filter(pk=1).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            row = ReviewSettings(pk=1)
            row._change_reason = "the settings row was missing: written again with the defaults"
            row.save(force_insert=True)
    except IntegrityError:
        row = ReviewSettings.objects.select_for_update().get(pk=1)
    return row


def singletons_install(*, apps=None) -> None:
    """The one-row tables as a new database has them (the gate running, two-factor
    optional), where a row is missing: migrations reviews.0002 and 0010 install
    them, and the post_migrate receiver calls this after every migrate (and after a
    test's flush). `apps`: a migration state's registry (post_migrate passes it),
    so a partial migrate that has no such table yet is skipped."""
    for name in ("GateState", "ReviewSettings"):
        try:
            model = (
                apps.get_model("reviews", name)
                if apps is not None
                else {"GateState": GateState, "ReviewSettings": ReviewSettings}[name]
            )
        except LookupError:
            continue
        model.objects.get_or_create(pk=1)


def validate_rule(rule: PolicyRule) -> None:
    """Raise policy.BrokenRule when a rule could not be evaluated (used by the admin form)."""
    policy.Rule.from_model(rule)

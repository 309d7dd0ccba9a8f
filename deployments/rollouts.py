"""Every transition of a rollout is one function here: create, start, promote (a
step), pause, resume, roll back, abort. Each is atomic, locks the rollout's row,
checks the transition, saves with history (who, which key, the reason), writes
an audit-chain entry `rollout.<event>` with subject `rollout:<id>`, and
replaces the gate's rules version so every process's cached routes reload.

Rolling back (or aborting) takes the candidate to 0% at once, denies its tasks
that are held or registered with the rollback's reason, and queues `stop`
callbacks for its running ones (reviews' callback service).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.history import save_with_history
from deployments import drills, routing
from deployments.errors import InvalidVersion, RolloutError
from deployments.models import ACTIVE_STATES, ModelVersion, Rollout, RolloutState, VersionStatus
from deployments.routing import step_deadline  # noqa: F401 (public here too)
from reviews import services as review_services
from reviews.models import CallbackDelivery
from tasks.gate import GateDecision
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_gate_update, task_gate_withdraw

ROUTE_POLICY = "rollout"
DEFAULT_STEPS = [
    {"weight": 5, "min_minutes": 30, "min_tasks": 20},
    {"weight": 25, "min_minutes": 30, "min_tasks": 20},
    {"weight": 50, "min_minutes": 30, "min_tasks": 20},
    {"weight": 100, "min_minutes": 30, "min_tasks": 20},
]
MAX_STEPS = 20


def check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise InvalidVersion("reason: say why, in a sentence (at least 10 characters)", field="reason")
    if len(reason) > 2000:
        raise InvalidVersion("reason: at most 2000 characters", field="reason")
    return reason


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidVersion(f"steps: {name} must be a whole number from {low} to {high}", field="steps")
    return value


def clean_steps(steps: Any) -> list[dict]:
    """Steps as stored: weights rising strictly to 100, each with a minimum duration
    (minutes), a minimum of finished candidate tasks and a deadline (minutes, by
    which too few tasks makes the analysis inconclusive)."""
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise InvalidVersion(f"steps: a list of 1 to {MAX_STEPS} steps", field="steps")
    cleaned, last = [], 0
    for step in steps:
        if not isinstance(step, dict):
            raise InvalidVersion("steps: each step is an object with a weight", field="steps")
        weight = _int(step.get("weight"), "weight", 1, 100)
        if weight <= last:
            raise InvalidVersion("steps: weights must rise from step to step", field="steps")
        last = weight
        min_minutes = _int(step.get("min_minutes", 30), "min_minutes", 0, 7 * 24 * 60)
        min_tasks = _int(step.get("min_tasks", 20), "min_tasks", 0, 1_000_000)
        deadline = _int(step.get("deadline_minutes", max(60, 3 * min_minutes)), "deadline_minutes", 1, 30 * 24 * 60)
        if deadline < min_minutes:
            raise InvalidVersion("steps: deadline_minutes must not be shorter than min_minutes", field="steps")
        cleaned.append(
            {"weight": weight, "min_minutes": min_minutes, "min_tasks": min_tasks, "deadline_minutes": deadline}
        )
    if last != 100:
        raise InvalidVersion("steps: the last step's weight is 100 (the candidate takes all traffic)", field="steps")
    return cleaned


def parse_weights(text: str, *, min_minutes: int = 30, min_tasks: int = 20) -> list[dict]:
    """ "5, 25, 50, 100" → steps with the given minimums (the page's form)."""
    try:
        weights = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InvalidVersion(
            "steps: whole-number weights separated by commas, e.g. 5, 25, 50, 100", field="steps"
        ) from None
    return clean_steps([{"weight": w, "min_minutes": min_minutes, "min_tasks": min_tasks} for w in weights])


def _actor(by) -> Actor:
    return Actor(user=by if getattr(by, "pk", None) else None)


def _who(by, actor: str = "") -> str:
    return actor or (actor_name(user=by, api_key=None) if getattr(by, "pk", None) else "system")


def _record(rollout: Rollout, event: str, *, by, reason: str, actor: str = "", **data) -> None:
    rollout.reason = reason
    save_with_history(rollout, reason=f"{event}: {reason}", user=_actor(by).user)
    audit_append(
        kind=f"rollout.{event}",
        subject=f"rollout:{rollout.pk}",
        actor=_who(by, actor),
        data={
            "family": rollout.family,
            "stable": rollout.stable.ai_model,
            "candidate": rollout.candidate.ai_model,
            "state": rollout.state,
            "step": rollout.step,
            "weight": rollout.weight,
            "reason": reason,
            **data,
        },
    )
    # The gate's cached routes reload (its candidates without traffic).
    review_services.rules_changed(why=f"rollout {rollout.pk} of {rollout.family} {event}: {rollout.weight}%")


def _locked(rollout_id: int) -> Rollout:
    rollout = (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("stable", "candidate")
        .filter(pk=rollout_id)
        .first()
    )
    if rollout is None:
        raise RolloutError(f"no rollout {rollout_id}")
    return rollout


@transaction.atomic
def rollout_create(
    *,
    candidate_id: int,
    steps: Any = None,
    reason: str,
    by=None,
    auto_promote: bool = True,
    start: bool = True,
    now=None,
) -> Rollout:
    """A rollout of an approved candidate against its family's live version (the
    stable, also its rollback target). With `start` it starts at once, and if it
    cannot (no recent passed drill of the stable) nothing is stored."""
    reason = check_reason(reason)
    steps = clean_steps(DEFAULT_STEPS if steps is None else steps)
    candidate = ModelVersion.objects.select_for_update().filter(pk=candidate_id).first()
    if candidate is None:
        raise InvalidVersion(f"candidate: no model version {candidate_id}", field="candidate")
    if candidate.status != VersionStatus.APPROVED:
        raise RolloutError(
            f"the candidate {candidate.ai_model!r} is {candidate.status}: only an approved version rolls out"
        )
    if Rollout.objects.filter(family=candidate.family, state__in=ACTIVE_STATES).exists():
        raise RolloutError(f"family {candidate.family!r} has an active rollout already; finish or roll it back first")
    stable = routing.live_version(candidate.family)
    if stable is None or stable.pk == candidate.pk:
        older = (
            ModelVersion.objects.filter(family=candidate.family, status=VersionStatus.APPROVED)
            .exclude(pk=candidate.pk)
            .order_by("-id")
            .first()
        )
        stable = older
    if stable is None:
        raise RolloutError(
            f"family {candidate.family!r} has no other approved version to roll back to: nothing to roll out against"
        )
    rollout = Rollout(
        family=candidate.family,
        stable=stable,
        candidate=candidate,
        steps=steps,
        auto_promote=auto_promote,
        reason=reason,
        created_by=by if getattr(by, "pk", None) else None,
        created_at=now or timezone.now(),
    )
    try:
        with transaction.atomic():
            _record(rollout, "created", by=by, reason=reason, steps=steps, auto_promote=auto_promote)
    except IntegrityError:
        raise RolloutError(f"family {candidate.family!r} has an active rollout already") from None
    if start:
        rollout = rollout_start(rollout_id=rollout.pk, by=by, reason=reason, now=now)
    return rollout


@transaction.atomic
def rollout_start(*, rollout_id: int, by=None, reason: str, now=None) -> Rollout:
    """pending → progressing at the first step, only if the rollback target (the
    stable) passed a drill within ROLLOUT_DRILL_MAX_AGE."""
    reason = check_reason(reason)
    now = now or timezone.now()
    rollout = _locked(rollout_id)
    if rollout.state != RolloutState.PENDING:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}, not pending")
    refusal = drills.drill_refusal(rollout.stable, now=now)
    if refusal:
        raise RolloutError(f"rollout {rollout.pk} cannot start: {refusal}")
    rollout.state = RolloutState.PROGRESSING
    rollout.started_at = now
    _enter_step(rollout, 0, now=now)
    _record(rollout, "started", by=by, reason=reason)
    return rollout


def _enter_step(rollout: Rollout, index: int, *, now) -> None:
    rollout.step = index
    rollout.weight = rollout.steps[index]["weight"]
    rollout.step_started_at = now
    rollout.awaiting_confirm = False


def advance(rollout: Rollout, *, by, reason: str, now, event: str = "promoted_step") -> Rollout:
    """The next step, or `promoted` after the last (rollout already locked)."""
    if rollout.step + 1 >= len(rollout.steps):
        rollout.state = RolloutState.PROMOTED
        rollout.weight = 100
        rollout.awaiting_confirm = False
        rollout.finished_at = now
        _record(rollout, "promoted", by=by, reason=reason)
    else:
        _enter_step(rollout, rollout.step + 1, now=now)
        _record(rollout, event, by=by, reason=reason)
    return rollout


@transaction.atomic
def rollout_promote(*, rollout_id: int, by, reason: str, now=None) -> Rollout:
    """An operator moves a progressing rollout to its next step (or promotes it
    after the last), confirming a passed analysis or skipping the wait."""
    reason = check_reason(reason)
    rollout = _locked(rollout_id)
    if rollout.state != RolloutState.PROGRESSING:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}: only a progressing rollout is promoted")
    return advance(rollout, by=by, reason=reason, now=now or timezone.now())


@transaction.atomic
def rollout_pause(*, rollout_id: int, by=None, reason: str, actor: str = "") -> Rollout:
    """Hold the weight where it is; no analysis runs until resumed."""
    reason = check_reason(reason)
    rollout = _locked(rollout_id)
    if rollout.state != RolloutState.PROGRESSING:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}: only a progressing rollout is paused")
    rollout.state = RolloutState.PAUSED
    _record(rollout, "paused", by=by, reason=reason, actor=actor)
    return rollout


@transaction.atomic
def rollout_resume(*, rollout_id: int, by, reason: str, now=None) -> Rollout:
    """paused → progressing; the step's window starts again now (a fresh analysis)."""
    reason = check_reason(reason)
    rollout = _locked(rollout_id)
    if rollout.state != RolloutState.PAUSED:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}, not paused")
    refusal = drills.drill_refusal(rollout.stable, now=now or timezone.now())
    if refusal:
        raise RolloutError(f"rollout {rollout.pk} cannot resume: {refusal}")
    rollout.state = RolloutState.PROGRESSING
    rollout.step_started_at = now or timezone.now()
    rollout.awaiting_confirm = False
    _record(rollout, "resumed", by=by, reason=reason)
    return rollout


@transaction.atomic
def rollout_rollback(
    *, rollout_id: int, by=None, reason: str, actor: str = "", now=None, withdraw_tasks: bool = True
) -> Rollout:
    """One step back to stable: the candidate's weight is 0 from this commit on (the
    next route answers stable, the gate denies the candidate's tasks "not routed"),
    its held and registered tasks are denied with this reason, its running ones get
    `stop` callbacks. Operators and the committee; automatic on a failed analysis
    or a revoked candidate."""
    reason = check_reason(reason)
    rollout = _locked(rollout_id)
    if rollout.state not in ACTIVE_STATES:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}: only an active rollout is rolled back")
    return _withdraw(
        rollout,
        RolloutState.ROLLED_BACK,
        "rolled_back",
        by=by,
        reason=reason,
        actor=actor,
        now=now,
        tasks=withdraw_tasks,
    )


@transaction.atomic
def rollout_abort(*, rollout_id: int, by=None, reason: str, actor: str = "", now=None) -> Rollout:
    """Stop an active rollout (e.g. its candidate was demoted): as a rollback, with
    the state `aborted`."""
    reason = check_reason(reason)
    rollout = _locked(rollout_id)
    if rollout.state not in ACTIVE_STATES:
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}: only an active rollout is aborted")
    return _withdraw(rollout, RolloutState.ABORTED, "aborted", by=by, reason=reason, actor=actor, now=now)


def rollout_abort_for_version(model_version, reason: str, *, by=None, actor: str = "") -> Rollout | None:
    """Public, for the apps above (assurance): abort the active rollout whose
    candidate is `model_version` (a ModelVersion or its id), with `reason`.
    Returns the aborted rollout, or None when the version is no active rollout's
    candidate. Atomic; safe to call twice."""
    version_id = getattr(model_version, "pk", model_version)
    with transaction.atomic():
        found = (
            Rollout.objects.select_for_update()
            .filter(candidate_id=version_id, state__in=ACTIVE_STATES)
            .values_list("pk", flat=True)
            .first()
        )
        if found is None:
            return None
        return rollout_abort(rollout_id=found, by=by, reason=reason, actor=actor)


def rollback_for_version(version: ModelVersion, *, reason: str, by=None, withdraw_tasks: bool = True) -> Rollout | None:
    """The candidate's approval is gone (revoked, rejected, lapsed): its active
    rollout is rolled back, inside the caller's transaction. `withdraw_tasks`
    False when the caller denies and stops the version's tasks itself (a
    revocation), so no task gets a second callback."""
    found = (
        Rollout.objects.select_for_update()
        .filter(candidate_id=version.pk, state__in=ACTIVE_STATES)
        .values_list("pk", flat=True)
        .first()
    )
    if found is None:
        return None
    return rollout_rollback(rollout_id=found, by=by, reason=reason, withdraw_tasks=withdraw_tasks)


def _withdraw(
    rollout: Rollout, state: str, event: str, *, by, reason: str, actor: str, now, tasks: bool = True
) -> Rollout:
    now = now or timezone.now()
    before = rollout.weight
    rollout.state = state
    rollout.weight = 0
    rollout.awaiting_confirm = False
    rollout.finished_at = now
    _record(rollout, event, by=by, reason=reason, actor=actor, weight_before=before)
    if not tasks:
        return rollout
    ai_model = rollout.candidate.ai_model
    why = f"not routed: rollout {rollout.pk} of {rollout.family} was {event.replace('_', ' ')}: {reason}"
    denial = GateDecision("deny", why, ROUTE_POLICY, None)
    task_actor = _actor(by)
    denied = []
    for task_id in ExecutionTask.objects.filter(status=TaskStatus.REGISTERED, ai_model=ai_model).values_list(
        "pk", flat=True
    ):
        task = task_gate_withdraw(task_id=task_id, decision=denial, actor=task_actor, reason=why)
        if task is not None:
            denied.append(task)
    for task_id in ExecutionTask.objects.filter(status=TaskStatus.HELD, ai_model=ai_model).values_list("pk", flat=True):
        task = task_gate_update(task_id=task_id, decision=denial, actor=task_actor, reason=why)
        if task is not None:
            denied.append(task)
    review_services.task_callbacks_queue(denied, CallbackDelivery.Type.DENIED, case=None, reason=why)
    running = list(ExecutionTask.objects.filter(status=TaskStatus.RUNNING, ai_model=ai_model))
    review_services.task_callbacks_queue(running, CallbackDelivery.Type.STOP, case=None, reason=why, decision="deny")
    return rollout

"""Every state change of a model version goes through one function here:
registration (with the criteria's decision and, for a hold, a committee case),
the committee's decisions arriving by signal, and retirement.

Each write is atomic, locks the row it changes, records who and why in
history and on the audit chain, and replaces the gate's rules version so that
every process's cached model answers are reloaded.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.history import save_with_history
from core.jobs import enqueue_on_commit
from deployments import criteria, rollouts
from deployments.errors import InvalidVersion, ModelError, NotAllowed, RolloutError, VersionConflict  # noqa: F401
from deployments.models import ModelVersion, RuleAction, VersionStatus, subject_ref, version_id_of
from reviews import services as review_services
from reviews.models import CallbackDelivery, Case
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor

logger = logging.getLogger(__name__)

CASE_KIND = "model"
# Model cases sit in the queue with reports of the "needs review" band (severity 30).
CASE_SEVERITY = 30
MAX_METRICS = 50
FAMILY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
URI_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


@dataclass(frozen=True)
class VersionInput:
    family: str
    ai_model: str
    artifact_uri: str
    artifact_sha256: str
    health_url: str = ""
    evaluation: dict[str, float] = field(default_factory=dict)
    notes: str = ""


# Fields that make two registrations of one ai_model "the same version".
REGISTRATION_FIELDS = ("family", "artifact_uri", "artifact_sha256", "health_url", "evaluation", "notes")


def _text(value: Any, name: str, *, max_length: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidVersion(f"{name}: must be a string", field=name)
    if "\x00" in value:
        raise InvalidVersion(f"{name}: must not contain a NUL (\\u0000) character", field=name)
    if required and not value.strip():
        raise InvalidVersion(f"{name}: must not be empty", field=name)
    if len(value) > max_length:
        raise InvalidVersion(f"{name}: at most {max_length} characters", field=name)
    return value


def clean_input(data: VersionInput) -> VersionInput:
    """The input as stored, or InvalidVersion naming the first bad field."""
    family = _text(data.family, "family", max_length=100)
    if not FAMILY.match(family):
        raise InvalidVersion(
            "family: letters, digits, '.', '_' and '-', starting with a letter or digit", field="family"
        )
    ai_model = _text(data.ai_model, "ai_model", max_length=200)
    if ai_model != ai_model.strip():
        raise InvalidVersion("ai_model: no leading or trailing spaces", field="ai_model")
    uri = _text(data.artifact_uri, "artifact_uri", max_length=1000)
    if not URI_SCHEME.match(uri):
        raise InvalidVersion(
            "artifact_uri: a URI with a scheme, e.g. s3://bucket/model.safetensors", field="artifact_uri"
        )
    sha = _text(data.artifact_sha256, "artifact_sha256", max_length=64).lower()
    if not SHA256.match(sha):
        raise InvalidVersion("artifact_sha256: 64 hexadecimal characters (a SHA-256)", field="artifact_sha256")
    health_url = _text(data.health_url or "", "health_url", max_length=500, required=False)
    if health_url:
        parts = urlsplit(health_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidVersion("health_url: an http or https URL", field="health_url")
    if not isinstance(data.evaluation, dict):
        raise InvalidVersion("evaluation: an object of metric names to numbers", field="evaluation")
    if len(data.evaluation) > MAX_METRICS:
        raise InvalidVersion(f"evaluation: at most {MAX_METRICS} metrics", field="evaluation")
    evaluation = {}
    for name, value in data.evaluation.items():
        where = f"evaluation.{name}"
        if not isinstance(name, str) or not criteria.METRIC_NAME.match(name):
            raise InvalidVersion(
                f"evaluation: metric name {str(name)[:70]!r} must be lower case letters, digits and _ (≤ 64)",
                field="evaluation",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidVersion(f"{where}: must be a finite number", field=where)
        if abs(value) > 1e15:
            raise InvalidVersion(f"{where}: out of range (|x| ≤ 1e15)", field=where)
        evaluation[name] = float(value)
    notes = _text(data.notes or "", "notes", max_length=10_000, required=False)
    return VersionInput(
        family=family,
        ai_model=ai_model,
        artifact_uri=uri,
        artifact_sha256=sha,
        health_url=health_url,
        evaluation=evaluation,
        notes=notes,
    )


def _differences(version: ModelVersion, data: VersionInput) -> list[str]:
    return [name for name in REGISTRATION_FIELDS if getattr(version, name) != getattr(data, name)]


def _same_version(version: ModelVersion, data: VersionInput) -> ModelVersion:
    differences = _differences(version, data)
    if differences:
        raise VersionConflict(
            f"model version {version.ai_model!r} is already registered with a different {', '.join(differences)}; "
            "register a changed model as a new version",
            fields=differences,
            id=version.pk,
        )
    return version


def _chain(kind: str, version: ModelVersion, *, actor: str, **data) -> None:
    audit_append(kind=kind, subject=f"model_version:{version.pk}", actor=actor, data=data)


def _save(version: ModelVersion, *, actor: Actor, reason: str) -> None:
    save_with_history(
        version, reason=reason, user=actor.user, history_api_key_id=actor.api_key.pk if actor.api_key else None
    )


def version_register(*, actor: Actor, data: VersionInput) -> tuple[ModelVersion, bool]:
    """Register a model version and let the criteria decide: blocked (deny), or
    pending review with a committee case (hold).

    Idempotent on `ai_model`: the same fields again return the stored version
    (created=False); other fields raise VersionConflict naming them. Bad input
    raises InvalidVersion naming the field, with nothing stored."""
    data = clean_input(data)
    existing = ModelVersion.objects.filter(ai_model=data.ai_model).first()
    if existing is not None:
        return _same_version(existing, data), False
    try:
        with transaction.atomic():
            version = _store(data, actor=actor)
    except IntegrityError:
        existing = ModelVersion.objects.filter(ai_model=data.ai_model).first()
        if existing is None:
            raise
        return _same_version(existing, data), False
    return version, True


def _store(data: VersionInput, *, actor: Actor) -> ModelVersion:
    try:
        verdict = criteria.evaluate(family=data.family, evaluation=data.evaluation)
    except criteria.BrokenRule as exc:
        raise NotAllowed(f"the model-version criteria cannot be evaluated right now: {exc}") from exc
    now = timezone.now()
    blocked = verdict.action == RuleAction.DENY
    version = ModelVersion(
        family=data.family,
        ai_model=data.ai_model,
        artifact_uri=data.artifact_uri,
        artifact_sha256=data.artifact_sha256,
        health_url=data.health_url,
        evaluation=data.evaluation,
        notes=data.notes,
        status=VersionStatus.BLOCKED if blocked else VersionStatus.PENDING_REVIEW,
        status_reason=verdict.reason,
        status_changed_at=now,
        registered_at=now,
        registered_by_key=actor.api_key,
        registered_by_user=actor.user if getattr(actor.user, "pk", None) else None,
        decision=verdict.action,
        decision_reason=verdict.reason,
        decision_policy=verdict.policy,
        decision_values=verdict.values,
    )
    who = actor_name(user=actor.user, api_key=actor.api_key)
    _save(version, actor=actor, reason=f"registered; criteria: {verdict.action} ({verdict.policy})")
    if not blocked:
        case = review_services.subject_case_open(
            kind=CASE_KIND,
            subject_ref=subject_ref(version.pk),
            title=f"Model version {data.ai_model} ({data.family})",
            reason=verdict.reason,
            quorum=verdict.quorum,
            approval_valid_hours=verdict.approval_valid_hours,
            sla_hours=verdict.sla_hours,
            rule_name=verdict.policy,
            severity=CASE_SEVERITY,
            actor=who,
        )
        version.case = case
        _save(version, actor=actor, reason=f"review case {case.pk} opened")
    _chain(
        "model_version.registered",
        version,
        actor=who,
        ai_model=version.ai_model,
        family=version.family,
        artifact_uri=version.artifact_uri,
        artifact_sha256=version.artifact_sha256,
        evaluation=version.evaluation,
        decision=verdict.action,
        policy=verdict.policy,
        values=verdict.values,
        reason=verdict.reason,
        case=version.case_id,
        status=version.status,
    )
    review_services.rules_changed(why=f"model version {version.ai_model} registered: {version.status}")
    enqueue_on_commit("deployments.jobs.redecide_unregistered", version.ai_model)
    return version


# ------------------------------------------------------ decisions by the committee

# What a case event makes of the version (None: nothing changes).
EVENT_STATUS = {
    "approved": VersionStatus.APPROVED,
    "rejected": VersionStatus.REJECTED,
    "revoked": VersionStatus.REVOKED,
    "expired": VersionStatus.PENDING_REVIEW,
    "reopened": VersionStatus.PENDING_REVIEW,
}


def on_case_changed(sender, *, case: Case, event: str, by=None, **kwargs) -> None:
    """reviews.signals.case_changed receiver, inside the transaction that changed
    the case: the version follows its case (approved, rejected, revoked, back to
    review), so the gate's next answer and the case agree or neither commits."""
    if case.kind != CASE_KIND or event not in EVENT_STATUS:
        return
    version_id = version_id_of(case.subject_ref)
    version = ModelVersion.objects.select_for_update().filter(pk=version_id, case_id=case.pk).first()
    if version is None or version.status == VersionStatus.RETIRED:
        return
    status = EVENT_STATUS[event]
    if event == "approved":
        reason = f"approved by the committee (case {case.pk}) until {case.approved_until:%Y-%m-%d %H:%M} UTC"
        version.approved_until = case.approved_until
    elif event == "rejected":
        reason = f"rejected by the committee (case {case.pk}): {case.rationale}"
    elif event == "revoked":
        reason = f"approval revoked (case {case.pk})"
    elif event == "expired":
        reason = f"approval lapsed; continuing review on case {case.pk}"
    else:
        reason = f"back in review on case {case.pk}"
    _set_status(version, status=status, reason=reason, actor=Actor(user=by), case=case)
    if event == "revoked":
        _withdraw(version, case=case, reason=reason, actor=Actor(user=by))
    if status != VersionStatus.APPROVED:
        # A candidate whose approval is gone is rolled back at once (in this transaction).
        rollouts.rollback_for_version(
            version, reason=f"candidate {version.ai_model}: {reason}", by=by, withdraw_tasks=event != "revoked"
        )


def _set_status(version: ModelVersion, *, status: str, reason: str, actor: Actor, case: Case | None = None) -> None:
    before = version.status
    version.status = status
    version.status_reason = reason
    version.status_changed_at = timezone.now()
    _save(version, actor=actor, reason=reason)
    _chain(
        f"model_version.{status}",
        version,
        actor=actor_name(user=actor.user, api_key=actor.api_key),
        ai_model=version.ai_model,
        before=before,
        status=status,
        reason=reason,
        case=case.pk if case is not None else version.case_id,
        approved_until=version.approved_until.isoformat() if version.approved_until else None,
    )
    review_services.rules_changed(why=f"model version {version.ai_model}: {before} → {status}")


def _withdraw(version: ModelVersion, *, case: Case, reason: str, actor: Actor) -> None:
    """A revoked version runs nothing more: tasks allowed on it but not started are
    denied (each once, under its row lock), and its running tasks get `stop`
    callbacks (those approved through the case itself get theirs from reviews'
    revocation already)."""
    from deployments.gate import MODEL_POLICY
    from tasks.gate import GateDecision
    from tasks.services import task_gate_withdraw

    denial = GateDecision(
        "deny", f"model version {version.ai_model!r} was revoked: {reason}", MODEL_POLICY, str(case.pk)
    )
    denied = []
    waiting = ExecutionTask.objects.filter(status=TaskStatus.REGISTERED, ai_model=version.ai_model)
    for task_id in waiting.values_list("pk", flat=True):
        task = task_gate_withdraw(
            task_id=task_id, decision=denial, actor=actor, reason=f"model version revoked: {reason}"
        )
        if task is not None:
            denied.append(task)
    review_services.task_callbacks_queue(denied, CallbackDelivery.Type.DENIED, case=case, reason=reason)
    running = list(
        ExecutionTask.objects.filter(status=TaskStatus.RUNNING, ai_model=version.ai_model).filter(
            Q(gate_case__isnull=True) | ~Q(gate_case=str(case.pk))
        )
    )
    review_services.task_callbacks_queue(running, CallbackDelivery.Type.STOP, case=case, reason=reason)


@transaction.atomic
def version_retire(*, version_id: int, by, reason: str) -> ModelVersion:
    """An operator retires a version nobody should run any more: new tasks on it are
    denied. A version waiting for the committee is decided first."""
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise InvalidVersion("reason: say why, in a sentence", field="reason")
    version = ModelVersion.objects.select_for_update().get(pk=version_id)
    if version.status == VersionStatus.RETIRED:
        raise NotAllowed(f"model version {version.ai_model!r} is already retired")
    if version.status == VersionStatus.PENDING_REVIEW:
        raise NotAllowed(
            f"model version {version.ai_model!r} is waiting for the committee (case {version.case_id}); "
            "it is retired once decided"
        )
    _set_status(version, status=VersionStatus.RETIRED, reason=f"retired by {by}: {reason}", actor=Actor(user=by))
    return version


def rollout_abort_for_version(model_version, reason: str, *, by=None, actor: str = ""):
    """Public, for the apps above deployments (assurance): abort the active rollout
    whose candidate is `model_version` (a ModelVersion or its id) because it was
    demoted, with `reason` (at least 10 characters; on the rollout's history and
    the audit chain as `rollout.aborted`). The candidate goes to 0% at once, its
    held and registered tasks are denied with the reason, its running ones get
    `stop` callbacks. Returns the Rollout, or None when the version is no active
    rollout's candidate (so it is safe to call for any version, and twice)."""
    return rollouts.rollout_abort_for_version(model_version, reason, by=by, actor=actor)


def redecide_all_unregistered() -> int:
    """Safety net (periodic): tasks still held as unregistered whose version is
    registered now (a registration that raced the job after a version's commit)."""
    from deployments.gate import UNREGISTERED_POLICY

    held = ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_policy=UNREGISTERED_POLICY)
    names = set(held.values_list("ai_model", flat=True).distinct())
    registered = ModelVersion.objects.filter(ai_model__in=[n for n in names if n]).values_list("ai_model", flat=True)
    return sum(redecide_unregistered(ai_model=name) for name in registered)


def redecide_unregistered(*, ai_model: str) -> int:
    """Tasks held because `ai_model` was not registered get the whole gate's answer
    now that it is (reviews' held_tasks_decide_again: each once, under its row lock)."""
    from deployments.gate import UNREGISTERED_POLICY

    return review_services.held_tasks_decide_again(
        policy=UNREGISTERED_POLICY, ai_model=ai_model, why=f"model version {ai_model} registered"
    )


# ---------------------------------------------------------- hooks for reviews


def case_submitters(case: Case) -> set[int]:
    """Who registered the version: its API key's owner and the user; they may not vote on it."""
    version = (
        ModelVersion.objects.filter(pk=version_id_of(case.subject_ref)).select_related("registered_by_key").first()
    )
    if version is None:
        return set()
    ids = {version.registered_by_user_id}
    if version.registered_by_key is not None:
        ids.add(version.registered_by_key.owner_id)
    return {i for i in ids if i is not None}


def approval_refusal(case: Case) -> str | None:
    """A retired version is not approved again."""
    status = ModelVersion.objects.filter(pk=version_id_of(case.subject_ref)).values_list("status", flat=True).first()
    if status == VersionStatus.RETIRED:
        return "the model version is retired"
    return None

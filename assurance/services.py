"""Writes of assurance: recording a run (from a tool's file or from FSAR's own
task data), the verdict's consequences (a committee case for an inconclusive
run, demotion and restoration of the model version), and the overdue sweep.
Each function is atomic; every run and every demotion is on the audit chain."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from assurance import criteria, importers, selectors
from assurance.models import AuditEvidence, AuditRun, AuditSuite, Source, Verdict, VersionStanding, run_id_of
from assurance.signals import version_demoted, version_restored
from audit.chain import actor_name, audit_append
from core.errors import Refused
from core.history import save_with_history
from core.jobs import enqueue_on_commit
from deployments.models import ModelVersion, version_id_of
from reviews import services as review_services
from reviews.models import WAITING_STATUSES, Case

CASE_KIND = "audit"
MODEL_CASE_KIND = "model"  # deployments' model-version cases
CASE_SEVERITY = 30


class AuditError(Refused):
    """A request the audit rules refuse (core.errors.Refused), naming the field or line at fault."""

    status_code = 422

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message, **({"field": field} if field else {}))
        self.field = field


class BadRequest(AuditError):
    status_code = 400


class UnsupportedMediaType(AuditError):
    status_code = 415


class NotFound(AuditError):
    status_code = 404


class ReportTooLarge(AuditError):
    status_code = 413


class Malformed(AuditError):
    status_code = 422


@dataclass(frozen=True)
class Sender:
    api_key: object | None = None
    user: object | None = None

    @property
    def name(self) -> str:
        if self.api_key is None and self.user is None:
            return "system"
        return actor_name(user=self.user, api_key=self.api_key)


def max_report_bytes() -> int:
    return settings.AUDITS_MAX_REPORT_BYTES


def _suite(name) -> AuditSuite:
    suite = AuditSuite.objects.filter(name=name).first() if isinstance(name, str) else None
    if suite is None:
        raise NotFound(f"suite: no audit suite is named {str(name)[:100]!r}", field="suite")
    if not suite.enabled:
        raise AuditError(f"suite: {suite.name!r} is disabled", field="suite")
    return suite


def _version(ai_model) -> ModelVersion:
    version = ModelVersion.objects.filter(ai_model=ai_model).first() if isinstance(ai_model, str) else None
    if version is None:
        raise NotFound(
            f"ai_model: no model version {str(ai_model)[:200]!r} is registered (POST /api/v1/models/versions)",
            field="ai_model",
        )
    return version


def verdict_of(parsed: importers.Parsed, suite: AuditSuite) -> tuple[str, list[dict], str]:
    """error (a grading or tool error) > fail (a criterion missed) > inconclusive
    (the run did not finish, or a metric is missing) > pass."""
    verdict, results = criteria.evaluate(suite.criteria, parsed.figures)
    missed = [criteria.describe(r) for r in results if r["outcome"] != "met"]
    if parsed.error:
        return Verdict.ERROR, results, parsed.error
    if verdict == Verdict.FAIL:
        return verdict, results, "; ".join(missed)
    if parsed.incomplete:
        return Verdict.INCONCLUSIVE, results, parsed.incomplete
    if verdict == Verdict.INCONCLUSIVE:
        return verdict, results, "; ".join(missed)
    return Verdict.PASS, results, "every criterion met"


def run_submit(
    *,
    suite: str,
    ai_model: str,
    fmt: str,
    content: bytes,
    filename: str = "",
    sender: Sender,
    now: datetime | None = None,
) -> tuple[AuditRun, bool]:
    """Record a promptfoo or garak result for (suite, version): (run, created).
    The same file again for the same suite and version returns the stored run.
    Bad input raises an AuditError naming the field or line; nothing is stored."""
    suite_row = _suite(suite)
    version = _version(ai_model)
    if fmt not in (Source.PROMPTFOO, Source.GARAK):
        raise AuditError("format: must be promptfoo or garak", field="format")
    if suite_row.source != fmt:
        raise AuditError(
            f"format: suite {suite_row.name!r} takes {suite_row.source} results, not {fmt}", field="format"
        )
    if len(content) > max_report_bytes():
        raise ReportTooLarge(
            f"report: {len(content)} bytes is over the limit of {max_report_bytes()} bytes", field="report"
        )
    if not content.strip():
        raise Malformed("report: the file is empty", field="report")
    sha = hashlib.sha256(content).hexdigest()
    existing = AuditRun.objects.filter(suite=suite_row, model_version=version, evidence_sha256=sha).first()
    if existing is not None:
        return existing, False
    try:
        parsed = importers.parse(fmt, content)
    except importers.MalformedReport as exc:
        raise Malformed(f"report: {exc}", field="report") from None
    try:
        with transaction.atomic():
            run = _record(suite_row, version, parsed, sha=sha, size=len(content), fmt=fmt, sender=sender, now=now)
            AuditEvidence.objects.create(run=run, filename=filename[:255], content=content)
    except IntegrityError:
        existing = AuditRun.objects.filter(suite=suite_row, model_version=version, evidence_sha256=sha).first()
        if existing is None:
            raise
        return existing, False
    return run, True


def _record(
    suite: AuditSuite,
    version: ModelVersion,
    parsed: importers.Parsed,
    *,
    sha: str,
    size: int,
    fmt: str,
    sender: Sender,
    now: datetime | None = None,
) -> AuditRun:
    now = now or timezone.now()
    verdict, results, reason = verdict_of(parsed, suite)
    before = next((s for s in selectors.standings(version, [suite])), None)
    run = AuditRun(
        suite=suite,
        model_version=version,
        ai_model=version.ai_model,
        due_at=before.due_at if before else None,
        received_at=now,
        verdict=verdict,
        verdict_reason=reason,
        figures=parsed.figures,
        results=results,
        details=parsed.details,
        format=fmt,
        tool_version=parsed.tool_version,
        skipped_entries=parsed.skipped_entries,
        evidence_sha256=sha,
        evidence_size=size,
        sent_by_key=sender.api_key,
        sent_by_user=sender.user,
        sender=sender.name,
    )
    save_with_history(
        run,
        reason=f"{suite.name}: {verdict}",
        user=sender.user,
        history_api_key_id=sender.api_key.pk if sender.api_key is not None else None,
    )
    audit_append(
        kind="audit_run.recorded",
        subject=run.subject_ref,
        actor=sender.name,
        data={
            "suite": suite.name,
            "ai_model": version.ai_model,
            "verdict": verdict,
            "reason": reason,
            "figures": parsed.figures,
            "evidence_sha256": sha,
            "tool_version": parsed.tool_version,
        },
    )
    waiting = (
        AuditRun.objects.filter(suite=suite, model_version=version, case__status__in=WAITING_STATUSES)
        .exclude(pk=run.pk)
        .values_list("case_id", flat=True)
        .first()
    )
    if verdict == Verdict.INCONCLUSIVE and waiting:
        # One waiting case per suite and version (a built-in suite on an idle version
        # would otherwise open one every time it is due): the committee decides that one.
        run.verdict_reason = f"{reason} (case {waiting} is already waiting on this suite and version)"
        save_with_history(run, reason="inconclusive; a case is already waiting", user=sender.user)
    elif verdict == Verdict.INCONCLUSIVE:
        case = review_services.subject_case_open(
            kind=CASE_KIND,
            subject_ref=run.subject_ref,
            title=f"Inconclusive audit {suite.name} on {version.ai_model}",
            reason=f"audit suite {suite.name!r} on {version.ai_model!r} is inconclusive: {reason}. "
            "Approving counts as a pass until the next due time; rejecting counts as a fail.",
            quorum=settings.AUDITS_CASE_QUORUM,
            rule_name=f"audit:{suite.name}"[:100],
            severity=CASE_SEVERITY,
            by=sender.user,
            actor=sender.name,
        )
        run.case = case
        save_with_history(run, reason=f"case {case.pk} opened", user=sender.user)
    review_services.rules_changed(why=f"audit run {run.pk}")
    standing_refresh(version, actor=sender.name, now=now)
    return run


def standing_refresh(version: ModelVersion, *, actor: str = "system", now: datetime | None = None) -> bool:
    """Record a change of the version's demotion, once: the chain entry
    (`model_version.demoted` / `.restored`), the operators' mail, the signal; on
    restoration, the tasks the audits held are decided again. True if it changed."""
    now = now or timezone.now()
    action, reason = selectors.demotion(version, now=now)
    demoted = bool(reason)
    standing, _ = VersionStanding.objects.select_for_update().get_or_create(model_version=version)
    if standing.demoted == demoted and (not demoted or standing.reason == reason):
        return False
    was = standing.demoted
    standing.demoted, standing.reason, standing.changed_at = demoted, reason, now
    standing.save()
    if demoted == was:  # still demoted, for another reason: no new event
        return False
    event = "demoted" if demoted else "restored"
    why = reason or "every required audit suite passed and none is overdue"
    audit_append(
        kind=f"model_version.{event}",
        subject=f"model_version:{version.pk}",
        actor=actor,
        data={"ai_model": version.ai_model, "reason": why, "action": action or None},
    )
    enqueue_on_commit(
        "assurance.jobs.mail_operators",
        f"[FSAR] Model version {version.ai_model} {event} by its audits",
        f"Model version {version.ai_model} was {event} at {now:%Y-%m-%d %H:%M} UTC.\n\n{why}\n",
    )
    if demoted:
        version_demoted.send(sender=ModelVersion, model_version=version, reason=why)
    else:
        version_restored.send(sender=ModelVersion, model_version=version, reason=why)
        enqueue_on_commit("assurance.jobs.release_held", version.ai_model)
    review_services.rules_changed(why=f"model version {version.ai_model} {event}")
    return True


def release_held(ai_model: str) -> int:
    """Tasks the audits held on `ai_model`, decided again by the whole gate."""
    from assurance.gate import AUDIT_POLICY

    return review_services.held_tasks_decide_again(
        policy=AUDIT_POLICY, why="the model version's audits passed", ai_model=ai_model
    )


def on_case_changed(sender, *, case: Case, event: str, by=None, **kwargs) -> None:
    """An inconclusive run's case: approved → a pass until the next due time,
    rejected → a fail; revoked or reopened → undecided again."""
    if case.kind != CASE_KIND:
        return
    run = AuditRun.objects.select_for_update().filter(pk=run_id_of(case.subject_ref), case_id=case.pk).first()
    if run is None:
        return
    decided = {"approved": Verdict.PASS, "rejected": Verdict.FAIL}.get(event, "")
    if decided == run.decided_verdict:
        return
    run.decided_verdict = decided
    save_with_history(run, reason=f"case {case.pk} {event}", user=by)
    audit_append(
        kind="audit_run.decided",
        subject=run.subject_ref,
        actor=actor_name(user=by),
        data={"case": case.pk, "event": event, "verdict": decided or run.verdict},
    )
    review_services.rules_changed(why=f"audit run {run.pk} {event}")
    standing_refresh(run.model_version, actor=actor_name(user=by))


def case_submitters(case: Case) -> set[int]:
    run = AuditRun.objects.filter(pk=run_id_of(case.subject_ref)).select_related("sent_by_key").first()
    if run is None:
        return set()
    ids = {run.sent_by_user_id, run.sent_by_key.owner_id if run.sent_by_key else None}
    return {i for i in ids if i is not None}


def model_approval_refusal(case: Case) -> str | None:
    """A model version's case is not approved until every required suite has passed."""
    version = ModelVersion.objects.filter(pk=version_id_of(case.subject_ref)).first()
    if version is None:
        return None
    missing = selectors.missing_passes(version)
    if missing:
        return "needs a pass of every required audit suite; missing: " + ", ".join(missing)
    return None


def suites_changed() -> None:
    """reviews.governed's `applied` and the admin's direct saves: the gate reloads."""
    review_services.rules_changed(why="audit suites changed")


# Built-in suites -------------------------------------------------------------


def builtin_figures(version: ModelVersion, suite: AuditSuite, *, now: datetime) -> dict:
    return selectors.builtin_figures(
        ai_model=version.ai_model, since=now - timedelta(hours=suite.window_hours), until=now
    )


def builtin_run(suite: AuditSuite, version: ModelVersion, *, now: datetime | None = None) -> AuditRun:
    """Measure a built-in suite for a version from FSAR's task data, and record it."""
    now = now or timezone.now()
    figures = builtin_figures(version, suite, now=now)
    parsed = importers.Parsed(figures=figures, tool_version="fsar builtin")
    if not figures.get("task_count"):
        parsed.incomplete = f"no finished tasks on {version.ai_model} in the last {suite.window_hours} h"
    evidence = importers_json(figures, suite=suite, version=version, now=now)
    sha = hashlib.sha256(evidence).hexdigest()
    with transaction.atomic():
        run = _record(suite, version, parsed, sha=sha, size=len(evidence), fmt=Source.BUILTIN, sender=Sender(), now=now)
        AuditEvidence.objects.create(run=run, filename="builtin.json", content=evidence)
    return run


def importers_json(figures: dict, *, suite: AuditSuite, version: ModelVersion, now: datetime) -> bytes:
    import json

    doc = {
        "suite": suite.name,
        "ai_model": version.ai_model,
        "measured_at": now.isoformat(),
        "window_hours": suite.window_hours,
        "figures": figures,
    }
    return json.dumps(doc, sort_keys=True).encode()


def sweep(*, now: datetime | None = None) -> dict:
    """The periodic audit job: run built-in suites that are due, then record the
    demotion (or restoration) of every approved version whose standing changed
    (an overdue suite demotes with no run arriving)."""
    now = now or timezone.now()
    ran = changed = 0
    suites = list(selectors.suites())
    for version in ModelVersion.objects.filter(status="approved"):
        for suite in selectors.suites_for(version, all_suites=suites):
            if suite.source != Source.BUILTIN:
                continue
            standing = next(iter(selectors.standings(version, [suite])), None)
            last = (
                AuditRun.objects.filter(suite=suite, model_version=version)
                .values_list("received_at", flat=True)
                .first()
            )
            if standing is None or (last is not None and criteria.next_due(suite.schedule, last) > now):
                continue
            if last is None and standing.due_at > now:
                continue
            builtin_run(suite, version, now=now)
            ran += 1
        with transaction.atomic():
            changed += standing_refresh(version, now=now)
    return {"builtin_runs": ran, "changed": changed}

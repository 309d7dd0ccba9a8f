"""Scheduled adversarial audits: suites (what is audited, from which tool, against
which criteria, how often) and their runs (one verdict per suite and model
version, with the evidence as received). Suites are policy: a change to a
required one goes through the committee's policy-change review (reviews.governed)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from tasks.models import ActorHistory, ApiKey


class Source(models.TextChoices):
    BUILTIN = "builtin", "Built in (FSAR's task data)"
    PROMPTFOO = "promptfoo", "promptfoo results.json"
    GARAK = "garak", "garak report.jsonl"


class Action(models.TextChoices):
    HOLD = "hold", "Hold new tasks"
    DENY = "deny", "Deny new tasks"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    ERROR = "error", "Error"


# Verdicts that demote a version (a tool or grading error gates like a failure).
FAILING = (Verdict.FAIL, Verdict.ERROR)


class AuditSuite(models.Model):
    """One audit: which versions (family and/or ai_model glob; blank matches all),
    where its results come from, the criteria a run must meet, and its schedule."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    family_glob = models.CharField(max_length=200, blank=True, help_text="Shell-style glob on the family, e.g. coder*.")
    ai_model_glob = models.CharField(
        max_length=200, blank=True, help_text="Shell-style glob on the exact version string, e.g. llama-4-*."
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    criteria = models.JSONField(
        default=list,
        help_text='A list of {"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.02}.',
    )
    schedule = models.CharField(max_length=100, help_text="Cron syntax (UTC), e.g. 0 3 * * * for daily at 03:00.")
    grace_minutes = models.PositiveIntegerField(
        default=24 * 60, help_text="How long past its due time a run may arrive before the suite is overdue."
    )
    window_hours = models.PositiveIntegerField(default=24, help_text="Built-in suites: the task window measured.")
    required = models.BooleanField(default=True, help_text="A required suite gates the version's tasks.")
    action = models.CharField(max_length=4, choices=Action.choices, default=Action.HOLD)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "audit suite"

    def __str__(self) -> str:
        return self.name


class AuditRun(models.Model):
    """One result of a suite for one model version. Never edited after it is
    recorded, except that an inconclusive run's committee case decides it."""

    suite = models.ForeignKey(AuditSuite, on_delete=models.PROTECT, related_name="runs")
    model_version = models.ForeignKey("deployments.ModelVersion", on_delete=models.PROTECT, related_name="+")
    ai_model = models.CharField(max_length=200)
    due_at = models.DateTimeField(null=True, blank=True, help_text="The due time this run answered.")
    received_at = models.DateTimeField(default=timezone.now)
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    verdict_reason = models.TextField(blank=True)
    figures = models.JSONField(default=dict, help_text="The metrics derived from the evidence.")
    results = models.JSONField(default=list, help_text="Each criterion with the figure it was compared to.")
    details = models.JSONField(default=dict, help_text="garak's per-probe table, promptfoo's failed tests.")
    format = models.CharField(max_length=10, choices=Source.choices)
    tool_version = models.CharField(max_length=100, blank=True)
    skipped_entries = models.PositiveIntegerField(default=0)
    evidence_sha256 = models.CharField(max_length=64)
    evidence_size = models.PositiveIntegerField(default=0)
    sent_by_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sent_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender = models.CharField(max_length=200, blank=True, help_text="Who sent it, as the audit chain names them.")
    case = models.ForeignKey(
        "reviews.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Inconclusive."
    )
    # An inconclusive run decided by its case: pass (until the next due time) or fail.
    decided_verdict = models.CharField(max_length=12, choices=Verdict.choices, blank=True)
    history = HistoricalRecords(bases=[ActorHistory])

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["model_version", "suite", "-received_at"], name="assurance_run_version_suite"),
            models.Index(fields=["suite", "-received_at"], name="assurance_run_suite"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["suite", "model_version", "evidence_sha256"], name="assurance_run_same_evidence_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.suite} on {self.ai_model}: {self.effective_verdict}"

    @property
    def effective_verdict(self) -> str:
        return self.decided_verdict or self.verdict

    @property
    def subject_ref(self) -> str:
        return subject_ref(self.pk)


class AuditEvidence(models.Model):
    """The file exactly as received (kept apart from the run so that reading runs,
    and their history, never carries megabytes)."""

    run = models.OneToOneField(AuditRun, on_delete=models.CASCADE, primary_key=True, related_name="evidence")
    filename = models.CharField(max_length=255, blank=True)
    content = models.BinaryField()

    def __str__(self) -> str:
        return f"evidence of audit run {self.run_id}"


class VersionStanding(models.Model):
    """Per model version: whether the audits demote it now. Written when the state
    changes (a run, a case decision, the overdue sweep), so a demotion and a
    restoration are each recorded once (chain entry, mail, signal)."""

    model_version = models.OneToOneField(
        "deployments.ModelVersion", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    demoted = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"version {self.model_version_id}: {'demoted' if self.demoted else 'in good standing'}"


SUBJECT_PREFIX = "audit-run:"


def subject_ref(run_id: int) -> str:
    return f"{SUBJECT_PREFIX}{run_id}"


def run_id_of(ref: str) -> int | None:
    rest = ref.removeprefix(SUBJECT_PREFIX) if ref.startswith(SUBJECT_PREFIX) else ""
    return int(rest) if rest.isdigit() else None

"""Reads for reviews: the gate's state, model metrics for rules, and what the
dashboard and pages show."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from types import SimpleNamespace

from django.conf import settings
from django.db import connections, router
from django.db.models import Count, F, Q, QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.roles import COMMITTEE, has_role
from reviews import subjects
from reviews.models import (
    DECIDED_STATUSES,
    QUEUE_STATUSES,
    WAITING_STATUSES,
    CallbackDelivery,
    Case,
    CaseStatus,
    Comment,
    GateState,
    MetricKind,
    PolicyChange,
    Recusal,
    Report,
    ReviewSettings,
    Vote,
)
from tasks.metrics import percentile_cont
from tasks.models import ApiKey, ExecutionTask, TaskSource, TaskStatus

logger = logging.getLogger(__name__)


# What the gate reads when its one row is missing (someone deleted it; `migrate`
# installs it): paused, so every task is held (policy `global-pause`) until an
# operator resumes the gate, which writes the row again (services.gate_resume).
GATE_STATE_MISSING = (
    "the gate's state is missing from the database; every task is held until an operator "
    "resumes the gate (or `manage.py migrate` installs it again)"
)


def gate_state() -> GateState:
    """The gate's one row (pk=1, installed by migration reviews.0002 and after every
    migrate). Read on every task registration, so a plain SELECT (a third of a
    queryset's cost). It only reads: when the row is missing the gate fails closed,
    answering with an unsaved state that is paused (GATE_STATE_MISSING) and a fresh
    rules version (so no cached rules are trusted)."""
    connection = connections[router.db_for_read(GateState)]
    fields = GateState._meta.concrete_fields
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(GateState._meta.db_table)} WHERE {qn('id')} = 1"
        )
        row = cursor.fetchone()
    if row is None:
        logger.error("The gate's state row (reviews_gatestate pk=1) is missing: the gate holds every task")
        return GateState(paused=True, reason=GATE_STATE_MISSING)
    return GateState.from_db(connection.alias, [f.attname for f in fields], row)


# How rules_changed's history rows begin (services.gate): the kill switch's history
# on the gate page leaves them out.
RULES_CHANGED = "rules changed: "


def gate_switch_history(state: GateState, limit: int = 20) -> list:
    """The kill switch's last changes (pause, resume), newest first: the gate state's
    history without the rules-version bumps. None for the stand-in of a missing row."""
    if state.pk is None:
        return []
    return list(
        state.history.exclude(history_change_reason__startswith=RULES_CHANGED)
        .select_related("history_user")
        .order_by("-history_date")[:limit]
    )


def review_settings() -> ReviewSettings:
    """The operators' review settings (pk=1, installed by migration reviews.0010 and
    after every migrate). Only reads: a missing row reads as the defaults (two-factor
    optional, the environment's REVIEWS_REQUIRE_TOTP still a floor), unsaved;
    services.review_settings_set writes it again."""
    return ReviewSettings.objects.filter(pk=1).first() or ReviewSettings()


def committee_chairs() -> list:
    """Who is told first of alerts about reviewers: the chair set in the review
    settings (an active user), or, when unset, every active operator."""
    from django.contrib.auth import get_user_model

    from core.roles import OPERATORS

    users = get_user_model().objects.filter(is_active=True)
    chair_id = ReviewSettings.objects.filter(pk=1).values_list("chair_id", flat=True).first()
    if chair_id is not None and (chair := users.filter(pk=chair_id).first()) is not None:
        return [chair]
    # Superusers count as every role (core.roles).
    return list(users.filter(Q(groups__name=OPERATORS) | Q(is_superuser=True)).distinct().order_by("pk"))


def case_is_honeypot(case: Case) -> bool:
    """Whether the case is about a honeypot report (never shown outside the admin)."""
    return case.kind == Case.Kind.REPORT and Report.objects.filter(case_id=case.pk, honeypot=True).exists()


def totp_devices(user, *, confirmed: bool):
    """The user's two-factor (TOTP) devices, confirmed or pending."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=confirmed)


def totp_required() -> bool:
    """Whether every member needs two-factor to decide: the environment's
    REVIEWS_REQUIRE_TOTP (a floor operators cannot lower) or the operators' setting."""
    return settings.REVIEWS_REQUIRE_TOTP or ReviewSettings.objects.filter(pk=1, require_totp=True).exists()


def model_metric(ai_model: str, kind: str, window: int) -> float | None:
    """Failure rate (0–1) or p95 duration (ms) over the model's last `window`
    tasks that FSAR saw run, by finish time; None when it has none. The p95 is
    the metrics pages' (PostgreSQL's percentile_cont, tasks.metrics).

    Only tasks registered through the API, started and finished live count
    (`source = 'api'`): backfilled and adopted rows are what the AI side (or a
    legacy table) says happened, and the subject of a rule must not be able to
    write the record it is judged on. "Last" is by `finished_at`, not by id, so
    rows stored late cannot pass for recent ones. One indexed query
    (tasks_model_live_finished), written out because the gate runs it on every
    task of a model a metric rule watches."""
    connection = connections[router.db_for_read(ExecutionTask)]
    qn = connection.ops.quote_name
    # The statuses and the source are literals, not parameters, so that even a prepared
    # statement's generic plan can use the partial index tasks_model_live_finished (tasks.0008).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn('status')}, {qn('duration_ms')} FROM {qn(ExecutionTask._meta.db_table)} "
            f"WHERE {qn('ai_model')} = %s AND {qn('status')} IN ('{TaskStatus.SUCCEEDED}', '{TaskStatus.FAILED}') "
            f"AND {qn('source')} = '{TaskSource.API}' "
            f"ORDER BY {qn('finished_at')} DESC, {qn('id')} DESC LIMIT %s",
            [ai_model, window],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    if kind == MetricKind.FAILURE_RATE:
        return sum(1 for status, _ in rows if status == TaskStatus.FAILED) / len(rows)
    durations = sorted(d for _, d in rows if d is not None)
    if not durations:
        return None
    # The metrics pages' p95 (percentile_cont), so a threshold read off a page compares the same here.
    return percentile_cont(durations, 0.95)


def report_for_client(report_id: str) -> Report | None:
    """A report as the AI client may know it: a honeypot does not exist for it."""
    report = report_by_id(report_id)
    return None if report is None or report.honeypot else report


def _precedent_sql(connection) -> str:
    """The latest rejected, non-honeypot report with a fingerprint (parameters: the
    fingerprint, CaseStatus.REJECTED): its id, report_id and case_id.

    The case's status is a subquery on its primary key, not a join: the same rows (a
    report without a case has no status), but PostgreSQL plans every execution anew
    (plan_cache_mode=force_custom_plan, fsar/settings.py), and planning the join (its
    orders and methods, a merge join's estimates probing both tables' indexes) cost
    about 0.3 ms of the backend's CPU per report received against 0.15 for this form;
    both run in a few microseconds (the report's fingerprint index, then the case's
    primary key for each report with that proposal)."""
    qn = connection.ops.quote_name
    report, case = qn(Report._meta.db_table), qn(Case._meta.db_table)
    return (
        f"SELECT r.{qn('id')}, r.{qn('report_id')}, r.{qn('case_id')} FROM {report} r "
        f"WHERE r.{qn('fingerprint')} = %s AND NOT r.{qn('honeypot')} "
        f"AND (SELECT c.{qn('status')} FROM {case} c WHERE c.{qn('id')} = r.{qn('case_id')}) = %s "
        f"ORDER BY r.{qn('id')} DESC LIMIT 1"
    )


def rejected_precedent(fingerprint: str) -> Report | None:
    """The latest report (never a honeypot) with this proposal fingerprint whose case
    was rejected, or None: only its id, `report_id` and `case_id` are loaded (the rest deferred). Read
    for every report received, so written out (a queryset with its join costs more to
    compile than to run; docs/benchmarks.md)."""
    connection = connections[router.db_for_read(Report)]
    with connection.cursor() as cursor:
        cursor.execute(_precedent_sql(connection), [fingerprint, CaseStatus.REJECTED])
        row = cursor.fetchone()
    return None if row is None else Report.from_db(connection.alias, ["id", "report_id", "case_id"], row)


_STATE_AND_PRECEDENT: dict[str, str] = {}


def gate_state_and_rejected_precedent(fingerprint: str) -> tuple[GateState, Report | None]:
    """gate_state() and rejected_precedent(fingerprint) (None for an empty fingerprint),
    which every report received reads: on PostgreSQL in one round trip (the
    precedent as a LATERAL subquery beside the gate's row), elsewhere the two reads."""
    connection = connections[router.db_for_read(Report)]
    if connection.vendor != "postgresql" or not fingerprint:
        return gate_state(), rejected_precedent(fingerprint) if fingerprint else None
    fields = GateState._meta.concrete_fields
    sql = _STATE_AND_PRECEDENT.get(connection.vendor)
    if sql is None:  # written once (per vendor): the statement is the same for every report
        qn = connection.ops.quote_name
        sql = _STATE_AND_PRECEDENT[connection.vendor] = (
            f"SELECT {', '.join(f'g.{qn(f.column)}' for f in fields)}, p.* FROM (SELECT 1) one "
            f"LEFT JOIN {qn(GateState._meta.db_table)} g ON g.{qn('id')} = 1 "
            f"LEFT JOIN LATERAL ({_precedent_sql(connection)}) p ON true"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [fingerprint, CaseStatus.REJECTED])
        row = cursor.fetchone()
    state_row, precedent_row = row[: len(fields)], row[len(fields) :]
    if state_row[0] is None:  # the row is missing: gate_state() fails closed and says so
        state = gate_state()
    else:
        state = GateState.from_db(connection.alias, [f.attname for f in fields], state_row)
    precedent = None
    if precedent_row[0] is not None:
        precedent = Report.from_db(connection.alias, ["id", "report_id", "case_id"], precedent_row)
    return state, precedent


def report_by_id(report_id: str) -> Report | None:
    return Report.objects.select_related("case", "rejected_precedent").filter(report_id=report_id).first()


def latest_case_change(case_id: int) -> str:
    """Why the case last changed (its latest history row's reason), or ""."""
    history = Case.history.filter(id=case_id).order_by("-history_date", "-history_id")
    return history.values_list("history_change_reason", flat=True).first() or ""


def case_changes_since(case: Case, version: int) -> list[str]:
    """What changed a case after `version`, oldest first: the reasons of its history
    rows on later versions (a revision, a revocation, a lapsed approval)."""
    history = case.history.filter(version__gt=version).order_by("history_date", "history_id")
    return list(dict.fromkeys(r for r in history.values_list("history_change_reason", flat=True) if r))


def held_tasks_for_case(case_id: int) -> QuerySet[ExecutionTask]:
    return ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_case=str(case_id)).order_by("id")


HELD_PAGE_SIZE = 100


def held_tasks_page(
    case_id: int, *, after_id: int | None = None, size: int = HELD_PAGE_SIZE
) -> tuple[list[ExecutionTask], int | None]:
    """A page of the tasks the case holds, oldest first, by keyset on the id (after
    `after_id`, the previous page's last). Returns (tasks, the next page's `after_id` or None)."""
    qs = held_tasks_for_case(case_id).only("id", "external_id", "task_type", "ai_model", "gate_reason")
    if after_id is not None:
        qs = qs.filter(pk__gt=after_id)
    rows = list(qs[: size + 1])
    return rows[:size], (rows[size - 1].pk if len(rows) > size else None)


def dashboard_context() -> dict:
    state = gate_state()
    case_counts = Case.objects.aggregate(
        open=Count("pk", filter=Q(status=CaseStatus.OPEN)),
        changes_requested=Count("pk", filter=Q(status=CaseStatus.CHANGES_REQUESTED)),
        advisory=Count("pk", filter=Q(status=CaseStatus.ADVISORY)),
    )
    return {
        "gate_state": state,
        "case_counts": case_counts,
        "held_task_count": ExecutionTask.objects.filter(status=TaskStatus.HELD).count(),
        "failed_callback_count": CallbackDelivery.objects.filter(status=CallbackDelivery.Status.FAILED).count(),
        "recent_reports": list(Report.objects.select_related("case").order_by("-id")[:5]),
        "short_cases": list(Case.objects.filter(short_of_members=True, status__in=QUEUE_STATUSES).order_by("-id")[:20]),
    }


# ------------------------------------------------------------------- the queue

QUEUE_PAGE_SIZE = 25
MAX_BIGINT = 9_223_372_036_854_775_807


def encode_queue_cursor(case) -> str:
    return f"{case.severity}~{case.due_at.isoformat()}~{case.pk}"


def decode_queue_cursor(cursor: str) -> tuple[int, datetime, int] | None:
    """The keyset position after which the next page starts; ValueError when it is not one we made."""
    if not cursor:
        return None
    severity, due_at, pk = cursor.split("~")
    parsed = datetime.fromisoformat(due_at)
    if parsed.tzinfo is None:
        raise ValueError("cursor without a time zone")
    try:
        # The database compares in UTC: year 1 at +14:00 or 9999 at -14:00 is not a time there.
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("cursor time out of range in UTC") from None
    severity, pk = int(severity), int(pk)
    if not (0 <= severity <= MAX_BIGINT and 0 <= pk <= MAX_BIGINT):
        raise ValueError("cursor number out of range")
    return severity, parsed, pk


def human_duration(delta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


class QueueRow(SimpleNamespace):
    """One queue row: the case's columns plus what the page shows about it."""


QUEUE_COLUMNS = (
    "id", "kind", "status", "title", "severity", "quorum", "version", "due_at", "claimed_by_id", "claimed_until",
    "short_of_members",
)  # fmt: skip


def queue_page(*, user, kind: str, show: str, min_severity: int | None, after, now, size: int = QUEUE_PAGE_SIZE):
    """One page of the committee queue, most urgent first (severity, then due time),
    with each row's approvals on the current version and whether `user` voted.
    Two queries whatever the number of open cases (the page by keyset on the
    partial index `reviews_case_queue`, then the votes on those cases); never a
    count of the whole table. Blind for committee members who have not voted on
    a row's case: `approvals` is None there, and only `votes_cast` is shown."""
    statuses = [CaseStatus.ADVISORY] if show == "advisory" else [s for s in QUEUE_STATUSES if s != CaseStatus.ADVISORY]
    cases = Case.objects.filter(status__in=statuses, due_at__isnull=False).order_by("-severity", "due_at", "id")
    if kind:
        cases = cases.filter(kind=kind)
    if min_severity is not None:
        cases = cases.filter(severity__gte=min_severity)
    if show == "mine":
        cases = cases.filter(claimed_by=user, claimed_until__gt=now)
    elif show == "unclaimed":
        cases = cases.filter(Q(claimed_by__isnull=True) | Q(claimed_until__lte=now))
    elif show == "overdue":
        cases = cases.filter(due_at__lt=now)
    if after is not None:
        severity, due_at, pk = after
        # The redundant `severity <= s` lets PostgreSQL start the index scan at the cursor.
        cases = cases.filter(
            Q(severity__lte=severity)
            & (
                Q(severity__lt=severity)
                | Q(severity=severity, due_at__gt=due_at)
                | Q(severity=severity, due_at=due_at, pk__gt=pk)
            )
        )
    rows = [QueueRow(**row) for row in cases.values(*QUEUE_COLUMNS, claimer=F("claimed_by__username"))[: size + 1]]
    more = len(rows) > size
    rows = rows[:size]
    versions = {row.id: row.version for row in rows}
    approvals: dict[int, int] = {}
    cast: dict[int, int] = {}
    voted: set[int] = set()
    for case_id, version, member_id, choice in Vote.objects.filter(case_id__in=versions).values_list(
        "case_id", "case_version", "member_id", "choice"
    ):
        if version != versions[case_id]:
            continue
        cast[case_id] = cast.get(case_id, 0) + 1
        if choice == Vote.Choice.APPROVE:
            approvals[case_id] = approvals.get(case_id, 0) + 1
        if member_id == user.pk:
            voted.add(case_id)
    # Blind votes (as on the case page): a member who has not voted on a case sees how many
    # voted, never how many approved, so that nobody anchors on the others' opinion.
    member = has_role(user, COMMITTEE)
    kinds, labels = dict(Case.Kind.choices) | dict(subjects.kind_choices()), dict(CaseStatus.choices)
    for row in rows:
        row.pk = row.id
        row.kind_label, row.status_label = kinds[row.kind], labels[row.status]
        row.i_voted = row.id in voted
        row.blind = member and not row.i_voted
        row.approvals = None if row.blind else approvals.get(row.id, 0)
        row.votes_cast = cast.get(row.id, 0)
        row.submitted = False
        row.can_vote = member
        row.claim_active = bool(row.claimed_by_id and row.claimed_until and row.claimed_until > now)
        row.overdue = row.due_at < now
        row.due_text = human_duration(abs(row.due_at - now))
    if member:
        # Same rule as why_cannot_vote: nobody votes on what they submitted (one or two queries a page).
        for case_id, ids in submitters_of([row.id for row in rows if not row.i_voted]).items():
            if user.pk in ids:
                mine = next(row for row in rows if row.id == case_id)
                mine.submitted, mine.can_vote = True, False
    return rows, (encode_queue_cursor(rows[-1]) if more and rows else None)


# ------------------------------------------------------------- who may vote

VOTABLE_STATUSES = (CaseStatus.OPEN, CaseStatus.EXPIRED, CaseStatus.ADVISORY)


def committee_members():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(is_active=True, groups__name=COMMITTEE)


def submitters_of(case_ids: Iterable[int], *, kinds: Iterable[str] | None = None) -> dict[int, dict[int, str]]:
    """For each case, the people who submitted what it is about, each with why:
    `{case_id: {user_id: "you uploaded report r1"}}`. Nobody reviews their own work.

    - for a case about an upper app's subject (reviews.subjects), whoever that
      app names (e.g. who registered a model version);
    - the proposer of a policy change;
    - the uploader of any of its reports;
    - every owner of an API key that sent one of its reports or registered a task
      on it (held on the case, or allowed through its approval): the key's owner
      then, and anyone who has owned it since, from the key's history. A key's
      secret does not change with its owner, so handing a key to someone else
      makes neither of them a neutral reviewer.

    Resolved when asked (at vote time, for the tally, for notifications), never
    stored. A few queries whatever the number of cases, each reading rows in
    proportion to the cases' reports and keys, not their tasks (_task_keys_of).
    `kinds`, when the caller knows the cases' kinds: the subjects' query is left
    out when none of them is an upper app's."""
    ids = list(case_ids)
    found: dict[int, dict[int, str]] = {case_id: {} for case_id in ids}
    if not ids:
        return found
    subject_kinds = [kind for kind, _ in subjects.kind_choices()]
    if kinds is None or set(kinds) & set(subject_kinds):
        subject_cases = Case.objects.filter(pk__in=ids, kind__in=subject_kinds)
        for case in subject_cases.only("pk", "kind", "subject_ref"):
            for person in subjects.submitters_of(case):
                found[case.pk].setdefault(person, "you registered its subject")
    for case_id, proposer in PolicyChange.objects.filter(case_id__in=ids).values_list("case_id", "proposed_by_id"):
        found[case_id].setdefault(proposer, "you proposed this policy change")
    sent_by_key: dict[int, dict[int, str]] = {}  # key id -> {case id: what it sent}
    for case_id, report_id, uploader, key_id in Report.objects.filter(case_id__in=ids).values_list(
        "case_id", "report_id", "uploaded_by_id", "submitted_by_id"
    ):
        if uploader is not None:
            found[case_id].setdefault(uploader, f"you uploaded report {report_id}")
        if key_id is not None:
            sent_by_key.setdefault(key_id, {}).setdefault(case_id, f"sent report {report_id}")
    for gate_case, key_id in _task_keys_of(ids):
        sent_by_key.setdefault(key_id, {}).setdefault(int(gate_case), "registered tasks this case decides on")
    if sent_by_key:
        owners = ApiKey.history.filter(id__in=sent_by_key).values_list("id", "name", "owner_id").order_by().distinct()
        current = ApiKey.objects.filter(pk__in=sent_by_key).values_list("pk", "name", "owner_id")
        for key_id, name, owner in [*owners, *current]:
            for case_id, what in sent_by_key[key_id].items():
                found[case_id].setdefault(owner, f"your API key {name!r} {what}")
    return found


def _task_keys_of(case_ids: list[int]) -> list[tuple[str, int]]:
    """Each distinct (case, API key) among the tasks the cases decide on (`gate_case`,
    held on them or allowed through their approval), by a loose scan of the partial
    index tasks_gate_case (gate_case, submitted_by): per case, the first entry from
    the case on with a key, then the first entry past (case, that key), and so on
    until the entry found belongs to another case; one index probe each. The rows
    read grow with the number of keys, not of tasks: a case of one model collects
    thousands of held tasks from the few keys that registered them, and a DISTINCT
    read every one of their index entries, twice a vote. One statement whatever the
    number of cases and keys.

    Each probe asks for the index's own order (gate_case, submitted_by) from a bound
    on both, never `gate_case = x ORDER BY submitted_by`, which the key's own index
    (submitted_by) also answers: the planner could walk that one, through every task
    of the keys past the last, for a case with few tasks in its statistics."""
    connection = connections[router.db_for_read(ExecutionTask)]
    qn = connection.ops.quote_name
    table, case, key = qn(ExecutionTask._meta.db_table), qn("gate_case"), qn("submitted_by_id")
    probe = (
        f"SELECT CASE WHEN t.{case} = {{at}}.id THEN t.{key} END FROM {table} t WHERE t.{case} IS NOT NULL AND "
        f"{{bound}} ORDER BY t.{case}, t.{key} LIMIT 1"
    )
    first = probe.format(at="c", bound=f"t.{case} >= c.id AND t.{key} IS NOT NULL")
    after = probe.format(at="k", bound=f"(t.{case}, t.{key}) > (k.id, k.key_id)")
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE c (id) AS (VALUES {', '.join(['(%s)'] * len(case_ids))}), "
            f"k (id, key_id) AS (SELECT c.id, ({first}) FROM c UNION ALL "
            f"SELECT k.id, ({after}) FROM k WHERE k.key_id IS NOT NULL) "
            "SELECT id, key_id FROM k WHERE key_id IS NOT NULL",
            [str(i) for i in case_ids],
        )
        return cursor.fetchall()


def submitters(case: Case) -> dict[int, str]:
    """The people who submitted what `case` is about, each with why (submitters_of);
    those remember_submitters kept on this instance, if it did."""
    known = case.__dict__.get("_submitters")
    if known is not None:
        return known
    return submitters_of([case.pk], kinds=[case.kind])[case.pk]


def remember_submitters(case: Case) -> dict[int, str]:
    """Resolve the case's submitters once and keep them on this instance, for a job
    that asks several times about one case it read under lock (case_opened: its
    quorum check, the committee's notice and the operators'); other instances of
    the case resolve them again when asked."""
    case._submitters = submitters_of([case.pk], kinds=[case.kind])[case.pk]
    return case._submitters


def eligible_member_ids(case: Case) -> set[int]:
    members = set(committee_members().values_list("pk", flat=True))
    recused = set(case.recusals.values_list("member_id", flat=True))
    return members - recused - set(submitters(case))


def why_cannot_vote(case: Case, member) -> str | None:
    """None when `member` may vote on the case's current version, else the reason."""
    if not committee_members().filter(pk=member.pk).exists():
        return "only ethics committee members vote"
    if case.status == CaseStatus.CHANGES_REQUESTED:
        if case.kind == Case.Kind.POLICY:
            return "changes were requested; the change must be proposed again"
        return "changes were requested; votes resume on the revision"
    if case.status not in VOTABLE_STATUSES:
        return f"the case is {case.get_status_display().lower()}"
    if why := submitters(case).get(member.pk):
        return f"you submitted what this case is about ({why})"
    if case.recusals.filter(member=member).exists():
        return "you recused yourself from this case"
    if case.votes.filter(case_version=case.version, member=member).exists():
        return "you already voted on this version"
    return None


# ------------------------------------------------------------- member home

HOME_LIST_SIZE = 10


def member_overview(*, user, now) -> dict:
    """A committee member's landing page, each list most urgent first (severity, then
    due time): open cases waiting for their vote (why_cannot_vote says they may cast
    one), cases they claimed, and overdue cases."""
    open_cases = Case.objects.filter(
        status__in=[s for s in QUEUE_STATUSES if s != CaseStatus.ADVISORY], due_at__isnull=False
    ).order_by("-severity", "due_at", "id")
    waiting = []
    for case in open_cases.filter(status__in=VOTABLE_STATUSES)[: HOME_LIST_SIZE * 3]:
        if why_cannot_vote(case, user) is None:
            waiting.append(case)
            if len(waiting) == HOME_LIST_SIZE:
                break
    claimed = list(open_cases.filter(claimed_by=user, claimed_until__gt=now)[:HOME_LIST_SIZE])
    overdue = list(open_cases.filter(due_at__lt=now)[:HOME_LIST_SIZE])
    for case in {c.pk: c for c in [*waiting, *claimed, *overdue]}.values():
        case.overdue = case.due_at < now
        case.due_text = human_duration(abs(case.due_at - now))
    return {"waiting": waiting, "claimed": claimed, "overdue": overdue}


# ------------------------------------------------------------------ case page


def case_page(*, case: Case, user, now, held_after: int | None = None) -> dict:
    """Everything the case page shows. Votes are blind: until `user` has voted on
    (or recused from) this version, and while the case is undecided, only their
    count is shown. The held tasks are paged (`held_after`: the previous page's last id)."""
    from reviews.rendering import proposal_diff, render_markdown

    reports = list(
        case.reports.select_related(
            "rejected_precedent__case", "supersedes", "submitted_by__owner", "uploaded_by"
        ).order_by("id")
    )
    latest = reports[-1] if reports else None
    votes = list(case.votes.filter(case_version=case.version).select_related("member").order_by("created_at"))
    recused = {r.member_id: r for r in case.recusals.select_related("member")}
    i_voted = any(v.member_id == user.pk for v in votes)
    undecided = case.status in (*WAITING_STATUSES, CaseStatus.EXPIRED, CaseStatus.ADVISORY)
    blind = undecided and not i_voted and user.pk not in recused and has_role(user, COMMITTEE)
    if latest is not None and latest.supersedes_id:
        diff = proposal_diff(latest.supersedes.proposal, latest.proposal)
    else:
        diff = ""
    lookalikes = (
        list(
            Report.objects.filter(fingerprint=latest.fingerprint, case__status=CaseStatus.REJECTED)
            .exclude(case=case)
            .select_related("case")[:10]
        )
        if latest is not None
        else []
    )
    approvals = sum(1 for v in votes if v.choice == Vote.Choice.APPROVE)
    policy_change = (
        PolicyChange.objects.select_related("proposed_by").filter(case=case).first()
        if case.kind == Case.Kind.POLICY
        else None
    )
    refused = subjects.refused_choices(case)
    held_tasks, held_next = held_tasks_page(case.pk, after_id=held_after)
    return {
        "case": case,
        "policy_change": policy_change,
        # Sections upper apps add for their kinds of case (reviews.subjects.register_panel).
        "panels": subjects.panels_for(case, user),
        # (value, label, why it is refused or ""): approve may be refused by a guard.
        "vote_choices": [(value, label, refused.get(value, "")) for value, label in Vote.Choice.choices],
        "reports": reports,
        "latest": latest,
        "proposal_html": render_markdown(latest.proposal) if latest else "",
        "diff": diff,
        "lookalikes": lookalikes,
        "votes": [] if blind else votes,
        "vote_count": len(votes),
        "approvals": None if blind else approvals,  # blind: how many voted, never how many approved
        "blind": blind,
        "recusals": list(recused.values()),
        "comments": list(case.comments.select_related("author").order_by("created_at")),
        "held_tasks": held_tasks,
        "held_next": held_next,
        "held_paged": held_after is not None,
        "why_not": why_cannot_vote(case, user),
        "timeline": timeline(case, blind=blind, reports=reports),
        "claim_active": bool(case.claimed_by_id and case.claimed_until and case.claimed_until > now),
        "i_voted": i_voted,
        "i_recused": user.pk in recused,
        "decided": case.status in DECIDED_STATUSES,  # no claim or recusal any more
    }


def submitter_label(report: Report) -> str:
    """Who sent a report: the API key (name and owner), as task history records it, or the uploader."""
    if report.submitted_by_id is not None:
        key = report.submitted_by
        return f"API key {key.name} (owner {key.owner.get_username()})"
    if report.uploaded_by_id is not None:
        return report.uploaded_by.get_username()
    return "system"


def timeline(case: Case, *, blind: bool, reports: list[Report] | None = None) -> list[dict]:
    """Who did what, when and why: the case's history with its votes, recusals
    and comments, oldest first. While votes are blind, a vote on the current
    version shows only that it was cast. `reports`: the case's, already read with
    their submitters (the case page has them)."""
    events = []
    if reports is None:
        reports = case.reports.select_related("submitted_by__owner", "uploaded_by").order_by("id")
    for report in reports:
        events.append(
            {
                "at": report.received_at,
                "who": submitter_label(report),
                "what": f"report {report.report_id} received ({report.raw_format}); gate: {report.gate_decision}",
            }
        )
    for h in case.history.select_related("history_user"):
        events.append({"at": h.history_date, "who": h.history_user, "what": h.history_change_reason or h.status})
    for h in Vote.history.filter(case_id=case.pk).select_related("history_user"):
        hidden = blind and h.case_version == case.version  # earlier versions were decided: visible
        what = "voted" if hidden else f"voted {h.choice} (version {h.case_version}): {h.rationale}"
        events.append({"at": h.history_date, "who": h.history_user, "what": what})
    for h in Recusal.history.filter(case_id=case.pk).select_related("history_user"):
        events.append({"at": h.history_date, "who": h.history_user, "what": f"recused: {h.reason}"})
    for h in Comment.history.filter(case_id=case.pk).select_related("history_user"):
        events.append({"at": h.history_date, "who": h.history_user, "what": f"commented: {h.text}"})
    return sorted(events, key=lambda e: e["at"])


def notification_preference(user):
    """The person's notification settings (the defaults, all on, when never saved)."""
    from reviews.models import NotificationPreference

    return NotificationPreference.objects.filter(user=user).first() or NotificationPreference(user=user)

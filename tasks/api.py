"""The agent API for execution tasks: register (with the gate), start, finish,
cancel, read, list, and backfill. Endpoints only translate HTTP to services."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Literal, Union

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.module_loading import import_string
from ninja import Field, Query, Router, Schema, Status
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StrictInt, StrictStr
from typing_extensions import TypeAliasType

from core.jsonwalk import LONE_SURROGATE_MESSAGE, has_lone_surrogate, json_keys_and_scalars, lone_surrogate_path
from tasks import backfill, decisions, selectors, services
from tasks.auth import ApiKeyAuth
from tasks.models import ExecutionTask, TaskStatus, TaskType

router = Router(tags=["tasks"])


def no_nul(value: str) -> str:
    """Text the database can store, refused by name instead of failing there: PostgreSQL
    text cannot hold NUL, and no database takes a lone surrogate (JSON's "\\ud800")."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL (\\u0000) character")
    if has_lone_surrogate(value):
        raise ValueError(LONE_SURROGATE_MESSAGE)
    return value


def in_utc(value: datetime) -> datetime:
    """An aware datetime that still exists in UTC (0001-01-01T00:00+01:00 does not)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range in UTC") from None


def json_safe(value: dict) -> dict:
    """A payload the database's JSON column can store: no NaN or Infinity (not JSON),
    no NUL characters (PostgreSQL's jsonb refuses them) and no lone surrogates, in
    keys or values (no database takes them; PostgreSQL's jsonb fails on the escape)."""
    for item in json_keys_and_scalars(value):
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or Infinity (not JSON numbers)")
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("must not contain a NUL (\\u0000) character")
            if has_lone_surrogate(item):
                raise ValueError(f"{LONE_SURROGATE_MESSAGE}, at {lone_surrogate_path(value, 'payload')}")
    return value


def whole_number(value):
    """JSON has one kind of number, and JSON Schema's `integer` is any number with no
    fraction: 6.0 is the integer 6. A fraction, a string ("6") or a boolean is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The schema states what the validators enforce (a schemathesis run checks that they agree).
NO_NUL_PATTERN = r"^[^\x00]*$"
# Years 1970 to 9998: any such instant, at any offset, stays within what datetime and the
# metrics' window arithmetic (the previous window, bucket ends) can hold.
_YEAR = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
# A backfilled task starts on or after 2000-01-01 (backfill.BACKFILL_EARLIEST).
_BACKFILL_YEAR = r"(?:[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"


def _datetime_pattern(year: str) -> str:
    return (
        rf"^{year}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
        r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
    )


DATETIME_PATTERN = _datetime_pattern(_YEAR)
BACKFILL_DATETIME_PATTERN = _datetime_pattern(_BACKFILL_YEAR)
_AS_RFC_3339 = "must be an ISO 8601 date-time string with a timezone, as RFC 3339 writes it (e.g. 2026-10-01T09:00:00Z)"
DATETIME_RULE = f"{_AS_RFC_3339}, in the years 1970 to 9998"
BACKFILL_DATETIME_RULE = f"{_AS_RFC_3339}, in the years 2000 to 9998 (no backfilled task is from before 2000-01-01)"
_DATETIME = re.compile(DATETIME_PATTERN)


def is_rfc3339(value) -> bool:
    return isinstance(value, str) and _DATETIME.fullmatch(value) is not None


def _text_matching(pattern: str, rule: str):
    compiled = re.compile(pattern)

    def check(value):
        """A date-time arrives as RFC 3339 text with its time zone, never as a number."""
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(rule)
        return value

    return check


rfc3339_text = _text_matching(DATETIME_PATTERN, DATETIME_RULE)


Text = Annotated[StrictStr, AfterValidator(no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
QueryText = Annotated[str, Field(max_length=200, json_schema_extra={"pattern": NO_NUL_PATTERN}), AfterValidator(no_nul)]
TaskTypeName = Literal[tuple(TaskType.values)]  # the model's choices, spelled once (tasks.models.TaskType)
ExternalId = Annotated[Text, Field(min_length=1, max_length=200)]
ShortText = Annotated[Text, Field(min_length=1, max_length=200)]
NonNegativeBigInt = Annotated[StrictInt, Field(ge=0, le=9_223_372_036_854_775_807), BeforeValidator(whole_number)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=2_147_483_647), BeforeValidator(whole_number)]
ErrorText = Annotated[Text, Field(max_length=20_000)]
UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(rfc3339_text),
    AfterValidator(in_utc),
    Field(json_schema_extra={"pattern": DATETIME_PATTERN}),
]
BackfillDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_matching(BACKFILL_DATETIME_PATTERN, BACKFILL_DATETIME_RULE)),
    AfterValidator(in_utc),
    Field(json_schema_extra={"pattern": BACKFILL_DATETIME_PATTERN}),
]
# The payload as the schema states it: any JSON object whose keys and strings hold no NUL
# (the NUL and NaN checks themselves are json_safe's, with a message naming them).
_NoNul = Annotated[str, Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
_ONLY_PATTERN_KEYS = Field(json_schema_extra={"additionalProperties": False})
_JsonObject = Annotated[dict[_NoNul, "JsonValue"], _ONLY_PATTERN_KEYS]
JsonValue = TypeAliasType("JsonValue", Union[_NoNul, int, float, bool, None, list["JsonValue"], _JsonObject])  # noqa: UP007
Payload = Annotated[dict[_NoNul, JsonValue], AfterValidator(json_safe), _ONLY_PATTERN_KEYS]


# The longest `wait` a decision long-poll may ask for (the server may give less:
# settings.TASK_DECISION_MAX_WAIT_SECONDS).
MAX_WAIT_SECONDS = 60


# Request bodies and the answers with a task are plain pydantic models, not ninja
# Schemas: a Schema's root validator, there for reading Django objects, validates a
# strict (extra="forbid") body twice and wraps every object it reads in a getter, about
# a fifth of what the API adds to a registration (docs/benchmarks.md). Their OpenAPI
# schema is the same.
class StrictSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskIn(StrictSchema):
    external_id: ExternalId
    task_type: TaskTypeName
    ai_model: ShortText | None = None
    customer: ShortText | None = None
    proposal_id: ShortText | None = None
    payload: Payload | None = None


class FinishIn(StrictSchema):
    outcome: Literal["succeeded", "failed"]
    cost_micros: NonNegativeBigInt | None = None
    tokens: NonNegativeInt | None = None
    error: ErrorText = ""


class CancelIn(StrictSchema):
    reason: Annotated[Text, Field(max_length=2000)] = ""


# Every `gate` object in the API names its review case the same way (a schema test compares them).
GateCase = Annotated[int | None, Field(description="The id of the review case holding or deciding this; null if none.")]


class GateOut(BaseModel):
    decision: str | None
    reason: str | None
    policy: str | None
    case: GateCase
    # Filled by settings.TASK_GATE_DETAILS (composed in fsar/): the case's status and rationale.
    case_status: str | None = None
    rationale: str | None = None


class TaskOut(BaseModel):
    id: int
    external_id: str
    task_type: str
    ai_model: str | None
    customer: str | None
    proposal_id: str | None
    status: str
    payload: dict
    source: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    cost_micros: int | None
    tokens: int | None
    error: str
    gate: GateOut


class DecisionOut(Schema):
    task_id: int
    external_id: str
    status: str
    gate: GateOut
    # Changes whenever the status or any gate field changes; pass it back as `since`.
    version: str


class DecisionQuery(Schema):
    wait: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)] = 0
    since: Annotated[str, Field(max_length=40)] | None = None


class TaskPageOut(Schema):
    items: list[TaskOut]
    next_cursor: str | None


# One row of a backfill: a plain pydantic model, not a ninja Schema, whose per-object
# root validator (for reading Django objects) cost as much as all the rest of a
# 10,000-row request (docs/benchmarks.md).
class BackfillRowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    task_type: TaskTypeName
    ai_model: ShortText | None = None
    customer: ShortText | None = None
    status: Literal["succeeded", "failed"]
    started_at: BackfillDatetime
    finished_at: BackfillDatetime
    cost_micros: NonNegativeBigInt | None = None
    tokens: NonNegativeInt | None = None
    error: ErrorText = ""


class BackfillIn(StrictSchema):
    tasks: Annotated[list[BackfillRowIn], Field(min_length=1, max_length=services.BULK_MAX_ROWS)]


class BackfillOut(Schema):
    created: int
    unchanged: int


class ErrorOut(Schema):
    detail: str


def task_out(task: ExecutionTask, details: dict[int, dict] | None = None) -> dict:
    """The task as the API shows it; `details`: the gate details of a page, read at once."""
    if details is None:
        details = _gate_details([task])
    return {
        "id": task.pk,
        "external_id": task.external_id,
        "task_type": task.task_type,
        "ai_model": task.ai_model,
        "customer": task.customer_ref,
        "proposal_id": task.proposal_ref,
        "status": task.status,
        "payload": task.payload,
        "source": task.source,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "duration_ms": task.duration_ms,
        "cost_micros": task.cost_micros,
        "tokens": task.tokens,
        "error": task.error,
        "gate": {
            "decision": task.gate_decision,
            "reason": task.gate_reason,
            "policy": task.gate_policy,
            "case": task.gate_case_id,
            **details.get(task.pk, {}),
        },
    }


def task_answer(task: ExecutionTask) -> TaskOut:
    """One task's answer, validated here: ninja passes a model of the answer's own type
    through as it is, instead of validating it again through its response wrapper."""
    return TaskOut.model_validate(task_out(task))


@cache
def _gate_details_hook():
    path = settings.TASK_GATE_DETAILS
    return import_string(path) if path else None


def _gate_details(tasks: list[ExecutionTask]) -> dict[int, dict]:
    """Extra gate keys per task id, for tasks with a case: one call to the hook for a whole page."""
    hook = _gate_details_hook()
    with_case = [task for task in tasks if task.gate_case]
    return hook(with_case) if hook is not None and with_case else {}


def decision_out(task: ExecutionTask) -> dict:
    gate = {
        "decision": task.gate_decision,
        "reason": task.gate_reason,
        "policy": task.gate_policy,
        "case": task.gate_case,
    }
    fingerprint = json.dumps([task.status, *gate.values()]).encode()
    return {
        "task_id": task.pk,
        "external_id": task.external_id,
        "status": task.status,
        "gate": {**gate, **_gate_details([task]).get(task.pk, {})},
        "version": hashlib.sha256(fingerprint).hexdigest()[:16],
    }


def actor(request: HttpRequest) -> services.Actor:
    return services.Actor.for_key(request.auth)


ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut}


@router.post(
    "",
    auth=ApiKeyAuth("tasks"),
    response={200: TaskOut, 201: TaskOut, 503: ErrorOut, **ERRORS},
    summary="Register a task and ask the gate whether it may run",
)
def register_task(request: HttpRequest, body: TaskIn):
    """201 with the new task and the gate's decision; the same `external_id` with
    the same fields again answers 200 with the same task (an allowed one with the
    gate's answer now); with other fields, 409; another key's `external_id`, 404."""
    task, created = services.task_register(
        actor=actor(request),
        external_id=body.external_id,
        task_type=body.task_type,
        ai_model=body.ai_model,
        customer_ref=body.customer,
        proposal_ref=body.proposal_id,
        payload=body.payload,
    )
    return Status(201 if created else 200, task_answer(task))


@router.post(
    "/bulk",
    auth=ApiKeyAuth("backfill"),
    response={200: BackfillOut, **ERRORS},
    summary="Backfill up to 10,000 finished tasks, all or nothing",
)
def backfill_tasks(request: HttpRequest, body: BackfillIn):
    rows = [
        backfill.BackfillRow(
            external_id=row.external_id,
            task_type=row.task_type,
            status=row.status,
            started_at=row.started_at,
            finished_at=row.finished_at,
            ai_model=row.ai_model,
            customer_ref=row.customer,
            cost_micros=row.cost_micros,
            tokens=row.tokens,
            error=row.error,
        )
        for row in body.tasks
    ]
    result = backfill.tasks_backfill(actor=actor(request), rows=rows)
    return {"created": result.created, "unchanged": result.unchanged}


CURSOR_PATTERN = r"^[0-9]{1,18}$"


class TaskFilters(Schema):
    status: TaskStatus | None = None
    task_type: TaskType | None = None
    ai_model: QueryText | None = None
    customer: QueryText | None = None
    proposal_id: QueryText | None = None
    external_id: QueryText | None = None
    cursor: Annotated[str, Field(pattern=CURSOR_PATTERN, description="A `next_cursor` this API returned.")] | None = (
        None
    )
    limit: Annotated[int, Field(ge=1, le=500)] = 50


class BadCursor(Exception):
    pass


def encode_cursor(task_id: int) -> str:
    """The keyset position: the last task's id. Any value the schema allows is a
    position (the page after it), so a cursor is never refused for its content."""
    return str(task_id)


def decode_cursor(cursor: str) -> int:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise BadCursor("cursor is not one this API returned")
    return int(cursor)


@router.get(
    "",
    auth=ApiKeyAuth("read"),
    response={200: TaskPageOut, **ERRORS},
    summary="List tasks, newest first, with cursor pagination",
)
def list_tasks(request: HttpRequest, filters: Query[TaskFilters]):
    before_id = decode_cursor(filters.cursor) if filters.cursor else None
    tasks = selectors.task_page(
        status=filters.status,
        task_type=filters.task_type,
        ai_model=filters.ai_model,
        customer_ref=filters.customer,
        proposal_ref=filters.proposal_id,
        external_id=filters.external_id,
        before_id=before_id,
        limit=filters.limit + 1,
    )
    has_more = len(tasks) > filters.limit
    tasks = tasks[: filters.limit]
    details = _gate_details(tasks)
    return {
        "items": [task_out(t, details) for t in tasks],
        "next_cursor": encode_cursor(tasks[-1].pk) if has_more else None,
    }


@router.get(
    "/{int:task_id}",
    auth=ApiKeyAuth("read"),
    response={200: TaskOut, **ERRORS},
    summary="One task with its gate decision",
)
def get_task(request: HttpRequest, task_id: int):
    return task_answer(get_object_or_404(ExecutionTask, pk=task_id))


@router.post(
    "/{int:task_id}/start",
    auth=ApiKeyAuth("tasks"),
    response={200: TaskOut, 503: ErrorOut, **ERRORS},
    summary="Start a task the gate still allows (409 'gate closed' when held or denied now)",
)
def start_task(request: HttpRequest, task_id: int):
    """The gate is asked again: a task it no longer allows goes back to `held` or
    `denied`, and the answer is 409 `gate closed` naming why, with `decision`,
    `policy` and `case`. Only the key that registered the task may start it
    (another key's task answers 404, as one that does not exist)."""
    return task_answer(services.task_start(task_id=task_id, actor=actor(request)))


@router.post(
    "/{int:task_id}/finish",
    auth=ApiKeyAuth("tasks"),
    response={200: TaskOut, **ERRORS},
    summary="Report a running task's outcome, cost and tokens",
)
def finish_task(request: HttpRequest, task_id: int, body: FinishIn):
    """Only the key that registered the task may finish it (another key's: 404)."""
    task = services.task_finish(
        task_id=task_id,
        actor=actor(request),
        outcome=body.outcome,
        cost_micros=body.cost_micros,
        tokens=body.tokens,
        error=body.error,
    )
    return task_answer(task)


@router.post(
    "/{int:task_id}/cancel",
    auth=ApiKeyAuth("tasks"),
    response={200: TaskOut, **ERRORS},
    summary="Cancel a task that has not finished",
)
def cancel_task(request: HttpRequest, task_id: int, body: CancelIn | None = None):
    """Only the key that registered the task may cancel it (another key's: 404)."""
    reason = body.reason if body else ""
    return task_answer(services.task_cancel(task_id=task_id, actor=actor(request), reason=reason))


@router.get(
    "/{int:task_id}/decision",
    auth=ApiKeyAuth("tasks", "read"),
    response={200: DecisionOut, **ERRORS},
    summary="The gate's decision on a task; with `wait`, a long-poll that answers when it changes",
)
def task_decision(request: HttpRequest, task_id: int, query: Query[DecisionQuery]):
    """The task's status and gate decision, and a `version` of both.

    With `wait=N` (seconds, at most 60) the answer waits: without `since`, while
    the task is `held`; with `since` (a `version` from an earlier answer), while
    nothing has changed since. It comes as soon as that changes, or after N
    seconds with the current state. No database connection is held while
    waiting. A key with the `tasks` scope sees only the tasks it registered (any
    other id answers 404); a key with `read` sees every task."""
    key = request.auth

    def read() -> dict:
        task = selectors.task_decision(task_id)
        if task is None or not (key.has_scope("read") or task.submitted_by_id == key.pk):
            raise ExecutionTask.DoesNotExist(f"No task with id {task_id}.")
        return decision_out(task)

    if query.since is not None:
        since = query.since

        def changed(state: dict) -> bool:
            return state["version"] != since
    else:

        def changed(state: dict) -> bool:
            return state["status"] != TaskStatus.HELD

    seconds = min(query.wait, settings.TASK_DECISION_MAX_WAIT_SECONDS)
    return decisions.wait_for_change(task_id, read=read, changed=changed, seconds=seconds)

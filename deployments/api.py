"""The agent API for model versions: register one (the criteria decide: blocked,
or pending review with a committee case), read one, list them. Endpoints only
translate HTTP to services."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import BeforeValidator, StrictStr, WithJsonSchema

from deployments import selectors, services
from deployments.models import ModelVersion, VersionStatus
from tasks.api import CURSOR_PATTERN, QueryText, StrictSchema, Text, decode_cursor, encode_cursor
from tasks.auth import ApiKeyAuth, MissingScope
from tasks.models import ApiKey

router = Router(tags=["models"])


class AnyScopeAuth(ApiKeyAuth):
    """A key holding any one of `scopes` (reads: `models` or `read`)."""

    def __init__(self, *scopes: str) -> None:
        super().__init__(scopes[0])
        self.scopes = scopes

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        for scope in self.scopes:
            self.scope = scope
            try:
                return super().authenticate(request, token)
            except MissingScope:
                continue
        raise MissingScope(" or ".join(self.scopes))


def strict_number(value):
    """A JSON number: not a string that looks like one, not a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


# The services' rules, stated in the schema too (each is checked again by the
# service, which names the field): patterns a generated client can follow.
# The bounds are the service's (|x| ≤ 1e15, deployments/services.py), checked there.
Number = Annotated[
    float,
    BeforeValidator(strict_number),
    WithJsonSchema({"type": "number", "minimum": -1e15, "maximum": 1e15}),
]
MetricName = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
FAMILY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# No NUL, no leading or trailing white space.
AI_MODEL_PATTERN = r"^[^\s\x00](?:[^\x00]*[^\s\x00])?$"
URI_PATTERN = r"^[a-z][a-z0-9+.-]*://[^\s\x00]+$"
HEALTH_URL_PATTERN = r"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s\x00]*)?$"


class VersionIn(StrictSchema):
    family: Annotated[StrictStr, Field(pattern=FAMILY_PATTERN, examples=["coder"])]
    ai_model: Annotated[
        StrictStr, Field(min_length=1, max_length=200, pattern=AI_MODEL_PATTERN, examples=["llama-4-70b-2026-12"])
    ]
    artifact_uri: Annotated[
        StrictStr, Field(max_length=1000, pattern=URI_PATTERN, examples=["s3://models/llama-4-70b-2026-12"])
    ]
    artifact_sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256, hexadecimal")]
    health_url: Annotated[StrictStr, Field(max_length=500, pattern=HEALTH_URL_PATTERN)] | None = None
    evaluation: Annotated[
        dict[MetricName, Number],
        # Only metric names: a key that does not match patternProperties is refused.
        Field(max_length=services.MAX_METRICS, json_schema_extra={"additionalProperties": False}),
    ] = {}
    notes: Annotated[Text, Field(max_length=10_000)] = ""


class VersionGateOut(Schema):
    """A model version's gate decision (its own name: a schema component is named by its class)."""

    decision: str
    reason: str
    policy: str
    case: int | None
    values: dict


class VersionOut(Schema):
    id: int
    family: str
    ai_model: str
    status: str
    status_reason: str
    status_changed_at: datetime
    artifact_uri: str
    artifact_sha256: str
    health_url: str | None
    evaluation: dict[str, float]
    notes: str
    registered_at: datetime
    approved_until: datetime | None
    case: int | None
    case_status: str | None
    gate: VersionGateOut


class VersionPageOut(Schema):
    items: list[VersionOut]
    next_cursor: str | None


class ErrorOut(Schema):
    detail: str


ERRORS = {status: ErrorOut for status in (400, 401, 403, 404, 409, 413, 422, 503)}


def version_out(version: ModelVersion) -> dict:
    return {
        "id": version.pk,
        "family": version.family,
        "ai_model": version.ai_model,
        "status": version.status,
        "status_reason": version.status_reason,
        "status_changed_at": version.status_changed_at,
        "artifact_uri": version.artifact_uri,
        "artifact_sha256": version.artifact_sha256,
        "health_url": version.health_url or None,
        "evaluation": version.evaluation,
        "notes": version.notes,
        "registered_at": version.registered_at,
        "approved_until": version.approved_until,
        "case": version.case_id,
        "case_status": version.case.status if version.case_id else None,
        "gate": {
            "decision": version.decision,
            "reason": version.decision_reason,
            "policy": version.decision_policy,
            "case": version.case_id,
            "values": version.decision_values,
        },
    }


@router.post(
    "/versions",
    auth=ApiKeyAuth("models"),
    response={200: VersionOut, 201: VersionOut, **ERRORS},
    summary="Register a model version; the criteria block it or hold it for the committee",
)
def register_version(request: HttpRequest, body: VersionIn):
    """201 with the version and the criteria's decision (`gate`); the same body again
    answers 200 with the same version; the same `ai_model` with other fields, 409."""
    version, created = services.version_register(
        actor=services.Actor.for_key(request.auth),
        data=services.VersionInput(
            family=body.family,
            ai_model=body.ai_model,
            artifact_uri=body.artifact_uri,
            artifact_sha256=body.artifact_sha256,
            health_url=body.health_url or "",
            evaluation=body.evaluation,
            notes=body.notes,
        ),
    )
    return Status(201 if created else 200, version_out(selectors.version_by_ai_model(version.ai_model)))


class VersionFilters(Schema):
    family: Annotated[str, Field(max_length=100)] | None = None
    status: VersionStatus | None = None
    cursor: Annotated[str, Field(pattern=CURSOR_PATTERN, description="A `next_cursor` this API returned.")] | None = (
        None
    )
    limit: Annotated[int, Field(ge=1, le=500)] = 50


@router.get(
    "/versions",
    auth=AnyScopeAuth("models", "read"),
    response={200: VersionPageOut, **ERRORS},
    summary="List model versions, newest first, with cursor pagination",
)
def list_versions(request: HttpRequest, filters: Query[VersionFilters]):
    before_id = decode_cursor(filters.cursor) if filters.cursor else None
    rows = list(
        selectors.versions(family=filters.family or "", status=filters.status or "", before_id=before_id)[
            : filters.limit + 1
        ]
    )
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return {"items": [version_out(v) for v in rows], "next_cursor": encode_cursor(rows[-1].pk) if more else None}


@router.get(
    "/versions/{path:ai_model}",
    auth=AnyScopeAuth("models", "read"),
    response={200: VersionOut, **ERRORS},
    summary="One model version: status, approval expiry, case, evaluation",
)
def get_version(request: HttpRequest, ai_model: str):
    version = selectors.version_by_ai_model(ai_model)
    if version is None:
        raise ModelVersion.DoesNotExist(f"No model version {ai_model!r} is registered.")
    return version_out(version)


class RouteOut(Schema):
    ai_model: str = Field(description="The version to run this key's task on.")
    rollout: int | None = Field(description="The family's active rollout, if any.")
    weight: int = Field(description="The candidate's share of the family's traffic now, in percent.")
    role: str = Field(description="candidate, stable or drill.")


class RouteQuery(Schema):
    family: Annotated[QueryText, Field(min_length=1, max_length=100)]
    key: Annotated[QueryText, Field(min_length=1)]


@router.get(
    "/route",
    auth=ApiKeyAuth("tasks"),
    response={200: RouteOut, **ERRORS},
    summary="Which version of a family a task with this key runs on (deterministic)",
)
def route(request: HttpRequest, query: Query[RouteQuery]):
    """The same key gets the same answer at the same weight, and a key on the
    candidate stays there when the weight rises (a hash of family and key). Tasks
    on a candidate with no traffic (0%, rolled back) are denied by the gate."""
    from deployments import routing

    found = routing.route(query.family, query.key)
    if found is None:
        raise ModelVersion.DoesNotExist(f"Family {query.family!r} has no approved model version.")
    return {"ai_model": found.ai_model, "rollout": found.rollout, "weight": found.weight, "role": found.role}

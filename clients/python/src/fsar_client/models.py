"""What the API answers, as small typed values. Each keeps the server's JSON as `body`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def case_id(value: Any) -> int | None:
    """A review case's id as an integer. The API gives it as an integer for reports
    and, in this version, as a string for tasks; both become an int here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def gate_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The gate's answer in a task's, a decision's or a report's JSON, as the
    fields Decision and ReportResult share."""
    gate = body.get("gate") or {}
    return {
        "decision": gate.get("decision"),
        "reason": gate.get("reason"),
        "policy": gate.get("policy"),
        "case": case_id(gate.get("case")),
        "case_status": gate.get("case_status"),
        "rationale": gate.get("rationale"),
    }


@dataclass(frozen=True)
class Decision:
    """A task's status and the gate's decision on it.

    `status` is the task's (`registered` when allowed, `held`, `denied`, `running`,
    `succeeded`, `failed`, `cancelled`); `decision` the gate's (`allow`, `hold`,
    `deny`). `version` changes whenever either does (only from the decision
    endpoint; None when read from a task)."""

    task_id: int
    external_id: str
    status: str
    decision: str | None
    reason: str | None
    policy: str | None
    case: int | None
    case_status: str | None
    rationale: str | None
    version: str | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def held(self) -> bool:
        return self.status == "held"

    @property
    def denied(self) -> bool:
        return self.status == "denied"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Decision:
        """From a task (`POST /tasks`, `GET /tasks/{id}`) or a decision answer."""
        return cls(
            task_id=body["task_id"] if "task_id" in body else body["id"],
            external_id=body["external_id"],
            status=body["status"],
            **gate_fields(body),
            version=body.get("version"),
            body=body,
        )


@dataclass(frozen=True)
class Cost:
    """What a task cost: AI cost in micro-units of the billing currency, and tokens."""

    micros: int | None = None
    tokens: int | None = None

    def __add__(self, other: Cost) -> Cost:
        def add(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else a + b

        return Cost(micros=add(self.micros, other.micros), tokens=add(self.tokens, other.tokens))

    @classmethod
    def of(cls, value: Any) -> Cost:
        """A Cost from what a `cost_from` hook returned: a Cost, a dict with
        `micros`/`tokens`, a `(micros, tokens)` pair, or None."""
        if value is None:
            return cls()
        if isinstance(value, Cost):
            return value
        if isinstance(value, dict):
            return cls(micros=value.get("micros"), tokens=value.get("tokens"))
        if isinstance(value, tuple) and len(value) == 2:
            return cls(micros=value[0], tokens=value[1])
        raise TypeError(f"cost_from returned {value!r}; expected a Cost, a dict, a (micros, tokens) pair or None")


@dataclass(frozen=True)
class ReportResult:
    """The gate's answer to an FSAR report: `decision` (`allow`, `hold`, `deny`),
    `reason`, `policy`, and the committee `case` when one was opened. `created` is
    False when the same report had been submitted before."""

    id: str
    created: bool
    decision: str | None
    reason: str | None
    policy: str | None
    case: int | None
    case_status: str | None
    rationale: str | None
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any], *, created: bool) -> ReportResult:
        return cls(id=body["id"], created=created, **gate_fields(body), body=body)


@dataclass(frozen=True)
class ModelVersion:
    """A registered AI model version (`POST /models/versions`, `GET /models/versions/{ai_model}`).

    `status` is the version's (`registered`, `pending_review`, `approved`, `rejected`,
    `revoked`, …, as the server names them); `decision`, `reason`, `policy` and
    `case` are what the criteria decided on registration: a version the committee
    must approve has its `case`. `created` is False when the same version had been
    registered before (or when it was read, not registered)."""

    id: int
    family: str
    ai_model: str
    status: str
    status_reason: str
    artifact_uri: str
    artifact_sha256: str
    health_url: str | None
    evaluation: dict[str, float]
    approved_until: str | None
    decision: str | None
    reason: str | None
    policy: str | None
    case: int | None
    case_status: str | None
    created: bool = False
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_json(cls, body: dict[str, Any], *, created: bool = False) -> ModelVersion:
        gate = body.get("gate") or {}
        return cls(
            id=body["id"],
            family=body["family"],
            ai_model=body["ai_model"],
            status=body["status"],
            status_reason=body.get("status_reason", ""),
            artifact_uri=body["artifact_uri"],
            artifact_sha256=body["artifact_sha256"],
            health_url=body.get("health_url"),
            evaluation=dict(body.get("evaluation") or {}),
            approved_until=body.get("approved_until"),
            decision=gate.get("decision"),
            reason=gate.get("reason"),
            policy=gate.get("policy"),
            case=case_id(body.get("case")),
            case_status=body.get("case_status"),
            created=created,
            body=body,
        )


def version_request(
    family: str,
    ai_model: str,
    artifact_uri: str,
    artifact_sha256: str,
    health_url: str | None,
    evaluation: Mapping[str, float] | None,
    notes: str,
) -> dict[str, Any]:
    """The body of `POST /models/versions`."""
    body: dict[str, Any] = {
        "family": family,
        "ai_model": ai_model,
        "artifact_uri": artifact_uri,
        "artifact_sha256": artifact_sha256,
        "evaluation": dict(evaluation or {}),
        "notes": notes,
    }
    if health_url is not None:
        body["health_url"] = health_url
    return body


@dataclass(frozen=True)
class Route:
    """Where a key's task goes (`GET /models/route`): `ai_model` to register it
    with, the family's active `rollout` (None without one), the candidate's
    current `weight` in percent, and this key's `role` (`candidate`, `stable` or
    `drill`)."""

    ai_model: str
    rollout: int | None
    weight: int
    role: str
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Route:
        return cls(
            ai_model=body["ai_model"], rollout=body.get("rollout"), weight=body["weight"], role=body["role"], body=body
        )

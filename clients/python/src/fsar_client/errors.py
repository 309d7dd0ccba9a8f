"""Typed errors. Every one carries the server's JSON answer as `body` (None when
there was no answer, e.g. the server could not be reached)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsar_client.models import Decision


class FSARError(Exception):
    """Anything FSAR refused or could not do. `status_code` is the HTTP status
    (None without an answer), `body` the server's JSON, `detail` its message."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body

    @property
    def detail(self) -> str:
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        return detail if isinstance(detail, str) else str(self)


class AuthError(FSARError):
    """401: the API key is missing, unknown, revoked or expired; 403: it lacks the scope."""


class NotFound(FSARError):
    """404: no such task (or one another API key registered) or report."""


class InvalidInput(FSARError):
    """400, 413 or 422: the request was refused as it is; `field` names the first
    problem (e.g. `task_type`, `tasks[3].started_at`) when the server said."""

    @property
    def field(self) -> str | None:
        body = self.body if isinstance(self.body, dict) else {}
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return errors[0].get("field")
        field = body.get("field")
        return field if isinstance(field, str) else None


class Conflict(FSARError):
    """409: e.g. the same `external_id` registered with other fields (`fields`
    names them), a transition the task's state does not allow, or the same
    report id with different content."""

    @property
    def fields(self) -> list[str]:
        fields = self.body.get("fields") if isinstance(self.body, dict) else None
        return list(fields) if isinstance(fields, list) else []


class GateUnavailable(FSARError):
    """Retryable: the gate could not decide (503), the key is over its rate limit
    (429), a proxy failed (502, 504) or the server could not be reached, and the
    client's own retries ran out. `retry_after` is the server's hint in seconds."""

    retryable = True

    def __init__(
        self, message: str, *, status_code: int | None = None, body: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after


class _GateAnswer(FSARError):
    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message, body=decision.body)
        self.decision = decision

    @property
    def task_id(self) -> int:
        return self.decision.task_id

    @property
    def external_id(self) -> str:
        return self.decision.external_id

    @property
    def reason(self) -> str | None:
        return self.decision.reason

    @property
    def policy(self) -> str | None:
        return self.decision.policy

    @property
    def case(self) -> int | None:
        return self.decision.case


class Held(_GateAnswer):
    """The gate holds the task for the ethics committee (and `on_hold="raise"`, or
    the wait reached `max_wait`). Calling again with the same key picks the same
    task up; `case` is the committee case it waits on."""


class Denied(_GateAnswer):
    """The gate denied the task: `reason`, `policy` and `case` say why."""

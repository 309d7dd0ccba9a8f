"""The execution gate as `tasks` sees it: a decision type and one call.

The gate itself is composed in `fsar/` (settings.TASK_GATE), so that `tasks`
never imports `reviews`. The gate fails closed: anything that goes wrong while
deciding becomes GateUnavailable, which the API answers with 503 and
Retry-After, never with `allow`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from tasks.models import ExecutionTask

logger = logging.getLogger(__name__)

Decision = Literal["allow", "hold", "deny"]


@dataclass(frozen=True)
class GateDecision:
    decision: Decision
    reason: str
    policy: str | None = None
    case: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class GateUnavailable(Exception):
    """The gate could not decide. Retry later; the task was not stored."""

    retry_after_seconds = 5


class GateNeedsTransaction(Exception):
    """A gate asked outside a transaction raises this when its decision would
    write (open or reopen a review case): the caller asks again inside one, so
    that the write and the task commit together or not at all. Most decisions
    write nothing, and a registration then needs no transaction of its own."""


def require_transaction() -> None:
    """For a gate about to write: raise GateNeedsTransaction unless inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise GateNeedsTransaction()


def _gate() -> Callable[[ExecutionTask], GateDecision]:
    # import_string is a dict lookup once the module is imported; not caching it
    # lets tests swap the gate with override_settings.
    return import_string(settings.TASK_GATE)


def ask_gate(task: ExecutionTask) -> GateDecision:
    try:
        decision = _gate()(task)
    except GateUnavailable:
        raise
    except GateNeedsTransaction as exc:
        if not transaction.get_connection().in_atomic_block:
            raise
        raise GateUnavailable("the gate asked for a transaction inside one") from exc
    except Exception as exc:
        logger.exception("The execution gate failed while deciding on %s", task.external_id)
        raise GateUnavailable(str(exc)) from exc
    if not isinstance(decision, GateDecision) or decision.decision not in ("allow", "hold", "deny"):
        raise GateUnavailable(f"the gate returned no valid decision: {decision!r}")
    return decision

"""The execution gate, composed here so that `tasks` does not import `reviews`.

`decide` is settings.TASK_GATE: the task's model version (`deployments`: not
approved → hold or deny), its audits (`assurance`: demoted by a required suite that
failed, errored or is overdue → hold or deny, as the suite says), then
the policy rules, review cases and the kill switch of `reviews` decide on every
task being registered. `tasks.gate.ask_gate`
turns any failure into GateUnavailable (503 + Retry-After): the gate fails closed.
`recheck` is settings.TASK_GATE_RECHECK, the same decision asked again at the
moment of use (`start`, and a re-registration of an allowed task).
`task_gate_details` is settings.TASK_GATE_DETAILS, adding the case's status and
rationale to the task API's `gate`, for a page of tasks in one query.

The policy rules' condition "alert firing for this model" is answered by
`model_alert_firing` below (indicators), passed to reviews as a provider:
reviews never imports indicators, and the question is asked only when a rule
that reaches the task uses the condition.
"""

from django.db import DEFAULT_DB_ALIAS

from assurance.gate import audit_decision
from deployments.gate import model_decision
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.models import GateState
from tasks.gate import GateDecision, GateUnavailable, ReadWithTask
from tasks.models import ExecutionTask
from tasks.services import InvalidTaskInput


class UnknownProposal(InvalidTaskInput, GateUnavailable):
    """An unknown `proposal_id` is the client's mistake (422), not the gate's.

    It is also a GateUnavailable only so that `ask_gate` re-raises it as it is
    instead of wrapping it into a 503; the API's TaskError handler (first in the
    MRO) answers it with 422 naming the field."""


def model_alert_firing(ai_model: str) -> bool:
    """Whether an indicator alert about `ai_model` is firing (or acknowledged and not
    resolved): indicators.selectors.model_alert_firing, imported when first asked.
    The name is asked as the task gives it and, when that differs, case-folded and
    stripped, so a respelling of a model whose alert fires is held too."""
    from indicators import selectors as indicator_selectors

    names = dict.fromkeys([ai_model, ai_model.strip().casefold()])
    return any(indicator_selectors.model_alert_firing(name) for name in names)


def decide(task: ExecutionTask) -> GateDecision:
    """The model version first (deployments: not approved → hold or deny), then
    the policy rules, cases and kill switch (reviews). One read of the gate's
    state serves both: its rules version keys the model cache as it keys the rules."""
    state = review_selectors.gate_state()
    by_model = model_decision(task.ai_model, rules_version=state.rules_version) or audit_decision(
        task.ai_model, rules_version=state.rules_version
    )
    if by_model is not None:
        return by_model
    try:
        return review_services.decide_task(task, state=state, alert_firing=model_alert_firing)
    except review_services.UnknownProposal as exc:
        raise UnknownProposal(str(exc), field="proposal_id") from exc


def recheck(task: ExecutionTask, *, read: tuple | None = None) -> GateDecision:
    """The gate's answer now for a task stored as allowed, inside the transaction
    that would start it (so a case it reopens commits with the task held on it):
    the same parts in the same order as `decide`, so a model version revoked or
    lapsed since registration stops the task at start too. `read`: the gate's
    state row as `tasks` read it with the task (recheck.read_with_task)."""
    state = review_selectors.gate_state() if read is None else _gate_state_from(read)
    by_model = model_decision(task.ai_model, rules_version=state.rules_version) or audit_decision(
        task.ai_model, rules_version=state.rules_version
    )
    if by_model is not None:
        return by_model
    return review_services.recheck_task(task, state=state, alert_firing=model_alert_firing)


def _gate_state_sql(connection) -> str:
    """reviews.selectors.gate_state()'s read, for `tasks` to make with its read of the task."""
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in GateState._meta.concrete_fields)
    return f"SELECT {columns} FROM {qn(GateState._meta.db_table)} WHERE {qn('id')} = 1"


def _gate_state_from(row: tuple) -> GateState:
    """The gate state a row of _gate_state_sql holds; a row of NULLs (none there):
    gate_state() itself, which fails closed and says so."""
    if row[0] is None:
        return review_selectors.gate_state()
    return GateState.from_db(DEFAULT_DB_ALIAS, [f.attname for f in GateState._meta.concrete_fields], row)


# Every start reads the gate's state: in the same statement as the task (tasks.services).
recheck.read_with_task = ReadWithTask(sql=_gate_state_sql)


def task_gate_details(tasks: list[ExecutionTask]) -> dict[int, dict]:
    """settings.TASK_GATE_DETAILS: extra gate keys per task id, for a whole page at once."""
    return review_services.tasks_gate_details(tasks)

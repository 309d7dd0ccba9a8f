"""The execution gate, composed here so that `tasks` does not import `reviews`.

Until policies exist (the reviews issue), every task is allowed, and the
decision says so.
"""

from tasks.gate import GateDecision
from tasks.models import ExecutionTask

DEFAULT_ALLOW = GateDecision(
    decision="allow",
    reason="no review policy is configured yet; every task is allowed",
    policy="default-allow",
    case=None,
)


def decide(task: ExecutionTask) -> GateDecision:
    return DEFAULT_ALLOW

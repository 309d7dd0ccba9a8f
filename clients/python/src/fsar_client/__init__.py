"""fsar_client: put AI tasks under FSAR's execution gate.

    from fsar_client import FSAR
    fsar = FSAR("https://fsar.example.com", "fsar_…")      # or FSAR_URL / FSAR_API_KEY
    @fsar.task("implement_idea", ai_model="llama-4-70b-2026-12", customer="cust_acme")
    def implement(idea): ...

See the README for waiting on the committee, cost reporting, errors and callbacks.
"""

from fsar_client._version import API_VERSION, __version__
from fsar_client.callbacks import InvalidSignature, verify_callback
from fsar_client.client import FSAR, AsyncPending, Pending, TaskContext, TaskRun
from fsar_client.errors import AuthError, Conflict, Denied, FSARError, GateUnavailable, Held, InvalidInput, NotFound
from fsar_client.models import Cost, Decision, ModelVersion, ReportResult, Route

__all__ = [
    "API_VERSION",
    "AsyncPending",
    "AuthError",
    "Conflict",
    "Cost",
    "Decision",
    "Denied",
    "FSAR",
    "FSARError",
    "GateUnavailable",
    "Held",
    "InvalidInput",
    "InvalidSignature",
    "ModelVersion",
    "NotFound",
    "Pending",
    "ReportResult",
    "Route",
    "TaskContext",
    "TaskRun",
    "__version__",
    "verify_callback",
]

"""Signals of assurance for the apps above it and for the lead's wiring.

`version_demoted(sender=ModelVersion, model_version=..., reason=...)` is sent
inside the transaction that records a model version's demotion by its audits (a
required suite failed or errored, or is overdue past its grace). Rollouts
connect a receiver that aborts a rollout whose candidate is that version.
`version_restored(sender=ModelVersion, model_version=..., reason=...)` is sent
when a passing run (or the committee) lifts the demotion.
"""

from django.dispatch import Signal

version_demoted = Signal()
version_restored = Signal()

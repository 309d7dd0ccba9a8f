"""What assurance does when its own signals fire, beyond its services.

A model version demoted by its audits (assurance.signals.version_demoted) is
taken out of any rollout where it is the candidate: the rollout is aborted, the
candidate goes to 0% at once, its held and registered tasks are denied and its
running ones get `stop` callbacks (deployments.services.rollout_abort_for_version).
"""

from __future__ import annotations

from deployments import services as deployment_services


def abort_rollout_of_demoted_version(sender, *, model_version, reason: str, **kwargs) -> None:
    deployment_services.rollout_abort_for_version(
        model_version, f"the candidate was demoted by its audits: {reason}", actor="assurance"
    )

"""The errors of deployments' services; `status_code` is the HTTP answer."""

from __future__ import annotations

from core.errors import Refused


class ModelError(Refused):
    """A request the model-version rules refuse; `status_code` is the HTTP answer."""


class InvalidVersion(ModelError):
    status_code = 422


class VersionConflict(ModelError):
    status_code = 409


class NotAllowed(ModelError):
    status_code = 409


class RolloutError(ModelError):
    """A rollout transition that is not possible now (409), saying why."""

    status_code = 409

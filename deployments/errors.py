"""The errors of deployments' services; `status_code` is the HTTP answer."""

from __future__ import annotations

from typing import Any


class ModelError(Exception):
    """A request the model-version rules refuse; `status_code` is the HTTP answer."""

    status_code = 409

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidVersion(ModelError):
    status_code = 422


class VersionConflict(ModelError):
    status_code = 409


class NotAllowed(ModelError):
    status_code = 409


class RolloutError(ModelError):
    """A rollout transition that is not possible now (409), saying why."""

    status_code = 409

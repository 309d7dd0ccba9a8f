"""Model versions and rollouts from the client: register a version, read it, and
ask which version of a family a task should run on (the rollout's route).
`FSAR` inherits these calls; they use its transport (`_sync`, `_async`, `_json`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from fsar_client import _protocol as p
from fsar_client.models import ModelVersion, Route, version_request

T = TypeVar("T")


class ModelsAPI:
    retry: p.Retry

    def _sync(self, flow: p.Flow[T]) -> T:  # pragma: no cover - FSAR's
        raise NotImplementedError

    async def _async(self, flow: p.Flow[T]) -> T:  # pragma: no cover - FSAR's
        raise NotImplementedError

    def _json(self, call: p.Call) -> p.Flow[dict[str, Any]]:  # pragma: no cover - FSAR's
        raise NotImplementedError

    def _version_flow(self, body: dict[str, Any]) -> p.Flow[ModelVersion]:
        response = yield from p.send(p.Call("POST", "/models/versions", json=body), self.retry)
        return ModelVersion.from_json(response.json(), created=response.status_code == 201)

    def _read_version_flow(self, ai_model: str) -> p.Flow[ModelVersion]:
        call = p.Call("GET", f"/models/versions/{quote(ai_model, safe='')}")
        return ModelVersion.from_json((yield from self._json(call)))

    def _route_flow(self, family: str, key: str) -> p.Flow[Route]:
        call = p.Call("GET", "/models/route", params={"family": family, "key": key})
        return Route.from_json((yield from self._json(call)))

    def register_model_version(
        self,
        family: str,
        ai_model: str,
        *,
        artifact_uri: str,
        artifact_sha256: str,
        health_url: str | None = None,
        evaluation: Mapping[str, float] | None = None,
        notes: str = "",
    ) -> ModelVersion:
        """Register a model version (scope `models`). The criteria decide at once:
        a version held for the committee comes back with its `case`, one that fails
        a criterion as `blocked`. Tasks on `ai_model` run only once it is approved.
        The same registration again returns the same version (`created=False`); the
        same `ai_model` with other fields raises Conflict."""
        body = version_request(family, ai_model, artifact_uri, artifact_sha256, health_url, evaluation, notes)
        return self._sync(self._version_flow(body))

    async def aregister_model_version(
        self,
        family: str,
        ai_model: str,
        *,
        artifact_uri: str,
        artifact_sha256: str,
        health_url: str | None = None,
        evaluation: Mapping[str, float] | None = None,
        notes: str = "",
    ) -> ModelVersion:
        body = version_request(family, ai_model, artifact_uri, artifact_sha256, health_url, evaluation, notes)
        return await self._async(self._version_flow(body))

    def model_version(self, ai_model: str) -> ModelVersion:
        """A registered model version's status, approval expiry and case (scope
        `models` or `read`); NotFound when it was never registered."""
        return self._sync(self._read_version_flow(ai_model))

    async def amodel_version(self, ai_model: str) -> ModelVersion:
        return await self._async(self._read_version_flow(ai_model))

    def route(self, family: str, key: str) -> Route:
        """Which version of `family` a task with `key` (a customer, a request id:
        whatever should stick to one version) runs on now (scope `tasks`). The
        answer is deterministic: the same key, the same version at the same weight,
        and a key on the candidate stays there as its weight rises. Register the
        task with `route.ai_model`: the gate denies a candidate's task that the
        route did not send there ("not routed"). NotFound when the family has no
        approved version."""
        return self._sync(self._route_flow(family, key))

    async def aroute(self, family: str, key: str) -> Route:
        return await self._async(self._route_flow(family, key))

"""`FSAR`: the decorator, the context manager and the API calls, sync and async.

A task's run and the handles given back (TaskRun, TaskContext, Pending,
AsyncPending) are in fsar_client.runs; they are importable from here too."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx

from fsar_client import _protocol as p
from fsar_client._version import API_VERSION, __version__
from fsar_client.errors import Conflict, Denied, FSARError, Held
from fsar_client.model_versions import ModelsAPI
from fsar_client.models import Cost, Decision, ReportResult
from fsar_client.runs import (
    MAX_ERROR_CHARS,
    AsyncPending,
    OnHold,
    Pending,
    TaskContext,
    TaskRun,
    _current_run,
    _Deferred,
    _error_text,
    _Run,
    _Spec,
)

logger = logging.getLogger("fsar_client")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# One long-poll asks the server to wait this long at most (it answers at once when the decision changes).
LONG_POLL_SECONDS = 30


class FSAR(ModelsAPI):
    """A client for FSAR's agent API.

    `base_url` is the server (`https://fsar.example.com`; `…/api/v1` is accepted
    too), `api_key` a key with the `tasks` scope (and `reports` for
    `submit_report`); both default to FSAR_URL and FSAR_API_KEY. Every call is
    retried with jittered backoff after a dropped connection, a timeout, 429,
    502, 503 or 504 (Retry-After honoured), `retries` times at most. Pass
    `http_client` / `async_http_client` to use your own httpx clients (proxies,
    TLS, transports); the client sets URL and headers on each request itself.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("FSAR_URL")
        api_key = api_key or os.environ.get("FSAR_API_KEY")
        if not base_url:
            raise ValueError("FSAR needs base_url (or FSAR_URL in the environment)")
        if not api_key:
            raise ValueError("FSAR needs api_key (or FSAR_API_KEY in the environment)")
        root = base_url.rstrip("/")
        suffix = f"/api/v{API_VERSION}"
        self.api_root = root if root.endswith(suffix) else root + suffix
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"fsar-client/{__version__}",
        }
        self.timeout = timeout
        self.retry = p.Retry(attempts=retries + 1)
        self._client = http_client
        self._own_client = http_client is None
        self._async_client = async_http_client
        self._own_async_client = async_http_client is None

    def __repr__(self) -> str:
        return f"FSAR({self.api_root!r})"

    # ------------------------------------------------------------------ plumbing

    def _sync(self, flow: p.Flow[T]) -> T:
        if self._client is None:
            self._client = httpx.Client()
        return p.run_sync(flow, self._client, base=self.api_root, headers=self._headers, timeout=self.timeout)

    async def _async(self, flow: p.Flow[T]) -> T:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient()
        return await p.run_async(
            flow, self._async_client, base=self.api_root, headers=self._headers, timeout=self.timeout
        )

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._async_client is not None and self._own_async_client:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> FSAR:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> FSAR:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --------------------------------------------------------------------- flows

    def _json(self, call: p.Call) -> p.Flow[dict[str, Any]]:
        response = yield from p.send(call, self.retry)
        body: dict[str, Any] = response.json()
        return body

    def _register_flow(
        self,
        *,
        task_type: str,
        external_id: str,
        ai_model: str | None = None,
        customer: str | None = None,
        proposal_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> p.Flow[Decision]:
        body = {
            "external_id": external_id,
            "task_type": task_type,
            "ai_model": ai_model,
            "customer": customer,
            "proposal_id": proposal_id,
            "payload": dict(payload) if payload is not None else None,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return Decision.from_json((yield from self._json(p.Call("POST", "/tasks", json=body))))

    def _decision_flow(self, task_id: int, *, wait: int = 0, since: str | None = None) -> p.Flow[Decision]:
        params: dict[str, Any] = {"wait": wait}
        if since is not None:
            params["since"] = since
        call = p.Call("GET", f"/tasks/{task_id}/decision", params=params, timeout=wait + self.timeout)
        return Decision.from_json((yield from self._json(call)))

    def _wait_flow(self, task_id: int, *, max_wait: float) -> p.Flow[Decision]:
        """Long-poll while the task is held, for `max_wait` seconds at most. A
        server that answers sooner than asked without a change (it allows shorter
        waits, or none) gets jittered backoff between calls, never a storm."""
        deadline = time.monotonic() + max_wait
        quick = 0
        while True:
            wait = max(0, min(LONG_POLL_SECONDS, int(deadline - time.monotonic())))
            asked = time.monotonic()
            decision = yield from self._decision_flow(task_id, wait=wait)
            if not decision.held or time.monotonic() >= deadline or wait == 0:
                return decision
            if time.monotonic() - asked < wait - 1:
                quick += 1
                yield p.Sleep(min(self.retry.backoff(quick), max(0.0, deadline - time.monotonic())))
            else:
                quick = 0

    def _start_flow(self, task_id: int) -> p.Flow[dict[str, Any]]:
        return (yield from self._json(p.Call("POST", f"/tasks/{task_id}/start", json={})))

    def _finish_flow(
        self,
        task_id: int,
        *,
        outcome: Literal["succeeded", "failed"],
        cost_micros: int | None = None,
        tokens: int | None = None,
        error: str = "",
    ) -> p.Flow[dict[str, Any]]:
        body: dict[str, Any] = {"outcome": outcome, "error": error[:MAX_ERROR_CHARS]}
        if cost_micros is not None:
            body["cost_micros"] = cost_micros
        if tokens is not None:
            body["tokens"] = tokens
        return (yield from self._json(p.Call("POST", f"/tasks/{task_id}/finish", json=body)))

    def _cancel_flow(self, task_id: int, *, reason: str = "") -> p.Flow[dict[str, Any]]:
        return (yield from self._json(p.Call("POST", f"/tasks/{task_id}/cancel", json={"reason": reason[:2000]})))

    def _report_flow(self, report: str | bytes | Mapping[str, Any]) -> p.Flow[ReportResult]:
        if isinstance(report, Mapping):
            call = p.Call("POST", "/proposals", json=dict(report))
        else:
            content = report.encode() if isinstance(report, str) else report
            call = p.Call("POST", "/proposals", content=content, content_type="text/markdown")
        response = yield from p.send(call, self.retry)
        return ReportResult.from_json(response.json(), created=response.status_code == 201)

    def _prepare_flow(self, spec: _Spec, external_id: str, payload: Mapping[str, Any] | None) -> p.Flow[Any]:
        """Register, then act on the gate: start when allowed (returns the started
        task's Decision), wait / raise Held / defer when held, raise Denied when
        denied. A start refused because the gate changed its mind since
        registration (409) is handled like the new decision: the function does
        not run."""
        decision = yield from self._register_flow(
            task_type=spec.task_type,
            external_id=external_id,
            ai_model=spec.ai_model,
            customer=spec.customer,
            proposal_id=spec.proposal_id,
            payload=payload,
        )
        return (yield from self._until_started(decision, spec.on_hold, spec.max_wait))

    def _until_started(self, decision: Decision, on_hold: OnHold, max_wait: float) -> p.Flow[Any]:
        deadline = time.monotonic() + max_wait
        while True:
            if decision.held:
                if on_hold == "raise":
                    raise Held(f"task {decision.external_id} is held: {decision.reason}", decision)
                if on_hold == "defer":
                    return _Deferred(decision)
                decision = yield from self._wait_flow(decision.task_id, max_wait=max(0.0, deadline - time.monotonic()))
                if decision.held:
                    raise Held(
                        f"task {decision.external_id} is still held after waiting {max_wait:g} s: {decision.reason}",
                        decision,
                    )
                continue
            if decision.denied:
                raise Denied(f"task {decision.external_id} was denied: {decision.reason}", decision)
            if decision.status != "registered":
                raise Conflict(
                    f"task {decision.external_id} is already {decision.status}; a task runs once "
                    "(use another key to run it again)",
                    body=decision.body,
                )
            try:
                started = yield from self._start_flow(decision.task_id)
                return Decision.from_json(started)
            except Conflict:
                # The gate may have changed its mind since registration (kill switch,
                # revoked approval): ask what it says now and act on that.
                now = yield from self._decision_flow(decision.task_id)
                if now.status == "registered":
                    raise
                decision = now

    # --------------------------------------------------------------- public calls

    def register(
        self,
        task_type: str,
        *,
        external_id: str,
        ai_model: str | None = None,
        customer: str | None = None,
        proposal_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Register a task and get the gate's decision (the same `external_id`
        with the same fields again returns the same task)."""
        return self._sync(
            self._register_flow(
                task_type=task_type,
                external_id=external_id,
                ai_model=ai_model,
                customer=customer,
                proposal_id=proposal_id,
                payload=payload,
            )
        )

    async def aregister(
        self,
        task_type: str,
        *,
        external_id: str,
        ai_model: str | None = None,
        customer: str | None = None,
        proposal_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Decision:
        return await self._async(
            self._register_flow(
                task_type=task_type,
                external_id=external_id,
                ai_model=ai_model,
                customer=customer,
                proposal_id=proposal_id,
                payload=payload,
            )
        )

    def decision(self, task_id: int, *, wait: int = 0, since: str | None = None) -> Decision:
        """The gate's decision on a task now, or (with `wait`) a long-poll: see the API docs."""
        return self._sync(self._decision_flow(task_id, wait=wait, since=since))

    async def adecision(self, task_id: int, *, wait: int = 0, since: str | None = None) -> Decision:
        return await self._async(self._decision_flow(task_id, wait=wait, since=since))

    def wait_for_decision(self, task_id: int, *, max_wait: float = 3600) -> Decision:
        """Wait (long-polling) while the task is held, `max_wait` seconds at most; the decision then."""
        return self._sync(self._wait_flow(task_id, max_wait=max_wait))

    async def await_for_decision(self, task_id: int, *, max_wait: float = 3600) -> Decision:
        return await self._async(self._wait_flow(task_id, max_wait=max_wait))

    def start(self, task_id: int) -> dict[str, Any]:
        return self._sync(self._start_flow(task_id))

    async def astart(self, task_id: int) -> dict[str, Any]:
        return await self._async(self._start_flow(task_id))

    def finish(
        self,
        task_id: int,
        *,
        outcome: Literal["succeeded", "failed"],
        cost_micros: int | None = None,
        tokens: int | None = None,
        error: str = "",
    ) -> dict[str, Any]:
        return self._sync(
            self._finish_flow(task_id, outcome=outcome, cost_micros=cost_micros, tokens=tokens, error=error)
        )

    async def afinish(
        self,
        task_id: int,
        *,
        outcome: Literal["succeeded", "failed"],
        cost_micros: int | None = None,
        tokens: int | None = None,
        error: str = "",
    ) -> dict[str, Any]:
        return await self._async(
            self._finish_flow(task_id, outcome=outcome, cost_micros=cost_micros, tokens=tokens, error=error)
        )

    def cancel(self, task_id: int, *, reason: str = "") -> dict[str, Any]:
        return self._sync(self._cancel_flow(task_id, reason=reason))

    async def acancel(self, task_id: int, *, reason: str = "") -> dict[str, Any]:
        return await self._async(self._cancel_flow(task_id, reason=reason))

    def submit_report(self, report: str | bytes | Mapping[str, Any]) -> ReportResult:
        """Submit an FSAR report, markdown (str or bytes) or the equivalent dict;
        the gate's answer and the case. The same report again returns the same
        answer (`created=False`); the same id with other content raises Conflict."""
        return self._sync(self._report_flow(report))

    async def asubmit_report(self, report: str | bytes | Mapping[str, Any]) -> ReportResult:
        return await self._async(self._report_flow(report))

    # ----------------------------------------------------------- running a task

    @staticmethod
    def cost(*, micros: int | None = None, tokens: int | None = None) -> None:
        """Add to the cost of the task running in this context (thread or asyncio
        task): call it from inside a decorated function or a `task_context` block."""
        run = _current_run.get()
        if run is None:
            raise RuntimeError("fsar.cost() was called outside a task run by FSAR")
        run.cost = run.cost + Cost(micros=micros, tokens=tokens)

    def _spec(
        self,
        task_type: str,
        *,
        ai_model: str | None,
        customer: str | None,
        proposal_id: str | None,
        payload: Any,
        key: Any,
        on_hold: OnHold,
        max_wait: float,
    ) -> _Spec:
        if on_hold not in ("wait", "raise", "defer"):
            raise ValueError(f"on_hold must be 'wait', 'raise' or 'defer', not {on_hold!r}")
        return _Spec(task_type, ai_model, customer, proposal_id, payload, key, on_hold, max_wait)

    def _finish_call(
        self, run: _Run, outcome: Literal["succeeded", "failed"], error: str = ""
    ) -> p.Flow[dict[str, Any]]:
        return self._finish_flow(
            run.task_id, outcome=outcome, cost_micros=run.cost.micros, tokens=run.cost.tokens, error=error
        )

    def _after_error(self, run: _Run, exc: BaseException) -> p.Flow[dict[str, Any]]:
        """The task's code raised: an Exception finishes it as failed with the error
        text; anything else (KeyboardInterrupt, cancellation) cancels it."""
        if isinstance(exc, Exception):
            return self._finish_call(run, "failed", _error_text(exc))
        return self._cancel_flow(run.task_id, reason=f"interrupted: {_error_text(exc)}")

    def _report_error_sync(self, run: _Run, exc: BaseException) -> None:
        try:
            self._sync(self._after_error(run, exc))
        except FSARError:
            logger.warning("Could not report task %s as failed", run.task_id, exc_info=True)

    async def _report_error_async(self, run: _Run, exc: BaseException) -> None:
        try:
            await self._async(self._after_error(run, exc))
        except FSARError:
            logger.warning("Could not report task %s as failed", run.task_id, exc_info=True)

    def task(
        self,
        task_type: str,
        *,
        ai_model: str | None = None,
        customer: str | None = None,
        proposal_id: str | None = None,
        payload: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        key: str | Callable[..., Any] | None = None,
        on_hold: OnHold = "wait",
        max_wait: float = 3600,
        cost_from: Callable[[Any], Any] | None = None,
    ) -> Callable[[F], F]:
        """Put a function (sync or async) under the gate.

        Each call registers a task (`external_id` from `key`: the name of one of
        the function's parameters, or a callable of its arguments; without it, a
        new id per call, kept for that call's retries), then on `allow` starts it,
        runs the function and finishes it as succeeded with its cost (from
        `fsar.cost()` calls inside and `cost_from(result)`), or as failed with the
        error text if it raised (and re-raises). On `hold`: `on_hold="wait"`
        long-polls up to `max_wait` seconds (then raises Held), `"raise"` raises
        Held, `"defer"` returns a Pending handle. On `deny`: raises Denied.
        """
        spec = self._spec(
            task_type,
            ai_model=ai_model,
            customer=customer,
            proposal_id=proposal_id,
            payload=payload,
            key=key,
            on_hold=on_hold,
            max_wait=max_wait,
        )

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    external_id = spec.external_id(fn, args, kwargs)
                    prepared = await self._async(self._prepare_flow(spec, external_id, spec.payload_for(args, kwargs)))
                    if isinstance(prepared, _Deferred):
                        return AsyncPending(self, spec, prepared.decision, fn, args, kwargs, cost_from)
                    return await self._run_async(prepared, fn, args, kwargs, cost_from)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                external_id = spec.external_id(fn, args, kwargs)
                prepared = self._sync(self._prepare_flow(spec, external_id, spec.payload_for(args, kwargs)))
                if isinstance(prepared, _Deferred):
                    return Pending(self, spec, prepared.decision, fn, args, kwargs, cost_from)
                return self._run_sync(prepared, fn, args, kwargs, cost_from)

            return wrapper  # type: ignore[return-value]

        return decorate

    def _run_sync(
        self, started: Decision, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cost_from: Any
    ) -> Any:
        run = _Run(started, Cost())
        token = _current_run.set(run)
        try:
            result = fn(*args, **kwargs)
            if cost_from is not None:
                run.cost = run.cost + Cost.of(cost_from(result))
        except BaseException as exc:
            self._report_error_sync(run, exc)
            raise
        finally:
            _current_run.reset(token)
        self._sync(self._finish_call(run, "succeeded"))
        return result

    async def _run_async(
        self, started: Decision, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cost_from: Any
    ) -> Any:
        run = _Run(started, Cost())
        token = _current_run.set(run)
        try:
            result = await fn(*args, **kwargs)
            if cost_from is not None:
                run.cost = run.cost + Cost.of(cost_from(result))
        except BaseException as exc:
            await self._report_error_async(run, exc)
            raise
        finally:
            _current_run.reset(token)
        await self._async(self._finish_call(run, "succeeded"))
        return result

    def task_context(
        self,
        task_type: str,
        *,
        ai_model: str | None = None,
        customer: str | None = None,
        proposal_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        key: str | None = None,
        on_hold: Literal["wait", "raise"] = "wait",
        max_wait: float = 3600,
    ) -> TaskContext:
        """The decorator's steps around a block: `with fsar.task_context(...) as t:`
        (or `async with`). `key` is the `external_id` itself here; `t.cost()` or
        `fsar.cost()` report the cost. `on_hold="defer"` has no meaning for a block."""
        if on_hold == "defer":  # type: ignore[comparison-overlap]
            raise ValueError("on_hold='defer' needs a function to run later: use the decorator")
        spec = self._spec(
            task_type,
            ai_model=ai_model,
            customer=customer,
            proposal_id=proposal_id,
            payload=payload,
            key=key,
            on_hold=on_hold,
            max_wait=max_wait,
        )
        return TaskContext(self, spec, spec.external_id(None, (), {}))


__all__ = ["FSAR", "AsyncPending", "Pending", "TaskContext", "TaskRun", "LONG_POLL_SECONDS", "MAX_ERROR_CHARS"]

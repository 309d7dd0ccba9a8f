"""A task while it runs, and the handles the client gives back: what the decorator
registers (_Spec), the running task (TaskRun, and `cost()` through the context
variable), `task_context` (TaskContext) and a held task to resume later
(Pending, AsyncPending). The calls to the server are fsar_client.client.FSAR's."""

from __future__ import annotations

import contextvars
import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fsar_client import _protocol as p
from fsar_client.models import Cost, Decision

if TYPE_CHECKING:
    from fsar_client.client import FSAR

OnHold = Literal["wait", "raise", "defer"]

# A failed task's error text is cut to what the server stores.
MAX_ERROR_CHARS = 20_000

_current_run: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("fsar_current_run", default=None)


@dataclass
class _Spec:
    """What the decorator or context manager registers."""

    task_type: str
    ai_model: str | None
    customer: str | None
    proposal_id: str | None
    payload: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None
    key: str | Callable[..., Any] | None
    on_hold: OnHold
    max_wait: float

    def external_id(self, fn: Callable[..., Any] | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """From the explicit key (a parameter's name, or a callable of the
        arguments), else generated once for this call (and kept for its retries)."""
        if self.key is None:
            return f"{self.task_type}-{uuid.uuid4().hex}"
        if callable(self.key):
            return str(self.key(*args, **kwargs))
        if fn is None:
            return str(self.key)
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        if self.key not in bound.arguments:
            raise TypeError(f"key={self.key!r} is not a parameter of {fn.__qualname__}")
        return str(bound.arguments[self.key])

    def payload_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any] | None:
        return self.payload(*args, **kwargs) if callable(self.payload) else self.payload


@dataclass
class _Run:
    """A started task while its code runs: what `cost()` adds to."""

    decision: Decision
    cost: Cost

    @property
    def task_id(self) -> int:
        return self.decision.task_id


class TaskRun:
    """The running task, as a `task_context` gives it: ids, the decision it ran
    on, and `cost()` to report what it cost."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    @property
    def task_id(self) -> int:
        return self._run.task_id

    @property
    def external_id(self) -> str:
        return self._run.decision.external_id

    @property
    def decision(self) -> Decision:
        return self._run.decision

    def cost(self, *, micros: int | None = None, tokens: int | None = None) -> None:
        self._run.cost = self._run.cost + Cost(micros=micros, tokens=tokens)


@dataclass(frozen=True)
class _Deferred:
    decision: Decision


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class TaskContext:
    """`with fsar.task_context(...) as t:` / `async with ...`: registers (and waits
    or raises as the gate says) and starts on entry; finishes on exit, as failed
    with the error text when the block raised (the error propagates)."""

    def __init__(self, fsar: FSAR, spec: _Spec, external_id: str) -> None:
        self._fsar = fsar
        self._spec = spec
        self.external_id = external_id
        self._run: _Run | None = None
        self._token: contextvars.Token[_Run | None] | None = None

    def _enter(self, started: Decision) -> TaskRun:
        self._run = _Run(started, Cost())
        self._token = _current_run.set(self._run)
        return TaskRun(self._run)

    def _exit(self) -> _Run:
        assert self._run is not None and self._token is not None, "the task context was not entered"
        _current_run.reset(self._token)
        run, self._run, self._token = self._run, None, None
        return run

    def __enter__(self) -> TaskRun:
        spec = self._spec
        return self._enter(self._fsar._sync(self._fsar._prepare_flow(spec, self.external_id, spec.payload_for((), {}))))

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        run = self._exit()
        if exc is not None:
            self._fsar._report_error_sync(run, exc)
            return
        self._fsar._sync(self._fsar._finish_call(run, "succeeded"))

    async def __aenter__(self) -> TaskRun:
        spec = self._spec
        payload = spec.payload_for((), {})
        return self._enter(await self._fsar._async(self._fsar._prepare_flow(spec, self.external_id, payload)))

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        run = self._exit()
        if exc is not None:
            await self._fsar._report_error_async(run, exc)
            return
        await self._fsar._async(self._fsar._finish_call(run, "succeeded"))


class Pending:
    """A held task, as `on_hold="defer"` returns it: the function has not run.
    `resume()` waits for the committee (long-polling, `max_wait` seconds at most),
    then starts the task, runs the function and returns its result; it raises
    Held if the task is still held then, Denied if it was denied."""

    def __init__(
        self,
        fsar: FSAR,
        spec: _Spec,
        decision: Decision,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        cost_from: Any,
    ) -> None:
        self._fsar, self._spec, self.decision = fsar, spec, decision
        self._fn, self._args, self._kwargs, self._cost_from = fn, args, kwargs, cost_from

    @property
    def task_id(self) -> int:
        return self.decision.task_id

    @property
    def external_id(self) -> str:
        return self.decision.external_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} task {self.task_id} ({self.decision.status}): {self.decision.reason}>"

    def _until_started(self, max_wait: float | None) -> p.Flow[Any]:
        return self._fsar._until_started(self.decision, "wait", self._spec.max_wait if max_wait is None else max_wait)

    def status(self) -> Decision:
        """The gate's decision now (no waiting)."""
        self.decision = self._fsar.decision(self.task_id)
        return self.decision

    def resume(self, *, max_wait: float | None = None) -> Any:
        started = self._fsar._sync(self._until_started(max_wait))
        return self._fsar._run_sync(started, self._fn, self._args, self._kwargs, self._cost_from)


class AsyncPending(Pending):
    """`Pending` for an async function: `await pending.resume()`, `await pending.status()`."""

    async def status(self) -> Decision:  # type: ignore[override]
        self.decision = await self._fsar.adecision(self.task_id)
        return self.decision

    async def resume(self, *, max_wait: float | None = None) -> Any:
        started = await self._fsar._async(self._until_started(max_wait))
        return await self._fsar._run_async(started, self._fn, self._args, self._kwargs, self._cost_from)

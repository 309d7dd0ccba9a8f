"""The client's logic once, for sync and async code alike.

Every operation is written as a generator (a "flow") that yields what it needs
done, a `Call` (one HTTP request; the answer, or the transport error, is sent
back in) or a `Sleep`, and returns its result. `run_sync` and `run_async`
carry the effects out with httpx.Client / httpx.AsyncClient, time.sleep /
asyncio.sleep. Retries, backoff, waiting for the humans and the decorator's
register-wait-start steps are therefore one piece of code each.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from fsar_client.errors import AuthError, Conflict, FSARError, GateUnavailable, InvalidInput, NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # below the API root, e.g. "/tasks/12/start"
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # seconds; None: the client's default


@dataclass(frozen=True)
class Sleep:
    seconds: float


Effect = Call | Sleep
Flow = Generator[Effect, Any, T]

# Statuses worth retrying: the gate could not decide, the key's rate limit, proxies.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass
class Retry:
    """How often and how long to retry. Every call the client makes is safe to
    repeat (registration is idempotent on `external_id`; start, finish and cancel
    repeated are no-ops on the server), so all of them are retried after a
    dropped connection, a timeout, 429, 502, 503 and 504."""

    attempts: int = 6
    base: float = 0.5  # seconds before the first retry, doubling each time ...
    cap: float = 30.0  # ... up to this
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Jittered exponential backoff: a random delay in [d/2, d], d = base·2^(attempt-1), capped."""
        delay = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return self.rng.uniform(delay / 2, delay)

    def after(self, retry_after: float | None, attempt: int) -> float:
        """Never sooner than the server's Retry-After, plus up to 20% jitter so that
        many clients told the same do not come back at the same instant."""
        if retry_after is None:
            return self.backoff(attempt)
        return retry_after + self.rng.uniform(0, max(0.1, retry_after * 0.2))


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_for(response: httpx.Response) -> FSARError:
    """The typed error for an answer that is not a success."""
    body = json_of(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    request = response.request
    message = f"HTTP {status} from {request.method} {request.url.path}: {detail or response.text[:200]}"
    if status in RETRY_STATUSES:
        return GateUnavailable(message, status_code=status, body=body, retry_after=retry_after_seconds(response))
    kinds: dict[int, type[FSARError]] = {
        400: InvalidInput,
        401: AuthError,
        403: AuthError,
        404: NotFound,
        409: Conflict,
        413: InvalidInput,
        422: InvalidInput,
    }
    return kinds.get(status, FSARError)(message, status_code=status, body=body)


def send(call: Call, retry: Retry) -> Flow[httpx.Response]:
    """One request, retried on a transport error or a retryable status; a success
    is returned, anything else raised as its typed error."""
    attempt = 0
    while True:
        attempt += 1
        try:
            response: httpx.Response = yield call
        except httpx.TransportError as exc:
            if attempt >= retry.attempts:
                raise GateUnavailable(
                    f"could not reach FSAR ({type(exc).__name__}: {exc}) after {attempt} attempts"
                ) from exc
            yield Sleep(retry.backoff(attempt))
            continue
        if response.is_success:
            return response
        error = error_for(response)
        if response.status_code in RETRY_STATUSES and attempt < retry.attempts:
            yield Sleep(retry.after(getattr(error, "retry_after", None), attempt))
            continue
        raise error


def _request_kwargs(call: Call, base: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    request_headers = dict(headers)
    if call.content_type:
        request_headers["Content-Type"] = call.content_type
    kwargs: dict[str, Any] = {
        "headers": request_headers,
        "params": call.params or None,
        "timeout": call.timeout if call.timeout is not None else timeout,
    }
    if call.content is not None:
        kwargs["content"] = call.content
    elif call.json is not None:
        kwargs["json"] = call.json
    return {"method": call.method, "url": base + call.path, **kwargs}


def run_sync(flow: Flow[T], client: httpx.Client, *, base: str, headers: dict[str, str], timeout: float) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, error = None, None
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            continue
        try:
            value = client.request(**_request_kwargs(effect, base, headers, timeout))
        except httpx.TransportError as exc:
            error = exc


async def run_async(
    flow: Flow[T], client: httpx.AsyncClient, *, base: str, headers: dict[str, str], timeout: float
) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, error = None, None
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            continue
        try:
            value = await client.request(**_request_kwargs(effect, base, headers, timeout))
        except httpx.TransportError as exc:
            error = exc

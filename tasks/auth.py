"""API-key authentication for the agent API (`Authorization: Bearer <key>`)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from tasks.models import ApiKey

KEY_PREFIX = "fsar_"
# last_used_at is refreshed at most this often, to keep writes off the hot path.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class MissingScope(Exception):
    def __init__(self, *scopes: str) -> None:
        names = " or ".join(f"'{scope}'" for scope in scopes)
        super().__init__(f"This API key lacks the {names} scope.")
        self.scopes = scopes


class RateLimited(Exception):
    """The key used up its requests for this window; retry after `retry_after` seconds (429)."""

    def __init__(self, limit: int, window: int, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded: {limit} requests per {window} s for this API key.")
        self.retry_after = retry_after


def check_rate_limit(api_key: ApiKey, now: float | None = None) -> None:
    """A fixed window per key in the cache (Redis when REDIS_URL is set, so shared
    by every web process). settings.API_RATE_LIMIT_REQUESTS = 0 turns it off."""
    limit = settings.API_RATE_LIMIT_REQUESTS
    if limit <= 0:
        return
    window = max(1, settings.API_RATE_LIMIT_WINDOW_SECONDS)
    now = time.time() if now is None else now
    slot = int(now // window)
    key = f"fsar:ratelimit:{api_key.pk}:{slot}"
    cache.add(key, 0, timeout=window + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        used = 1
    if used > limit:
        raise RateLimited(limit, window, retry_after=max(1, int((slot + 1) * window - now) + 1))


class ApiKeyAuth(HttpBearer):
    """Authenticates a request by API key and checks that the key holds one of `scopes`.

    A missing, unknown, revoked or expired key is a 401 (ninja's default when
    this returns None); a valid key without the scope raises MissingScope (403).
    """

    def __init__(self, *scopes: str) -> None:
        super().__init__()
        self.scopes = scopes

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = find_active_key(token)
        if api_key is None:
            return None
        if not any(api_key.has_scope(scope) for scope in self.scopes):
            raise MissingScope(*self.scopes)
        check_rate_limit(api_key)
        request.api_key = api_key
        return api_key


def find_active_key(secret: str, now: datetime | None = None) -> ApiKey | None:
    if not secret.startswith(KEY_PREFIX):
        return None
    now = now or timezone.now()
    api_key = ApiKey.objects.select_related("owner").filter(key_hash=ApiKey.hash_secret(secret)).first()
    if api_key is None or not api_key.is_active(now) or not api_key.owner.is_active:
        return None
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_GRANULARITY:
        # An update() that writes no history row, on purpose: last use is telemetry
        # about a request, not a change anyone made to the key (nobody to record, no
        # reason), it runs on every authenticated request's path (at most once per
        # LAST_USED_GRANULARITY), and a history row each time would bury the key's
        # real changes (created, expiry, revoked). The key's history keeps whatever
        # last_used_at was when a real change was saved.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)

"""API-key authentication for the agent API (`Authorization: Bearer <key>`)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from tasks.models import ApiKey

KEY_PREFIX = "fsar_"
# last_used_at is refreshed at most this often, to keep writes off the hot path.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class MissingScope(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"This API key lacks the '{scope}' scope.")
        self.scope = scope


class ApiKeyAuth(HttpBearer):
    """Authenticates a request by API key and checks that the key holds `scope`.

    A missing, unknown, revoked or expired key is a 401 (ninja's default when
    this returns None); a valid key without the scope raises MissingScope (403).
    """

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = find_active_key(token)
        if api_key is None:
            return None
        if not api_key.has_scope(self.scope):
            raise MissingScope(self.scope)
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
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)

"""Health checks: a cheap liveness probe for load balancers, and a readiness
check with details for operators.

`/healthz` (anyone, every few seconds): `SELECT 1` and a Redis ping, answered
as ok / not ok per component and nothing else: no hosts, ports, roles or error
text, which go to the log. `/healthz/ready` (operators, or a bearer token for
a monitoring system): the same with details, plus the schema check
(fsar.schema), which costs a query per table and index and so is cached:
refreshed after every `migrate` (post_migrate) and at most
HEALTHZ_SCHEMA_SECONDS old otherwise.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from fsar.schema import check_schema

logger = logging.getLogger("fsar.health")
SCHEMA_CACHE_KEY = "fsar:health:schema"


def database_state() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any failure is the answer
        logger.error("health: the database is not reachable: %s", exc)
        return {"ok": False, "vendor": connection.vendor, "detail": str(exc)}


def redis_state() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "inline", "detail": "REDIS_URL unset: jobs run inline"}
    try:
        import django_rq

        django_rq.get_connection("default").ping()
        return {"ok": True, "mode": "redis"}
    except Exception as exc:
        logger.error("health: Redis is not reachable: %s", exc)
        return {"ok": False, "mode": "redis", "detail": str(exc)}


def schema_state(*, refresh: bool = False) -> dict:
    """The schema check's result, from the cache unless `refresh` or it is older
    than HEALTHZ_SCHEMA_SECONDS (or a migrate has run since)."""
    now = timezone.now()
    state = None if refresh else cache.get(SCHEMA_CACHE_KEY)
    # Aged by its own timestamp too: the cache's expiry runs on the cache server's clock.
    if state is not None and now - datetime.fromisoformat(state["checked_at"]) > timedelta(
        seconds=settings.HEALTHZ_SCHEMA_SECONDS
    ):
        state = None
    if state is None:
        try:
            problems = [str(p) for p in check_schema()]
            state = {"ok": not problems, "problems": problems}
        except Exception as exc:
            logger.error("health: the schema check failed: %s", exc)
            state = {"ok": False, "problems": [], "detail": str(exc)}
        state["checked_at"] = now.isoformat()
        if problems := state["problems"]:
            logger.error("health: the database schema is behind the code: %s", "; ".join(problems))
        cache.set(SCHEMA_CACHE_KEY, state, settings.HEALTHZ_SCHEMA_SECONDS)
    return state


def forget_schema_state(**kwargs) -> None:
    """post_migrate: the schema may have changed; the next readiness check looks again."""
    try:
        cache.delete(SCHEMA_CACHE_KEY)
    except Exception as exc:  # a cache that is down must not fail a migrate
        logger.warning("health: could not clear the cached schema check: %s", exc)

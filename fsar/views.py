"""Project views: the home page (the operator dashboard) and /healthz."""

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.roles import OPERATORS, has_role
from fsar import dashboard
from fsar.schema import check_schema


def home(request: HttpRequest) -> HttpResponse:
    """Operators see the dashboard; other roles see what they can open."""
    if has_role(request.user, OPERATORS):
        return render(request, "fsar/dashboard.html", dashboard.context())
    return render(request, "fsar/home.html")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and schema state as JSON: 200 when all are ok, else 503."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    if checks["database"]["ok"]:
        checks["schema"] = _check_schema()
    else:
        checks["schema"] = {"ok": False, "detail": "database unreachable"}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, **checks}, status=200 if ok else 503)


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any failure is the answer
        return {"ok": False, "detail": str(exc)}


def _check_redis() -> dict:
    from django.conf import settings

    if not settings.REDIS_URL:
        return {"ok": True, "mode": "inline", "detail": "REDIS_URL unset: jobs run inline"}
    try:
        import django_rq

        django_rq.get_connection("default").ping()
        return {"ok": True, "mode": "redis"}
    except Exception as exc:
        return {"ok": False, "mode": "redis", "detail": str(exc)}


def _check_schema() -> dict:
    try:
        problems = check_schema()
    except Exception as exc:
        return {"ok": False, "detail": str(exc)}
    return {"ok": not problems, "problems": [str(p) for p in problems]}

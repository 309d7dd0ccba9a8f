"""Project views: the home page (the operator dashboard), /healthz and /healthz/ready, and
the page a person sees when a request fails on our side (handler500)."""

import sys

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.templatetags.static import static
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.defaults import server_error as django_server_error
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from billing import selectors as billing_selectors
from billing import stripe_client
from core.roles import COMMITTEE, CUSTOMERS, OPERATORS, has_role
from fsar import dashboard, health
from fsar.api import UNAVAILABLE_RETRY_AFTER_SECONDS
from reviews import selectors as review_selectors

# What a page cannot do without for a moment (a restart, a failover, a killed connection, a
# cancelled statement): the same failures the API answers 503 + Retry-After for (fsar/api.py).
DATABASE_UNREACHABLE = (DatabaseOperationalError, DatabaseInterfaceError)
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def home(request: HttpRequest) -> HttpResponse:
    """Operators see the dashboard; committee members the cases waiting for them;
    customers this period's usage and their invoices."""
    if has_role(request.user, OPERATORS):
        return render(request, "fsar/dashboard.html", dashboard.context(user=request.user))
    now = timezone.now()
    context = {}
    if has_role(request.user, COMMITTEE):
        context["member"] = review_selectors.member_overview(user=request.user, now=now)
    if has_role(request.user, CUSTOMERS):
        customer = billing_selectors.customer_for_user(request.user)
        context["customer"] = customer
        context["billing"] = billing_selectors.customer_overview(customer, now) if customer else None
        context["stripe_configured"] = stripe_client.is_configured()
    return render(request, "fsar/home.html", context)


@login_not_required
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): the site's icon."""
    return redirect(static("fsar/favicon.svg"), permanent=True)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: is the database answering `SELECT 1`, does
    Redis answer a ping. Only ok / not ok per component (details go to the log);
    200 when both are ok, else 503. Two queries at most (fsar/health.py)."""
    checks = {"database": health.database_state()["ok"], "redis": health.redis_state()["ok"]}
    ok = all(checks.values())
    return JsonResponse({"ok": ok, **checks}, status=200 if ok else 503)


@login_not_required
@never_cache
@require_GET
def healthz_ready(request: HttpRequest) -> JsonResponse:
    """Readiness with details, for operators or a monitoring system holding
    HEALTHZ_TOKEN: database, Redis and the (cached) schema check. 404 to anyone
    else, like every page a role may not use."""
    if not (_has_health_token(request) or has_role(request.user, OPERATORS)):
        raise Http404("No such page.")
    database = health.database_state()
    checks = {
        "database": database,
        "redis": health.redis_state(),
        "schema": health.schema_state() if database["ok"] else {"ok": False, "detail": "database unreachable"},
    }
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, **checks}, status=200 if ok else 503)


def _has_health_token(request: HttpRequest) -> bool:
    token = settings.HEALTHZ_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and constant_time_compare(given, f"Bearer {token}")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500, for pages (the API answers JSON itself). Called while the exception is
    being handled: when the database or Redis could not be reached, a 503 with Retry-After
    and a page that says so (a person can retry in a moment, and a proxy or monitor can
    tell an outage from a bug); anything else, the plain 500 page. Neither page reads the
    database or the session: both render without a request context. Django logs either
    with its traceback (django.request, "Service Unavailable: <path>")."""
    failure = sys.exc_info()[1]
    if isinstance(failure, DATABASE_UNREACHABLE + REDIS_UNREACHABLE):
        what = "Redis" if isinstance(failure, REDIS_UNREACHABLE) else "its database"
        response = HttpResponse(loader.get_template("503.html").render({"what": what}), status=503)
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
        return response
    return django_server_error(request)

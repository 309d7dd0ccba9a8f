"""GET /metrics: the Prometheus text format, for a scraper holding METRICS_TOKEN.

Without the token (unset, missing or wrong) the answer is the site's ordinary 404,
the same as for a path that does not exist, whatever the method: a caller without
the token cannot tell that the endpoint exists. The token is compared in constant
time. No session or login is involved, so an operator's browser sees a 404 too.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from fsar.prometheus.collector import FsarCollector


def has_metrics_token(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    # Both sides are compared whole (hmac.compare_digest), so the time taken does not
    # depend on how much of a guess is right.
    return bool(token) and constant_time_compare(given, f"Bearer {token}")


@login_not_required
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not has_metrics_token(request):
        raise Http404("No such page.")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FsarCollector(now=timezone.now()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)

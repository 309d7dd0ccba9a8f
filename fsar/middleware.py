"""Project middleware: login everywhere but a few public paths, JSON body limits for the API."""

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, JsonResponse

# The agent API authenticates with API keys, not sessions; /healthz is for probes.
PUBLIC_PREFIXES = ("/api/", "/healthz", "/static/", "/billing/stripe/webhook/")


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every page needs a login, except the login page itself, /healthz and the API."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


def body_limit_for(path: str) -> int:
    if path.rstrip("/").endswith("/tasks/bulk"):
        return settings.API_BULK_MAX_BODY_BYTES
    if path.rstrip("/").endswith("/audits/runs"):
        return settings.AUDITS_MAX_BODY_BYTES
    return settings.API_MAX_BODY_BYTES


class ApiBodyLimitMiddleware:
    """Answer an oversized API request with a JSON 413 before its body is read.

    Without this, Django raises RequestDataTooBig and the client gets an HTML 400.
    Bodies without a Content-Length are still capped by DATA_UPLOAD_MAX_MEMORY_SIZE,
    which the API's exception handler also turns into a JSON 413.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
            limit = body_limit_for(request.path)
            if length > limit:
                return payload_too_large(limit)
        return self.get_response(request)


def payload_too_large(limit: int) -> JsonResponse:
    return JsonResponse({"detail": f"Request body too large: the limit is {limit} bytes."}, status=413)

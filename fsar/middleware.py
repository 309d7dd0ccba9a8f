"""Project middleware: login everywhere but a few public paths, body limits, request ids."""

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse, JsonResponse

# The agent API authenticates with API keys, not sessions; /healthz is for probes.
PUBLIC_PREFIXES = ("/api/", "/healthz", "/static/", "/billing/stripe/webhook/")


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every page needs a login, except the login page itself, /healthz and the API."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


# The upload views, the only requests that may carry more than Django's default body:
# the API's bulk backfill, the report upload page, and the audit uploads (API and page).
REPORT_UPLOAD_PATH = "/reviews/upload/"
AUDIT_UPLOAD_PATH = "/audits/upload/"


def is_audit_upload(path: str) -> bool:
    return (path.startswith("/api/") and path.rstrip("/").endswith("/audits/runs")) or path == AUDIT_UPLOAD_PATH


def is_upload(path: str) -> bool:
    return (
        (path.startswith("/api/") and path.rstrip("/").endswith("/tasks/bulk"))
        or path == REPORT_UPLOAD_PATH
        or is_audit_upload(path)
    )


def body_limit_for(path: str) -> int:
    if is_audit_upload(path):
        return settings.AUDITS_MAX_BODY_BYTES
    if is_upload(path):
        return settings.API_BULK_MAX_BODY_BYTES
    return settings.API_MAX_BODY_BYTES


class ApiBodyLimitMiddleware:
    """Answer an oversized request with a 413 before its body is read: the API's
    (JSON) by its per-path limit, the upload views' by API_BULK_MAX_BODY_BYTES.

    Without this, Django raises RequestDataTooBig and the client gets an HTML 400.
    The upload views may carry more than DATA_UPLOAD_MAX_MEMORY_SIZE (Django's
    default, which holds for every other form): their body, within its limit, is
    read here so Django's cap does not apply to them. Bodies without a
    Content-Length are still capped by DATA_UPLOAD_MAX_MEMORY_SIZE, which the API's
    exception handler also turns into a JSON 413.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        upload = is_upload(request.path)
        if request.path.startswith("/api/") or upload:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
            limit = body_limit_for(request.path)
            if length > limit:
                if request.path.startswith("/api/"):
                    return payload_too_large(limit)
                return HttpResponse(
                    f"Request body too large: the limit is {limit} bytes.", status=413, content_type="text/plain"
                )
            cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            json_body = request.content_type == "application/json"
            if upload and json_body and cap is not None and length > cap:
                # Within this view's limit: read it now, so that request.body is not refused.
                # (Multipart files never count towards Django's cap.)
                request._body = request.read()
        return self.get_response(request)


def payload_too_large(limit: int) -> JsonResponse:
    return JsonResponse({"detail": f"Request body too large: the limit is {limit} bytes."}, status=413)

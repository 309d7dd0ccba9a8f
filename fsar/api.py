"""The API root: one NinjaAPI at /api/v1/, composing every app's router, and the
error handlers that keep every failure a JSON answer naming the problem."""

import logging
import traceback
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError
from ninja.openapi.views import openapi_json

from billing.api import router as billing_router
from core.roles import COMMITTEE, OPERATORS, has_role
from deployments.api import router as deployments_router
from deployments.models import ModelVersion
from deployments.services import ModelError
from fsar.middleware import body_limit_for
from reviews.api import router as reviews_router
from reviews.models import Report
from reviews.reports import ReportInvalid, ReportTooLarge
from reviews.services import ReviewError
from tasks.api import BadCursor
from tasks.api import router as tasks_router
from tasks.auth import MissingScope, RateLimited, check_rate_limit, find_active_key
from tasks.gate import GateUnavailable
from tasks.metrics_api import router as metrics_router
from tasks.models import ExecutionTask
from tasks.services import ApiKeyError, TaskError

logger = logging.getLogger(__name__)

API_VERSION = "1"
# Who reads the interactive docs: the people who answer for the API's use.
DOCS_ROLES = (OPERATORS, COMMITTEE)


def bearer_key(request: HttpRequest):
    """The active API key in `Authorization: Bearer …`, or None (any scope will do)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return find_active_key(token.strip())


def docs_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """ninja wraps both the schema and the docs page with this.

    The schema (`openapi.json`) is for programs and people: any active API key
    (whatever its scopes; rate-limited like every call) or a logged-in operator
    or committee member. The interactive docs are a page for operators and the
    committee only: anonymous visitors are sent to log in, other roles (customers)
    get the same 404 as any page their role may not open."""
    serves_schema = getattr(view, "func", None) is openapi_json

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if serves_schema and "Authorization" in request.headers:
            api_key = bearer_key(request)
            if api_key is None:
                return JsonResponse({"detail": "Missing, unknown, revoked or expired API key."}, status=401)
            try:
                check_rate_limit(api_key)
            except RateLimited as exc:
                return JsonResponse({"detail": str(exc)}, status=429, headers={"Retry-After": str(exc.retry_after)})
            return view(request, *args, **kwargs)
        if has_role(request.user, *DOCS_ROLES):
            return view(request, *args, **kwargs)
        if request.user.is_authenticated:
            raise Http404("No such page.")
        if serves_schema:
            return JsonResponse(
                {"detail": "Send an API key (Authorization: Bearer <key>), or log in as an operator."}, status=401
            )
        return redirect_to_login(request.get_full_path())

    return wrapped


api = NinjaAPI(
    title="FSAR agent API",
    version=API_VERSION,
    description=(
        "For the AI side: register tasks and get the execution gate's decision, report progress "
        "and cost, backfill history, register AI model versions. Authenticate with "
        "`Authorization: Bearer <key>`."
    ),
    urls_namespace="api",
    docs_decorator=docs_access,
)
api.add_router("/tasks", tasks_router)
api.add_router("/proposals", reviews_router)
api.add_router("/metrics", metrics_router)
api.add_router("/billing", billing_router)
api.add_router("/models", deployments_router)


class IndexOut(Schema):
    name: str
    version: str
    schema_url: str
    docs_url: str
    authentication: str
    client_url: str


CLIENT_README = settings.BASE_DIR / "clients" / "python" / "README.md"


@api.get("/", auth=None, response=IndexOut, tags=["index"], summary="Where the schema and the docs are")
def index(request: HttpRequest) -> dict:
    """No key needed: the API's name and version, the OpenAPI schema's address (any
    API key may fetch it) and the interactive docs' (for logged-in operators)."""
    return {
        "name": api.title,
        "version": API_VERSION,
        "schema_url": reverse("api:openapi-json"),
        "docs_url": reverse("api:openapi-view"),
        "authentication": "Authorization: Bearer <key>",
        "client_url": reverse("api:client_readme"),
    }


@api.get("/client", auth=None, tags=["index"], url_name="client_readme", include_in_schema=False)
def client_readme(request: HttpRequest) -> HttpResponse:
    """The Python client's README (clients/python, package fsar_client), as markdown:
    how the AI side installs the client and puts its tasks under the gate."""
    return HttpResponse(CLIENT_README.read_bytes(), content_type="text/markdown; charset=utf-8")


def field_path(loc) -> str:
    """`["body", "body", "tasks", 3, "started_at"]` → `tasks[3].started_at`."""
    parts = list(loc)
    while parts and parts[0] in ("body", "query", "path", "header", "filters"):
        parts.pop(0)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def field_error(error: dict) -> dict:
    """One validation error as {field, message}. A bad key of an object (pydantic's
    `[key]` location) names the object as the field and the key in the message."""
    loc, message = list(error.get("loc", ())), error.get("msg", "invalid")
    if len(loc) >= 2 and loc[-1] == "[key]":
        message = f"key {str(loc[-2])[:70]!r}: {message}"
        loc = loc[:-2]
    return {"field": field_path(loc), "message": message}


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [field_error(e) for e in exc.errors]
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return api.create_response(
        request, {"detail": f"{first['field']}: {first['message']}", "errors": errors}, status=422
    )


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(request, {"detail": "Missing, unknown, revoked or expired API key."}, status=401)


@api.exception_handler(MissingScope)
def on_missing_scope(request: HttpRequest, exc: MissingScope) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=403)


@api.exception_handler(TaskError)
def on_task_error(request: HttpRequest, exc: TaskError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)


@api.exception_handler(ApiKeyError)
def on_api_key_error(request: HttpRequest, exc: ApiKeyError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=422)


@api.exception_handler(BadCursor)
def on_bad_cursor(request: HttpRequest, exc: BadCursor) -> HttpResponse:
    return api.create_response(request, {"detail": f"cursor: {exc}"}, status=422)


@api.exception_handler(ExecutionTask.DoesNotExist)
def on_no_task(request: HttpRequest, exc: Exception) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "No such task."}, status=404)


@api.exception_handler(GateUnavailable)
def on_gate_unavailable(request: HttpRequest, exc: GateUnavailable) -> HttpResponse:
    response = api.create_response(
        request,
        {"detail": "The execution gate cannot decide right now; nothing was stored. Retry later."},
        status=503,
    )
    response["Retry-After"] = str(exc.retry_after_seconds)
    return response


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = body_limit_for(request.path)
    return api.create_response(request, {"detail": f"Request body too large: the limit is {limit} bytes."}, status=413)


@api.exception_handler(ReportInvalid)
def on_report_invalid(request: HttpRequest, exc: ReportInvalid) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc), "field": exc.field, "line": exc.line}, status=422)


@api.exception_handler(ReportTooLarge)
def on_report_too_large(request: HttpRequest, exc: ReportTooLarge) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=413)


@api.exception_handler(ReviewError)
def on_review_error(request: HttpRequest, exc: ReviewError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)


@api.exception_handler(ModelError)
def on_model_error(request: HttpRequest, exc: ModelError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)


@api.exception_handler(ModelVersion.DoesNotExist)
def on_no_model_version(request: HttpRequest, exc: Exception) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "No such model version."}, status=404)


@api.exception_handler(Report.DoesNotExist)
def on_no_report(request: HttpRequest, exc: Exception) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "No such report."}, status=404)


@api.exception_handler(RateLimited)
def on_rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    response = api.create_response(request, {"detail": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug, not bad input: logged with its traceback, and still a JSON answer
    (ninja's default re-raises outside DEBUG, and Django answers with an HTML page)."""
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    body = {"detail": "Internal error; it is logged for the operators."}
    if settings.DEBUG:
        body["traceback"] = traceback.format_exc()
    return api.create_response(request, body, status=500)


@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Every path under /api/ that no endpoint matches: a JSON 404, not Django's HTML page."""
    return JsonResponse(
        {"detail": f"No API endpoint at {request.path}; /api/v1/ names the schema and the docs."}, status=404
    )

"""The project's URLs plus `POST /billing/bench/noop`: reads the body and answers
`{"received": true}` with no verification or storage. The webhook benchmark's baseline."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from fsar.urls import urlpatterns as project_urlpatterns


@csrf_exempt
@require_POST
def noop(request: HttpRequest) -> JsonResponse:
    _ = request.body
    return JsonResponse({"received": True})


# Beside the webhook, under a path the login middleware also leaves public.
urlpatterns = [path("billing/stripe/webhook/bench-noop", noop), *project_urlpatterns]

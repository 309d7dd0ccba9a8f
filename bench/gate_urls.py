"""The project's URLs plus `POST /bench/noop`: authenticates an API key exactly as
the agent API does (same ninja auth class, same scope) and answers `{"ok": true}`.
The gate benchmark's baseline."""

from django.urls import path
from ninja import NinjaAPI

from fsar.urls import urlpatterns as project_urlpatterns
from tasks.auth import ApiKeyAuth

bench_api = NinjaAPI(urls_namespace="bench", docs_url=None, openapi_url=None)


@bench_api.post("/noop", auth=ApiKeyAuth("tasks"))
def noop(request):
    return {"ok": True}


# Under /api/ like the agent API, so that the login middleware lets it through the same way.
urlpatterns = [path("api/bench/", bench_api.urls), *project_urlpatterns]


def allow_all(task):
    from tasks.gate import GateDecision

    return GateDecision("allow", "benchmark: no gate", "bench-allow-all", None)

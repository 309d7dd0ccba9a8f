"""The project's URLs plus two baselines: `POST /api/bench/noop` authenticates an
API key exactly as the agent API does (same ninja auth class, same scope) and
answers `{"ok": true}` (the gate benchmark's); `GET /bench/plain/` is a plain
template page (the queue benchmark's)."""

from django.shortcuts import render
from django.urls import path
from ninja import NinjaAPI

from fsar.urls import urlpatterns as project_urlpatterns
from tasks.auth import ApiKeyAuth

bench_api = NinjaAPI(urls_namespace="bench", docs_url=None, openapi_url=None)


@bench_api.post("/noop", auth=ApiKeyAuth("tasks"))
def noop(request):
    return {"ok": True}


def plain(request):
    """A plain template page: the site layout and nothing else (the queue benchmark's baseline)."""
    return render(request, "base.html", {})


# Under /api/ like the agent API, so that the login middleware lets it through the same way.
urlpatterns = [path("api/bench/", bench_api.urls), path("bench/plain/", plain), *project_urlpatterns]


def allow_all(task):
    from tasks.gate import GateDecision

    return GateDecision("allow", "benchmark: no gate", "bench-allow-all", None)

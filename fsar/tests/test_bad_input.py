"""Everything under /api/ answers in JSON, whatever the request: unknown paths and bugs too."""

import pytest
from django.test import Client

from fsar.api import api

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/v1/tasks/abc"),
        ("get", "/api/v1/tasks/null,null"),
        ("get", "/api/v1/tasks/"),
        ("post", "/api/v1/tasks/abc/start"),
        ("get", "/api/v1/nothing"),
        ("delete", "/api/v2/tasks"),
    ],
)
def test_a_path_no_endpoint_matches_is_a_json_404_naming_it(agent, method, path):
    response = getattr(agent, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == f"No API endpoint at {path}; /api/v1/ names the schema and the docs."


def test_a_post_to_an_unknown_api_path_needs_no_csrf_token(api_key):
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    response = client.post("/api/v1/nothing", "{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("No API endpoint at /api/v1/nothing")


def test_a_task_id_beyond_bigint_is_a_json_404(agent):
    for path in ("/api/v1/tasks/99999999999999999999", f"/api/v1/tasks/{2**63}"):
        response = agent.get(path)
        assert response.status_code == 404
        assert response.json()["detail"].startswith("Not Found")


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_json_500_and_is_logged(agent, settings, monkeypatch, caplog, debug):
    settings.DEBUG = debug

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("tasks.selectors.task_page", broken)
    response = agent.get("/api/v1/tasks")
    assert response.status_code == 500
    assert response.json()["detail"] == "Internal error; it is logged for the operators."
    assert ("traceback" in response.json()) is debug
    assert "Unhandled error in GET /api/v1/tasks" in caplog.text
    assert api  # the handler is registered on the one NinjaAPI

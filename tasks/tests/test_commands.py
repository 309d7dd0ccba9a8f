"""create_api_key and seed_demo, run as an operator would."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tasks.models import ApiKey, ExecutionTask

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_api_key_prints_the_key_once_on_the_last_line_and_stores_only_its_hash(client):
    lines = run("create_api_key", "runner")
    secret = lines[-1]
    assert secret.startswith("fsar_")
    api_key = ApiKey.objects.get(name="runner")
    assert secret not in (api_key.key_hash, api_key.prefix)
    assert api_key.key_hash == ApiKey.hash_secret(secret)
    assert api_key.scopes == ["read", "reports", "tasks"]
    assert api_key.owner.username == "apikey-runner"
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_create_api_key_takes_an_owner_and_scopes():
    owner = get_user_model().objects.create_user("ops-bot")
    run("create_api_key", "backfiller", "--owner", "ops-bot", "--scopes", "backfill")
    api_key = ApiKey.objects.get(name="backfiller")
    assert api_key.owner == owner
    assert api_key.scopes == ["backfill"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--owner", "ghost"], "no user named 'ghost'"),
        (["--scopes", "tasks,admin"], "unknown scope(s) admin"),
    ],
)
def test_create_api_key_refuses_bad_input_and_stores_nothing(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("create_api_key", "bad", *args, stdout=StringIO())
    assert not ApiKey.objects.exists()


@pytest.fixture
def key_file(tmp_path):
    return str(tmp_path / ".demo-api-key")


def test_seed_demo_creates_logins_a_working_key_and_varied_tasks(client, key_file):
    lines = run("seed_demo", "--tasks", "600", "--key-file", key_file)
    secret = lines[-1].split("Bearer ")[1]
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    users = get_user_model().objects
    assert users.get(username="operator").groups.filter(name="Operators").exists()
    assert users.filter(groups__name="Ethics committee").count() == 3
    assert users.get(username="customer").groups.filter(name="Customers").exists()
    assert users.get(username="alice").email == "alice@fsar.example"  # notifications reach the console
    assert client.login(username="operator", password="fsar-demo-2026")
    tasks = ExecutionTask.objects.filter(external_id__startswith="demo-7-")  # other apps add a few of their own
    assert tasks.count() == 600
    assert set(tasks.values_list("task_type", flat=True)) == {
        "implement_idea",
        "idea_implementation",
        "self_improvement",
    }
    assert tasks.filter(ai_model__isnull=True).exists()
    assert tasks.filter(status="failed").exists()
    assert tasks.filter(ai_model__isnull=False).values("ai_model").distinct().count() >= 4
    # The committee has a proposed policy change to review, made by the demo operator.
    from reviews.models import PolicyChange

    (change,) = PolicyChange.objects.all()
    assert (change.status, change.proposed_by.username, change.case.status) == ("pending", "operator", "open")


def test_seed_demo_is_safe_to_rerun_and_reuses_the_demo_key(client, key_file):
    first = run("seed_demo", "--tasks", "50", "--key-file", key_file)
    second = run("seed_demo", "--tasks", "50", "--key-file", key_file)
    assert first[-1] == second[-1]  # the same key, printed again
    assert "the same as last time" in second[-2]
    assert ApiKey.objects.filter(name__startswith="demo-agent").count() == 1  # no pile of keys
    secret = first[-1].split("Bearer ")[1]
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert ExecutionTask.objects.filter(external_id__startswith="demo-7-").count() == 50
    from reviews.models import PolicyChange

    assert PolicyChange.objects.count() == 1


def test_seed_demo_new_key_revokes_the_previous_one(client, key_file):
    first = run("seed_demo", "--tasks", "50", "--key-file", key_file)[-1].split("Bearer ")[1]
    second = run("seed_demo", "--tasks", "50", "--key-file", key_file, "--new-key")[-1].split("Bearer ")[1]
    assert first != second
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 401
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
    assert ApiKey.objects.filter(name__startswith="demo-agent", revoked_at__isnull=True).count() == 1
    # A key file from another database (or a revoked key) is not reused: a new key replaces it.
    ApiKey.objects.filter(revoked_at__isnull=True).update(revoked_at="2026-01-01T00:00:00Z")
    third = run("seed_demo", "--tasks", "50", "--key-file", key_file)[-1].split("Bearer ")[1]
    assert third not in (first, second)
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {third}").status_code == 200

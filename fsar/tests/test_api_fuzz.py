"""Schemathesis against a live server: a bounded number of generated requests per
operation (fixed seed), every check on. The bar: no server error, no answer
that breaks the schema, no schema-valid request refused and no schema-violating
one accepted (bar the rules JSON Schema cannot state: schemathesis_hooks.py)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 1234
# 25 examples per operation: about half a minute of CPU here. FSAR_FUZZ_EXAMPLES=200 digs deeper.
EXAMPLES_PER_OPERATION = int(os.environ.get("FSAR_FUZZ_EXAMPLES", "25"))


def test_the_api_answers_generated_requests_as_its_schema_says(live_server, make_api_key, tmp_path):
    from tasks.models import ApiKey

    _, secret = make_api_key(scopes=list(ApiKey.Scope.values))  # every scope
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{live_server.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {secret}",
        "--checks", "all",
        "--seed", str(SEED),
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--generation-database", "none",
        "--workers", "1",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fsar.tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "Tested: " in result.stdout, result.stdout[-5000:]  # it reached the operations

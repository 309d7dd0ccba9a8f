"""In Chromium: an operator downloads a date-range export and a case's JSON and CSV
exports, and the files hold the case and its audit-chain entries; a committee
member turns the optional notices off and they stay off."""

import csv
import io
import json

import pytest
from playwright.sync_api import Page, expect

from audit.models import AuditEntry
from fsar.testing import log_in, report_md
from reviews import services
from reviews.models import NotificationPreference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
WHY = "I read the report and the rollback plan."


@pytest.fixture
def approved_case(post_report, alice, bob):
    case_id = post_report(report_md("exported-1", severity=30)).json()["gate"]["case"]
    services.comment_add(case_id=case_id, author=bob, text="Rollback plan reviewed.")
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated.")
    return case_id


def download(page: Page, click) -> tuple[str, str]:
    with page.expect_download() as info:
        click()
    dl = info.value
    assert dl.failure() is None
    with open(dl.path(), encoding="utf-8") as f:
        return dl.suggested_filename, f.read()


def chain_hashes(case_id: int) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(subject=f"case:{case_id}").order_by("seq").values_list("kind", "hash"))


def test_an_operator_downloads_a_date_range_export_with_the_case_and_its_chain(
    noon_today, page: Page, live_server, operator, approved_case
):
    today = noon_today.date().isoformat()
    log_in(page, live_server, "olivia")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Export cases").click()
    form = page.get_by_test_id("export-form")
    form.get_by_label("First day").fill(today)
    form.get_by_label("Last day").fill(today)
    form.get_by_label("Format").select_option("json")
    name, body = download(page, lambda: form.get_by_role("button", name="Download").click())

    assert name == f"fsar-cases-{today}-to-{today}.json"
    payload = json.loads(body)
    assert [c["case"]["id"] for c in payload["cases"]] == [approved_case]
    record = payload["cases"][0]
    assert record["case"]["status"] == "approved"
    assert [r["report_id"] for r in record["reports"]] == ["exported-1"]
    assert [(v["member"], v["rationale"]) for v in record["votes"]] == [("alice", WHY), ("bob", "Risks are mitigated.")]
    assert [(e["kind"], e["hash"]) for e in record["chain"]] == chain_hashes(approved_case)
    assert [e["kind"] for e in record["chain"]] == ["vote.cast", "vote.cast", "case.approved"]
    assert payload["chain_head"]["hash"] == AuditEntry.objects.order_by("-seq").first().hash

    form.get_by_label("Format").select_option("csv")
    name, body = download(page, lambda: form.get_by_role("button", name="Download").click())
    assert name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["case"] for r in rows} == {str(approved_case)}
    assert [(r["kind"], r["hash"]) for r in rows if r["section"] == "chain"] == chain_hashes(approved_case)


def test_a_backwards_range_is_refused_on_the_page(page: Page, live_server, operator):
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/reviews/export/")
    form = page.get_by_test_id("export-form")
    form.get_by_label("First day").fill("2026-02-02")
    form.get_by_label("Last day").fill("2026-02-01")
    form.get_by_role("button", name="Download").click()
    expect(page.get_by_test_id("export-form").locator(".error")).to_have_text("The last day is before the first.")


def test_a_cases_json_and_csv_links_download_its_record_and_chain_entries(
    page: Page, live_server, operator, approved_case
):
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/reviews/cases/{approved_case}/")
    expect(page.get_by_test_id("case-status")).to_have_text("Approved")

    name, body = download(page, lambda: page.get_by_test_id("export-json").click())
    assert name == f"fsar-case-{approved_case}.json"
    record = json.loads(body)
    assert record["case"]["id"] == approved_case and record["case"]["status"] == "approved"
    assert record["comments"][0]["text"] == "Rollback plan reviewed."
    assert [(e["kind"], e["hash"]) for e in record["chain"]] == chain_hashes(approved_case)

    name, body = download(page, lambda: page.get_by_role("link", name="CSV", exact=True).click())
    assert name == f"fsar-case-{approved_case}.csv"
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["section"] for r in rows].count("vote") == 2
    assert [(r["kind"], r["hash"]) for r in rows if r["section"] == "chain"] == chain_hashes(approved_case)


def test_a_member_turns_off_case_opened_mails_and_they_stay_off(page: Page, live_server, alice, bob, post_report):
    from django.core import mail

    for user in (alice, bob):
        user.email = f"{user.username}@example.com"
        user.save()

    log_in(page, live_server, "alice")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    settings_form = page.get_by_test_id("notification-settings")
    expect(page.get_by_text("alice@example.com")).to_be_visible()
    opened = settings_form.get_by_label("A case opens for the committee")
    reminders = settings_form.get_by_label("A case's time to decide is nearly up, or past")
    expect(opened).to_be_checked()
    expect(reminders).to_be_checked()
    opened.uncheck()
    reminders.uncheck()
    settings_form.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Your notification settings are saved.")

    page.reload()
    expect(page.get_by_label("A case opens for the committee")).not_to_be_checked()
    expect(page.get_by_label("A case's time to decide is nearly up, or past")).not_to_be_checked()
    preference = NotificationPreference.objects.get(user=alice)
    assert (preference.case_opened, preference.sla_reminders) == (False, False)

    mail.outbox.clear()
    case_id = post_report(report_md("after-opt-out", severity=30)).json()["gate"]["case"]
    opened_to = sorted(addr for m in mail.outbox if f"Case {case_id} opened" in m.subject for addr in m.to)
    assert opened_to == ["bob@example.com"]

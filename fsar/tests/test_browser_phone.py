"""In Chromium at 390 px (a phone): every main page lays out within the screen's
width (tables scroll inside their card, forms stack) and the navigation folds
into a menu that opens and closes."""

import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from fsar.management.commands.seed_demo import DEMO_PASSWORD
from reviews.models import Case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PHONE = {"width": 390, "height": 844}


def pages_for(role: str, case_id: int) -> list[str]:
    return {
        "operator": [
            "/", "/tasks/metrics/", "/tasks/metrics/?task_type=implement_idea", "/tasks/held/", "/reviews/",
            f"/reviews/cases/{case_id}/", "/reviews/upload/", "/reviews/gate/", "/reviews/export/", "/reviews/format/",
            "/billing/runs/", "/billing/roi/", "/audit/",
        ],
        "alice": ["/", "/reviews/", f"/reviews/cases/{case_id}/", "/reviews/notifications/"],
        "customer": ["/", "/billing/", "/billing/invoices/"],
    }[role]  # fmt: skip


def test_every_main_page_fits_a_phone_and_the_menu_folds(browser, live_server):
    call_command("seed_demo", tasks=300, stdout=io.StringIO())
    case_id = Case.objects.filter(reports__report_id="fsar_demo-blocking-rollout").get().pk
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    too_wide = {}
    for role in ("operator", "alice", "customer"):
        context.clear_cookies()
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", role)
        page.fill("#id_password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        for path in pages_for(role, case_id):
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                too_wide[f"{role} {path}"] = width
        menu = page.get_by_role("button", name="Menu")
        first_link = page.get_by_role("navigation", name="Main").get_by_role("link").first
        expect(first_link).to_be_hidden()
        menu.tap()
        expect(first_link).to_be_visible()
        expect(menu).to_have_attribute("aria-expanded", "true")
    assert too_wide == {}
    context.close()

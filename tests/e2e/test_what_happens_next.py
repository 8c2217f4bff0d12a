"""Approvers and the delivery manager in a real browser on a phone: the pages speak the
matrix's words, and each confirmation says what happens next and leads to the deal's page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.mail import ACCEPTANCE_LINK, SIGNING_LINK, SIGNING_SUBJECT, decide, link_in, to
from harness.runs import wait_for_state
from tests.browser import SCREENSHOTS
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_waiting_at_manager

pytestmark = pytest.mark.stack

PHONE = {"width": 390, "height": 844}


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= innerWidth"))


def below(page: Any, label: str) -> bool:
    """Whether the field is under its label, not beside it."""
    words = page.get_by_text(label, exact=True).bounding_box()
    field = page.get_by_label(label).bounding_box()
    return bool(words["y"] + words["height"] <= field["y"])


def test_each_confirmation_says_what_happens_next_and_links_the_deal(
    stack: Any, inbox: Inbox, browser: Any, tmp_path: Path
) -> None:
    # ACME: manager, director and legal; one invoice, all of it due on signing.
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(link)
    shown = page.inner_text("main")
    assert "approval:manager" not in shown
    assert "stage Sales manager approval" in shown
    assert (
        page.locator("tr", has_text="Mara Keller")
        .first.inner_text()
        .startswith("Sales manager approval")
    )
    page.get_by_label("Comment").fill("Good margin")
    page.get_by_role("button", name="Approve").click()
    assert page.get_by_role("heading").inner_text() == "Decision recorded"
    assert (
        "You approved this deal. Thank you. Next, Dana Whitfield decides the sales director "
        "approval; Dealflow asks them by email now." in page.inner_text("main")
    )
    assert fits_the_screen(page)
    page.screenshot(path=str(SCREENSHOTS / "decision-recorded-phone.png"), full_page=True)
    page.get_by_role("link", name="See the deal's page").click()
    assert page.get_by_role("heading").first.inner_text().startswith(deal_id)
    assert "Good margin" in page.inner_text("main")

    approve_via_email(inbox, "dana.whitfield@example.com", "Approval needed", deal_id, "ok")
    legal = link_in(inbox.wait_for(to("lena.fischer@example.com", "Approval needed", deal_id)))
    wait_for_state(run_id, "PAUSED", key="gate-legal")
    last = decide(legal, "approve", "ok")
    assert last.status_code == 200
    assert (
        "That was the last approval: Dealflow asks Sam Rivera, the sales rep, to record the "
        "signed contract; then delivery goes to Omar Haddad, and the invoices due at signing "
        "go to the customer: Full contract value." in last.text
    )

    # The sales rep records the contract the customer signed, on the phone.
    signing = link_in(
        inbox.wait_for(to("sam.rivera@example.com", SIGNING_SUBJECT, deal_id)), SIGNING_LINK
    )
    wait_for_state(run_id, "PAUSED", key="signing")
    page.goto(signing)
    assert below(page, "Signed for the customer by")
    assert below(page, "Signed contract (document reference or file name)")
    assert "stage Approved, awaiting the signed contract" in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "signing-form-phone.png"), full_page=True)
    page.get_by_label("Signed for the customer by").fill("Jonas Weber")
    page.get_by_label("Signed contract (document reference or file name)").fill("ACME-2026.pdf")
    page.get_by_role("button", name="Record the signed contract").click()
    assert page.get_by_role("heading").inner_text() == "Signed contract recorded"
    assert "signed by Jonas Weber" in page.inner_text("main")
    assert fits_the_screen(page)

    request = inbox.wait_for(to("omar.haddad@example.com", "Record acceptance", deal_id))
    acceptance = link_in(request, ACCEPTANCE_LINK)
    wait_for_state(run_id, "PAUSED", key="acceptance")
    page.goto(acceptance)
    assert below(page, "Accepted by the customer on")
    assert below(page, "Note for the timeline")
    assert "The invoices due on acceptance go out" not in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "acceptance-form-phone.png"), full_page=True)
    page.get_by_label("Note for the timeline").fill("Signed acceptance protocol")
    page.get_by_role("button", name="Record acceptance").click()
    assert page.get_by_role("heading").inner_text() == "Acceptance recorded"
    said = page.inner_text("main")
    assert "go out now" not in said
    assert "No invoice is due on acceptance" in said
    assert fits_the_screen(page)
    page.screenshot(path=str(SCREENSHOTS / "acceptance-recorded-phone.png"), full_page=True)
    deal_page = page.get_by_role("link", name="See the deal's page").get_attribute("href")
    assert deal_page is not None
    assert httpx.get(deal_page).status_code == 200
    context.close()


def test_a_rejection_says_the_sales_rep_is_told(stack: Any, inbox: Inbox, tmp_path: Path) -> None:
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path)
    rejected = decide(link, "reject", "Margin too thin")
    assert rejected.status_code == 200
    assert (
        "You rejected this deal. Thank you. The deal stops here: Dealflow tells Sam Rivera, "
        "the sales rep, with your comment." in rejected.text
    )
    inbox.wait_for(to("sam.rivera@example.com", "Deal rejected", deal_id))

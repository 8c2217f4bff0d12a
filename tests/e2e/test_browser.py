"""An approver in a real browser (Debian's chromium): reads the deal, comments, clicks Approve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.mail import to
from tests.browser import SCREENSHOTS
from tests.conftest import Inbox
from tests.support import deal_waiting_at_manager

pytestmark = pytest.mark.stack


def test_an_approver_approves_from_the_page_in_a_browser(
    stack: Any, inbox: Inbox, browser: Any, tmp_path: Path
) -> None:
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path)

    page = browser.new_page(viewport={"width": 1000, "height": 1100})
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(link)
    # The strict policy lets the page's own stylesheet in, and refuses nothing it needs.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(245, 247, 250)"
    assert page.title().startswith(
        "Sales manager approval: Acme Logistics fleet telematics rollout"
    )
    assert page.get_by_text("54,359.00 EUR after 5% discount").is_visible()
    assert page.get_by_role("button", name="Approve").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "approval-page.png"), full_page=True)

    page.get_by_role("button", name="Reject").click()  # without a reason: refused
    assert page.get_by_role("alert").inner_text().startswith("Say why you reject")

    page.get_by_label("Comment").fill("Good margin, go ahead")
    page.get_by_role("button", name="Approve").click()
    assert page.get_by_role("heading").inner_text() == "Decision recorded"
    page.screenshot(path=str(SCREENSHOTS / "approval-recorded.png"))

    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    page.goto(link)  # the same link again, later
    assert "Already approved by Mara Keller" in page.content()
    assert refused == [], refused
    page.close()

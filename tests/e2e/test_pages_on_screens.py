"""Every page of the web service on a phone and on a desktop, in a real browser (Debian's
chromium): nothing is wider than the screen, and invoice numbers and dates stay on one line.
The demo stack's mail catcher too: its inbox and a message's page, text part wrapped.

Screenshots of each page on each screen are kept in the test output's screenshots folder."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import LinkClaim, Purpose
from dealflow.infra.records import get_deal
from dealflow.stack.mailcatcher import MailStore, inbox_app
from harness.ports import free_port
from models.keys import ACCEPTANCE_WAIT, SIGNING_WAIT
from models.settings import get_settings
from tasks.closing import acceptance_link
from tasks.duty_links import duty_claim, duty_url
from tasks.signing import signing_link
from tests.browser import SCREENSHOTS
from tests.conftest import Inbox
from tests.finance_support import invoiced_deal
from tests.support import deal_waiting_at_manager

pytestmark = pytest.mark.stack

SCREENS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
# The invoice numbers and dates of a page's tables (by their column's heading) that take
# more than one line on the screen.
WRAPPED = """() => {
  const lines = cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  };
  const wrapped = [];
  let seen = 0;
  for (const table of document.querySelectorAll("table")) {
    const rows = [...table.rows];
    const heads = [...rows[0].cells].map(c => c.innerText.trim().toLowerCase());
    heads.forEach((head, column) => {
      if (!["invoice", "number", "due", "when", "since"].includes(head)) return;
      for (const row of rows.slice(1)) {
        const cell = row.cells[column];
        if (!cell || row.cells.length !== heads.length) continue;
        seen += 1;
        if (lines(cell) > 1) wrapped.push(cell.innerText);
      }
    });
  }
  return {seen, wrapped};
}"""


@pytest.fixture(scope="module")
def pages(stack: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A link to each page the web service serves, by the name of its screenshot."""
    base = stack.config.web_url
    deal_id, _, approval = deal_waiting_at_manager(inbox, tmp_path_factory.mktemp("screens"))
    invoiced, _ = invoiced_deal(dt.date.today() - dt.timedelta(days=20), "globex.yaml")
    expires = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).timestamp())
    acceptance = LinkClaim(
        invoiced,
        ACCEPTANCE_WAIT,
        "grace.lin@example.com",
        "run-of-the-screens-test",
        expires,
        purpose=Purpose.ACCEPTANCE.value,
    )
    signing = LinkClaim(
        deal_id,
        SIGNING_WAIT,
        "sam.rivera@example.com",
        "run-of-the-screens-test",
        expires,
        purpose=Purpose.SIGNING.value,
    )
    with session_scope() as session:
        delivering = get_deal(session, invoiced)
        duties = {
            name: duty_url(duty_claim(purpose, delivering, dt.datetime.now(dt.UTC)))
            for name, purpose in (
                ("progress", Purpose.PROGRESS),
                ("repurchase", Purpose.REPURCHASE),
            )
        }
    return {
        "approval": approval,
        "signing": signing_link(signing),
        **duties,
        "deal-waiting": deal_page_url(deal_id),
        "deal-invoiced": deal_page_url(invoiced),
        "acceptance": acceptance_link(acceptance),
        "finance": f"{base}/finance",
        "finance-login": f"{base}/finance",
        "home": f"{base}/",
        "broken-link": f"{base}/approvals/{approval.rsplit('/', 1)[1][:-4]}",
    }


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize(
    "name",
    [
        "approval",
        "signing",
        "progress",
        "repurchase",
        "deal-waiting",
        "deal-invoiced",
        "acceptance",
        "finance",
        "finance-login",
        "home",
        "broken-link",
    ],
)
def test_no_page_is_wider_than_the_screen(
    browser: Any, pages: dict[str, str], name: str, screen: str
) -> None:
    login = None
    if name == "finance":
        login = {"username": "finance", "password": get_settings().finance_logins()["finance"]}
    elif name == "finance-login":  # what a mistyped password shows
        login = {"username": "finance-typo", "password": "not the password"}
    context = browser.new_context(viewport=SCREENS[screen], http_credentials=login)
    page = context.new_page()
    shown = page.goto(pages[name])
    assert shown is not None and shown.status < 500
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)
    assert "{" not in page.inner_text("body"), "a page, not the API's JSON"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= SCREENS[screen]["width"], f"{name} is {width} px wide on a {screen}"
    if screen == "desktop" and name in {"finance", "deal-invoiced"}:
        cells = page.evaluate(WRAPPED)
        assert cells["seen"], "the page lists invoices"
        assert cells["wrapped"] == [], f"wrapped onto several lines on {name}"
    context.close()


@pytest.fixture(scope="module")
def mail_catcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo stack's mail catcher (the test stack runs without it) holding one email
    with long lines, a long link and a long subject: the address of its inbox page."""
    import httpx
    import uvicorn

    store = MailStore(tmp_path_factory.mktemp("mail"))
    message = EmailMessage()
    message["From"] = "Dealflow <dealflow@example.com>"
    message["To"] = "grace.lin.delivery.manager.for.the.northern.region@example.com"
    message["Subject"] = "Approval needed: ACME-2026-014 " + "Enterprise licence " * 6
    message["Date"] = "Sat, 05 Dec 2026 09:30:00 +0000"
    link = "http://127.0.0.1:8000/approvals/" + "a1b2c3d4" * 30
    message.set_content("Please decide.\n" + "A line that goes on " * 30 + f"\n\n{link}\n")
    message.add_alternative(f"<p>Please decide: <a href='{link}'>open</a></p>", subtype="html")
    store.add(message.as_bytes())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(inbox_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(base, timeout=5).status_code == 200
    yield base
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("name", ["mail-inbox", "mail-message"])
def test_the_mail_catcher_is_no_wider_than_the_screen(
    browser: Any, mail_catcher: str, name: str, screen: str
) -> None:
    context = browser.new_context(viewport=SCREENS[screen])
    page = context.new_page()
    path = "/" if name == "mail-inbox" else "/messages/000001"
    shown = page.goto(mail_catcher + path)
    assert shown is not None and shown.status == 200
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)
    assert "Sat 5 Dec 2026, 09:30 UTC" in page.inner_text("body")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= SCREENS[screen]["width"], f"{name} is {width} px wide on a {screen}"
    if name == "mail-message":
        text = page.locator("pre.text")
        assert text.evaluate("e => e.scrollWidth <= e.clientWidth"), "the text part scrolls"
    context.close()

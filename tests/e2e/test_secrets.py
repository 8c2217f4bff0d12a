"""The signing secret, the SMTP, finance and database passwords appear in no log of
the stack, nothing Prefect shows (run logs, artifacts, deployments, runs) and no page
of the web service, error pages included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.mail import decide, to
from tests.conftest import DATA_DIR, SMTP_USER, TEST_SECRETS, Inbox
from tests.support import deal_waiting_at_manager, prefect_http

pytestmark = pytest.mark.stack


def leaked(text: str) -> list[str]:
    return [name for name, value in TEST_SECRETS.items() if value in text]


def everything(path: str) -> list[dict[str, Any]]:
    """Every object of a Prefect filter endpoint, page by page."""
    found: list[dict[str, Any]] = []
    while True:
        page = prefect_http().post(path, json={"limit": 200, "offset": len(found)})
        assert page.status_code == 200, page.text
        found.extend(page.json())
        if len(page.json()) < 200:
            return found


def test_secrets_stay_out_of_logs_prefect_and_pages(
    stack: Any, inbox: Inbox, tmp_path: Path, docs_web_service: str
) -> None:
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path)
    assert (SMTP_USER, True) in inbox.logins, "the stack logged in to send its mail"
    assert not [login for login in inbox.logins if not login[1]], "no login was refused"
    assert decide(link, "approve", "fine").status_code == 200
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))

    web = stack.config.web_url
    token = link.rsplit("/", 1)[1]
    pages = [
        httpx.get(link),
        httpx.get(f"{web}/approvals/{token[:-4]}AAAA"),
        httpx.get(f"{web}/approvals/{token.split('.')[0]}"),
        httpx.get(f"{web}/approvals/%C3%A9.%C3%A9"),
        httpx.post(link, data={}),
        httpx.post(link, data={"decision": "approve", "comment": "x" * 5000}),
        httpx.post(link, data={"decision": "maybe"}),
        httpx.get(f"{web}/no-such-page"),
        httpx.get(f"{web}/finance", auth=("finance", "wrong")),
        httpx.get(f"{docs_web_service}/openapi.json"),
        httpx.get(f"{docs_web_service}/api/docs"),
    ]
    for response in pages:
        assert response.status_code < 500, (response.url, response.text[:300])
        assert leaked(response.text) == [], response.url

    logs = sorted(DATA_DIR.rglob("*.log"))
    assert {p.name for p in logs} >= {"prefect.log", "web.log"}
    for path in logs:
        assert leaked(path.read_text(errors="replace")) == [], path

    for kind in ("logs/filter", "artifacts/filter", "deployments/filter", "flow_runs/filter"):
        shown = everything(kind)
        assert shown or kind == "logs/filter"
        assert leaked(str(shown)) == [], kind
    assert TEST_SECRETS, "the stack was given secrets to look for"

"""Deal data is text, never markup: in emails, pages and the Prefect artifact."""

from __future__ import annotations

import json

import pytest
from jinja2 import UndefinedError

from dealflow.infra.rendering import render
from dealflow.intake.submit import parse_deal
from models.revisions import Revised
from models.settings import PROJECT_ROOT

HOSTILE = "<script>alert(1)</script>"


def hostile_deal() -> object:
    data = json.loads((PROJECT_ROOT / "examples" / "acme.json").read_text())
    data["customer"]["name"] = HOSTILE
    data["notes"] = '<img src=x onerror="alert(2)">'
    return parse_deal(data, "test")


def test_emails_escape_deal_data() -> None:
    deal = hostile_deal()
    context = {
        "deal": deal,
        "gate": {"assignee_name": "Mara", "title": "Approval"},
        "link": "http://x/approvals/t",
        "expires": None,
        "earlier": [],
        "on_behalf_of": None,
        "subject": "s",
    }
    html = render("email/approval_request.html", **context)
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert HOSTILE in render("email/approval_request.txt", **context), "plain text stays as typed"


def test_the_approval_page_escapes_deal_data() -> None:
    page = render(
        "pages/approval.html",
        deal=hostile_deal(),
        stage="approval:manager",
        gate_title="Approval",
        approval={"assignee_name": "Mara", "requested_at": None},
        history=[],
        revised=Revised(since=1, current=2, changes=[f"title: before -> {HOSTILE}"]),
        blocked=None,
        error="",
    )
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "What changed since revision 1" in page


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        render("email/invoice.txt", deal=hostile_deal())

"""A NUL character in a request's path, query or form is refused before anything is done,
on SQLite and PostgreSQL alike: PostgreSQL stores none and refuses even to look one up,
which was a server error on the finance forms and the deal status API (the credentialed
fuzz in tests/e2e/test_hostile_input.py found it there)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi.testclient import TestClient

from models.settings import get_settings
from tests.finance_support import invoiced_deal
from tests.support import database_digest
from web.form_tokens import form_token

pytestmark = pytest.mark.usefixtures("database_url", "inbox")
INTAKE_KEY = {"X-API-Key": "key-for-tests-0123456789"}  # conftest's


def test_a_nul_character_anywhere_in_a_request_is_refused_and_changes_nothing() -> None:
    from web.app import app

    deal_id, [number] = invoiced_deal(dt.date(2027, 3, 10))
    client = TestClient(app)
    login = ("finance", get_settings().finance_logins()["finance"])

    def form(
        path: str, files: dict[str, tuple[str, bytes]] | None = None, **fields: str
    ) -> httpx.Response:
        token = form_token("finance", path.replace("%00", "\x00"))
        return client.post(path, data={**fields, "form_token": token}, files=files, auth=login)

    def upload(name: str, content: str) -> httpx.Response:
        # By hand: httpx would percent-encode the NUL of the file name.
        token = form_token("finance", "/finance/statements")
        body = (
            f'--b\r\nContent-Disposition: form-data; name="form_token"\r\n\r\n{token}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="statement"; filename="{name}"\r\n'
            f"Content-Type: text/csv\r\n\r\n{content}\r\n--b--\r\n"
        )
        kind = {"Content-Type": "multipart/form-data; boundary=b"}
        return client.post("/finance/statements", content=body.encode(), headers=kind, auth=login)

    before = database_digest()
    answers = {
        "payment reference": form(
            "/finance/payments", invoice=number, amount="1.00", reference="x\x00"
        ),
        "invoice field": form("/finance/payments", invoice=f"{number}\x00", amount="1.00"),
        "dispute reason": form(f"/finance/invoices/{number}/dispute", reason="late\x00"),
        "invoice in the path": form(f"/finance/invoices/{number}%00/resolve"),
        "held customer": form("/finance/holds/clear", customer="Acme\x00"),
        "upload's name": upload("a\x00.csv", f"date,amount,reference\n2027-03-01,1.00,{number}\n"),
        "query": client.get("/finance?page=%00", auth=login),
        "deal id": client.get(f"/api/deals/{deal_id}%00", headers=INTAKE_KEY),
    }
    assert {what: a.status_code for what, a in answers.items()} == dict.fromkeys(answers, 400)
    assert all("NUL character" in a.json()["detail"] for a in answers.values())
    assert database_digest() == before
    assert form("/finance/payments", invoice=number, amount="1.00").status_code == 200

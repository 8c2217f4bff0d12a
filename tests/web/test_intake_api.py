"""A CRM posts won deals to POST /api/deals: real HTTP to the stack's web service, real Prefect.

The CRM is the only thing imitated here: it signs its requests the way a CRM does, with
the standard library, independently of Dealflow's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dealflow.infra.db import session_scope, upgrade
from dealflow.infra.records import timeline
from harness.ports import free_port
from models.tables import Deal
from tests.support import fresh_deal, runs_of_deal

pytestmark = pytest.mark.stack

# The credentials conftest configures for the stack.
KEY = "key-for-tests-0123456789"
SECRET = b"secret-for-tests-0123456789"
WRONG_KEY = "not-the-key-9876543210"


def url(stack: Any, path: str = "/api/deals") -> str:
    return f"{stack.config.web_url}{path}"


def signed(
    body: bytes,
    secret: bytes = SECRET,
    at: int | None = None,
    method: str = "POST",
    target: str = "/api/deals",
) -> dict[str, str]:
    """The headers of a signed request: HMAC-SHA256 of the timestamp, the method, the
    path with its query and the body, joined by line feeds."""
    stamp = str(int(time.time()) if at is None else at)
    message = f"{stamp}\n{method}\n{target}\n".encode() + body
    digest = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return {"X-Dealflow-Timestamp": stamp, "X-Dealflow-Signature": f"sha256={digest}"}


def post(stack: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        url(stack),
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=60,
    )


def encoded(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def stored(deal_id: str, url: str | None = None) -> int:
    with session_scope(url) as session:
        return int(session.scalar(select(func.count()).where(Deal.id == deal_id)) or 0)


def submitted_event(deal_id: str) -> str:
    with session_scope() as session:
        return next(t.event for t in timeline(session, deal_id) if t.key == "submitted")


def no_secret_in(text: str) -> None:
    for secret in (KEY, SECRET.decode(), WRONG_KEY):
        assert secret not in text


@pytest.mark.parametrize(
    ("headers_for", "words"),
    [
        (lambda body: {}, "No credentials"),
        (lambda body: {"X-API-Key": WRONG_KEY}, "The API key is not valid"),
        (lambda body: {"X-API-Key": ""}, "No credentials"),
        (
            lambda body: signed(body, secret=b"someone-elses-secret-0000"),
            "does not match the request",
        ),
        (lambda body: signed(body + b" "), "does not match the request"),
        (lambda body: signed(body, target="/api/deals?x=1"), "does not match the request"),
        (lambda body: signed(body, method="PUT"), "does not match the request"),
        (lambda body: signed(body, at=int(time.time()) - 3600), "away from the server's clock"),
        (
            lambda body: {"X-Dealflow-Signature": signed(body)["X-Dealflow-Signature"]},
            "needs X-Dealflow-Timestamp",
        ),
        (
            lambda body: {**signed(body), "X-API-Key": WRONG_KEY},
            "The API key is not valid",
        ),
    ],
    ids=[
        "no-credentials",
        "wrong-key",
        "empty-key",
        "wrong-secret",
        "tampered-body",
        "signed-for-another-path",
        "signed-for-another-method",
        "replayed-an-hour-later",
        "signature-without-timestamp",
        "good-signature-bad-key",
    ],
)
def test_a_request_without_valid_credentials_is_refused_and_stores_nothing(
    stack: Any, headers_for: Any, words: str
) -> None:
    data = fresh_deal()
    body = encoded(data)
    response = post(stack, body, headers_for(body))
    assert response.status_code == 401, response.text
    assert words in response.json()["detail"]
    no_secret_in(response.text)
    assert stored(data["deal_id"]) == 0
    assert runs_of_deal(data["deal_id"]) == []


def test_credentials_are_checked_before_the_payload(stack: Any) -> None:
    response = post(stack, encoded({"deal_id": "x"}), {"X-API-Key": WRONG_KEY})
    assert response.status_code == 401
    assert "loc" not in response.text  # an outsider learns nothing about the deal model


def test_the_right_key_starts_the_deal_once_and_a_retry_gets_the_same_receipt(
    stack: Any,
) -> None:
    data = fresh_deal()
    deal_id = data["deal_id"]
    first = post(stack, encoded(data), {"X-API-Key": KEY})
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["deal_id"] == deal_id
    assert receipt["flow_run_url"].endswith(f"/runs/flow-run/{receipt['flow_run_id']}")
    assert receipt["status_url"] == url(stack, f"/api/deals/{deal_id}")
    assert first.headers["Location"] == receipt["status_url"]

    retry = post(stack, encoded(data), {"X-API-Key": KEY})
    assert retry.status_code == 200, retry.text
    assert retry.json() == receipt

    assert stored(deal_id) == 1
    assert runs_of_deal(deal_id) == [receipt["flow_run_id"]]
    assert submitted_event(deal_id).endswith("(via HTTP, api-key test-crm)")

    status = httpx.get(receipt["status_url"], headers={"X-API-Key": KEY})
    assert status.status_code == 200
    assert status.json()["deal_id"] == deal_id
    assert status.json()["flow_run_url"] == receipt["flow_run_url"]


def test_a_signed_webhook_is_accepted_and_its_retry_too(stack: Any) -> None:
    data = fresh_deal("initech.json")
    body = encoded(data)
    first = post(stack, body, signed(body))
    assert first.status_code == 201, first.text
    retry = post(stack, body, signed(body, at=int(time.time()) + 1))
    assert retry.status_code == 200 and retry.json() == first.json()
    assert stored(data["deal_id"]) == 1
    assert runs_of_deal(data["deal_id"]) == [first.json()["flow_run_id"]]
    assert submitted_event(data["deal_id"]).endswith("(via HTTP, webhook test-webhook)")

    status_url = first.json()["status_url"]
    headers = signed(b"", method="GET", target=f"/api/deals/{data['deal_id']}")
    assert httpx.get(status_url, headers=headers).json()["deal_id"] == data["deal_id"]
    assert httpx.get(status_url).status_code == 401


def test_a_signature_for_one_deal_does_not_open_another(stack: Any) -> None:
    data = fresh_deal()
    assert post(stack, encoded(data), {"X-API-Key": KEY}).status_code == 201
    mine = f"/api/deals/{data['deal_id']}"
    # The scheme before signed the timestamp and the body only: its signature "for"
    # DEAL-A was the same as for every deal. It opens nothing now.
    stamp = str(int(time.time()))
    old = hmac.new(SECRET, f"{stamp}.".encode(), hashlib.sha256).hexdigest()
    response = httpx.get(
        url(stack, mine),
        headers={"X-Dealflow-Timestamp": stamp, "X-Dealflow-Signature": f"sha256={old}"},
    )
    assert response.status_code == 401 and "old scheme" in response.json()["detail"]

    headers = signed(b"", method="GET", target="/api/deals/DEAL-A")
    for path in (mine, f"{mine}?x=1"):
        response = httpx.get(url(stack, path), headers=headers)
        assert response.status_code == 401, response.text
        assert "does not match the request" in response.json()["detail"]
    # Nor does a signed POST of a deal authenticate a GET with the same timestamp.
    body = encoded(data)
    response = httpx.get(url(stack, mine), headers=signed(body))
    assert response.status_code == 401
    assert httpx.get(url(stack, mine), headers=signed(b"", method="GET", target=mine)).is_success


def test_the_same_id_with_different_content_is_refused(stack: Any) -> None:
    data = fresh_deal()
    assert post(stack, encoded(data), {"X-API-Key": KEY}).status_code == 201
    changed = {**data, "title": "Something else entirely"}
    response = post(stack, encoded(changed), {"X-API-Key": KEY})
    assert response.status_code == 409
    assert "already submitted with different content" in response.json()["detail"]
    with session_scope() as session:
        deal = session.get(Deal, data["deal_id"])
        assert deal is not None and deal.title == data["title"]
    assert len(runs_of_deal(data["deal_id"])) == 1


def test_a_bad_deal_gets_every_problem_with_its_field_and_nothing_is_stored(
    stack: Any,
) -> None:
    data = fresh_deal()
    data["customer"]["billing_contact"]["email"] = "accounts-at-acme"
    data["currency"] = "euro"
    data["line_items"][0]["quantity"] = 0
    data["surprise"] = True
    response = post(stack, encoded(data), {"X-API-Key": KEY})
    assert response.status_code == 422, response.text
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert "valid email address" in problems[("body", "customer", "billing_contact", "email")]
    assert "should match pattern" in problems[("body", "currency")]
    assert "greater than 0" in problems[("body", "line_items", 0, "quantity")]
    assert "Extra inputs are not permitted" in problems[("body", "surprise")]
    assert stored(data["deal_id"]) == 0


def test_a_deal_for_a_team_the_matrix_does_not_know_is_refused(stack: Any) -> None:
    data = fresh_deal(team="mars")
    response = post(stack, encoded(data), {"X-API-Key": KEY})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "team"]
    assert "team 'mars' is not in the matrix" in problem["msg"]
    assert stored(data["deal_id"]) == 0


def test_malformed_json_is_a_422_too(stack: Any) -> None:
    response = post(stack, b'{"deal_id": ', {"X-API-Key": KEY})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_an_unknown_deal_has_no_status(stack: Any) -> None:
    response = httpx.get(url(stack, "/api/deals/NOPE-404"), headers={"X-API-Key": KEY})
    assert response.status_code == 404 and "NOPE-404" in response.json()["detail"]


def test_the_openapi_schema_documents_intake(docs_web_service: str) -> None:
    spec = httpx.get(f"{docs_web_service}/openapi.json").json()
    operation = spec["paths"]["/api/deals"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DealIntake"
    }
    assert {"200", "201", "401", "409", "413", "422", "503"} <= set(operation["responses"])
    assert operation["security"] == [{"apiKey": []}, {"webhookSignature": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKey"]["description"],
    }
    assert schemes["webhookSignature"]["name"] == "X-Dealflow-Signature"
    assert "HMAC-SHA256" in schemes["webhookSignature"]["description"]
    assert "customer" in spec["components"]["schemas"]["DealIntake"]["properties"]
    assert "/api/deals/{deal_id}" in spec["paths"]


def test_no_credential_reaches_the_web_service_log(stack: Any) -> None:
    no_secret_in((stack.logs / "web.log").read_text(errors="replace"))


def test_intake_is_refused_until_keys_are_configured(web_service: Any) -> None:
    base = web_service(DEALFLOW_INTAKE_API_KEYS="{}", DEALFLOW_INTAKE_WEBHOOK_SECRETS="{}")
    data = fresh_deal()
    for headers in ({}, {"X-API-Key": KEY}):
        response = httpx.post(f"{base}/api/deals", json=data, headers=headers, timeout=30)
        assert response.status_code == 503
        assert "not configured" in response.json()["detail"]
        assert "DEALFLOW_INTAKE_API_KEYS" in response.json()["detail"]
    assert stored(data["deal_id"]) == 0


def test_an_unreachable_prefect_gets_503_and_nothing_is_stored(
    web_service: Any, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'dealflow.db'}"
    upgrade(database)
    nowhere = f"http://127.0.0.1:{free_port()}/api"
    base = web_service(
        PREFECT_API_URL=nowhere, DEALFLOW_PREFECT_API_URL=nowhere, DEALFLOW_DATABASE_URL=database
    )
    data = fresh_deal()
    response = httpx.post(f"{base}/api/deals", json=data, headers={"X-API-Key": KEY}, timeout=60)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert "Send the same request again" in response.json()["detail"]
    assert nowhere not in response.text  # internal addresses stay in the log
    assert stored(data["deal_id"], database) == 0


def test_a_rejected_deal_is_sent_again_as_a_revision_once(stack: Any, inbox: Any) -> None:
    """``POST /api/deals/<id>/revisions``: refused while the deal waits, then, once the
    manager rejected it, a new revision with a run of its own; a retry gets the same."""
    from harness.mail import decide, link_in, to
    from harness.runs import wait_for_state

    data = fresh_deal()
    deal_id = data["deal_id"]
    first = post(stack, encoded(data), {"X-API-Key": KEY})
    assert first.status_code == 201, first.text
    assert first.json()["revision"] == 1
    revised = {**data, "notes": "Hamburg depot first, then Bremen."}
    revisions = url(stack, f"/api/deals/{deal_id}/revisions")
    headers = {"X-API-Key": KEY}

    link = link_in(inbox.wait_for(to("mara.keller@example.com", "Approval needed", deal_id)))
    waiting = httpx.post(revisions, json=revised, headers=headers, timeout=60)
    assert waiting.status_code == 409, waiting.text
    assert "is not rejected" in waiting.json()["detail"]
    assert decide(link, "reject", "which depot first?").status_code == 200
    wait_for_state(first.json()["flow_run_id"], "CANCELLED")

    unchanged = httpx.post(revisions, json=data, headers=headers, timeout=60)
    assert unchanged.status_code == 409
    assert "unchanged since revision 1" in unchanged.json()["detail"]
    second = httpx.post(revisions, json=revised, headers=headers, timeout=60)
    assert second.status_code == 201, second.text
    receipt = second.json()
    assert receipt["revision"] == 2
    assert receipt["flow_run_id"] != first.json()["flow_run_id"]
    retry = httpx.post(revisions, json=revised, headers=headers, timeout=60)
    assert retry.status_code == 200 and retry.json() == receipt

    status = httpx.get(receipt["status_url"], headers=headers).json()
    assert status["revision"] == 2
    assert [r["revision"] for r in status["revisions"]] == [1, 2]
    assert status["revisions"][1]["changes"] == ["notes"]
    assert (
        httpx.post(
            url(stack, "/api/deals/NOSUCH-2026-001/revisions"),
            json={**revised, "deal_id": "NOSUCH-2026-001"},
            headers=headers,
            timeout=60,
        ).status_code
        == 404
    )

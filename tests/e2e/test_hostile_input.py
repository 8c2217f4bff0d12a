"""Hostile and broken input: generated tokens, links turned against another gate, deal or
person, the web service fuzzed from its OpenAPI schema (without credentials, and with
the finance login and signed webhooks), markup in deal data. Each is refused with a
clear page, and nothing changes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from dealflow.finance.receivables import dispute_invoice
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope, upgrade
from dealflow.infra.links import LinkClaim, LinkError, sign, verify
from dealflow.infra.records import approvals, get_deal
from dealflow.intake.auth import API_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from dealflow.intake.submit import store_deal
from harness.mail import decide, link_in, text_of, to
from harness.runs import run_state, wait_for_state
from models.deal import DealIntake
from models.settings import get_settings
from models.tables import CollectionHold
from tests.browser import SCREENSHOTS, prefect_ui_page
from tests.conftest import DATA_DIR, POSTGRES_SERVER, STACK_DATABASES, STACK_ON_POSTGRES, Inbox
from tests.finance_support import invoiced_deal
from tests.support import (
    approve_via_email,
    database_digest,
    deal_file,
    deal_waiting_at_manager,
    dealflow_database,
    fresh_deal,
    prefect_http,
    submit,
)
from web.form_tokens import form_token

MANAGER, DIRECTOR = "mara.keller@example.com", "dana.whitfield@example.com"
KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
REFUSALS = {400: "This link is incomplete", 403: "This link is not valid"}
TOKEN_TEXT = st.text(
    alphabet=st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=~%"
    ),
    max_size=400,
)

claims = st.builds(
    LinkClaim,
    deal_id=st.text(min_size=1, max_size=40),
    gate=st.text(min_size=1, max_size=20),
    approver=st.emails(),
    run_id=st.uuids().map(str),
    expires_at=st.integers(int(NOW.timestamp()) + 1, 2**40),
)


@given(token=st.text(max_size=300))
def test_any_text_is_refused_as_a_link_error_and_nothing_else(token: str) -> None:
    with pytest.raises(LinkError):
        verify(token, KEY, NOW)


@given(claim=claims)
def test_every_signed_claim_verifies_to_itself(claim: LinkClaim) -> None:
    assert verify(sign(claim, KEY), KEY, NOW) == claim


@given(claim=claims, data=st.data())
def test_a_token_changed_anywhere_is_refused(claim: LinkClaim, data: st.DataObject) -> None:
    token = sign(claim, KEY)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    with pytest.raises(LinkError):
        verify(token[:index] + replacement + token[index + 1 :], KEY, NOW)


@given(claim=claims, key=st.binary(min_size=1, max_size=64).filter(lambda k: k != KEY))
def test_a_token_signed_with_another_key_is_refused(claim: LinkClaim, key: bytes) -> None:
    with pytest.raises(LinkError):
        verify(sign(claim, key), KEY, NOW)


# --- against the running web service ------------------------------------------------


def relink(link: str, **changes: Any) -> str:
    token = link.rsplit("/", 1)[1]
    claim = verify(token, get_settings().signing_key(), dt.datetime.now(dt.UTC))
    changed = dataclasses.replace(claim, **changes)
    return f"{link.rsplit('/', 1)[0]}/{sign(changed, get_settings().signing_key())}"


def decisions(deal_id: str) -> list[tuple[str, str | None, str | None]]:
    with session_scope() as session:
        return [(a.gate, a.decision, a.decided_by) for a in approvals(session, deal_id)]


@pytest.fixture(scope="module")
def waiting(stack: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path_factory.mktemp("hostile"))
    return deal_id, link


@pytest.mark.stack
def test_generated_tokens_get_a_clear_page_and_change_nothing(
    stack: Any, waiting: tuple[str, str]
) -> None:
    deal_id, link = waiting
    before = decisions(deal_id)
    base = link.rsplit("/", 1)[0]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(token=TOKEN_TEXT.filter(lambda t: t not in {"", ".", ".."} and "/" not in t))
    def check(token: str) -> None:
        for response in (
            httpx.get(f"{base}/{token}"),
            httpx.post(f"{base}/{token}", data={"decision": "approve", "comment": "x"}),
        ):
            # Tokens that URL-decode to a path of their own may not reach the page (404).
            assert response.status_code in {400, 403, 404}, response.text
            if response.status_code in REFUSALS:
                assert REFUSALS[response.status_code] in response.text
            assert "Traceback" not in response.text

    check()
    assert decisions(deal_id) == before


@pytest.mark.stack
def test_a_mail_scanner_opening_the_link_changes_nothing(
    stack: Any, waiting: tuple[str, str]
) -> None:
    deal_id, link = waiting
    before = decisions(deal_id)
    for _ in range(3):
        assert httpx.get(link).status_code == 200
        assert httpx.head(link).status_code in {200, 405}
    assert decisions(deal_id) == before
    assert run_state(get_run(deal_id))[:2] == ("PAUSED", "gate-manager")


def get_run(deal_id: str) -> str:
    with session_scope() as session:
        run_id = get_deal(session, deal_id).flow_run_id
    assert run_id is not None
    return run_id


@pytest.mark.stack
def test_a_link_turned_to_another_deal_is_refused(
    stack: Any, inbox: Inbox, waiting: tuple[str, str], tmp_path: Path
) -> None:
    deal_a, link_a = waiting
    deal_b, _, link_b = deal_waiting_at_manager(inbox, tmp_path)
    before = decisions(deal_a), decisions(deal_b)
    for forged in (relink(link_a, deal_id=deal_b), relink(link_b, run_id=get_run(deal_a))):
        response = decide(forged, "approve", "x")
        assert response.status_code == 403
        assert "does not belong to a gate of this deal" in response.text
    assert (decisions(deal_a), decisions(deal_b)) == before


@pytest.mark.stack
def test_after_a_rejection_no_link_decides_anything(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    assert decide(link, "reject", "Customer failed the credit check").status_code == 200
    wait_for_state(run_id, "CANCELLED")
    replayed = decide(link, "approve", "changed my mind")
    assert replayed.status_code == 409 and "Already rejected by Mara Keller" in replayed.text
    director = decide(relink(link, gate="director", approver=DIRECTOR), "approve", "x")
    assert director.status_code == 409 and "already rejected" in director.text
    assert decisions(deal_id)[0][:2] == ("manager", "rejected")
    assert all(decision is None for _, decision, _ in decisions(deal_id)[1:])


@pytest.mark.stack
def test_whoever_approved_one_gate_cannot_approve_the_next(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    manager_link = approve_via_email(inbox, MANAGER, "Approval needed", deal_id, "fine")
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    as_manager = relink(manager_link, gate="director")  # Mara's own, genuinely signed
    refused = decide(as_manager, "approve", "me again")
    assert refused.status_code == 403 and "not to you" in refused.text
    assert [d for d in decisions(deal_id) if d[0] == "director"] == [("director", None, None)]


@pytest.mark.stack
def test_markup_in_deal_data_is_text_in_the_email_and_on_the_page(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    hostile = "<script>alert('deal')</script>"
    path, deal_id = deal_file(tmp_path)
    data = path.read_text().replace('"Acme Logistics GmbH"', f'"{hostile}"')
    path.write_text(data)
    submit(path)
    request = inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    html = text_of(request, "html")
    assert hostile not in html and "&lt;script&gt;" in html
    page = httpx.get(link_in(request)).text
    assert hostile not in page and "&lt;script&gt;" in page


HOSTILE_TITLE = (
    "Click https://evil.example/x or www.evil.example *now* `run` ~~old~~ "
    "![i](http://evil.example/i.png) <b>big</b> &lt;i&gt;"
)
HOSTILE_CUSTOMER = "billing@evil.example [pay](http://evil.example/pay) _Ltd_ > #1"
HOSTILE_REP = "Sam **Rivera** https://evil.example/rep"
WORD_JOINER = "\u2060"  # invisible: breaks what GFM would link, unseen by the reader


@pytest.mark.stack
def test_markup_in_deal_data_is_text_in_the_prefect_ui(
    stack: Any, inbox: Inbox, tmp_path: Path, browser: Any
) -> None:
    """The deal's board and RACI table as ops staff see them in both of Prefect's UIs (V1
    at deep links, V2 from the start page): deal data reads as typed, and the one link is
    the deal page's."""
    customer = {**fresh_deal()["customer"], "name": HOSTILE_CUSTOMER}
    rep = {"name": HOSTILE_REP, "email": "sam.rivera@example.com"}
    deal_id, _, _ = deal_waiting_at_manager(
        inbox, tmp_path, title=HOSTILE_TITLE, customer=customer, sales_rep=rep
    )
    board_id, raci_id = (newest_artifact(f"deal-{deal_id.lower()}{s}") for s in ("", "-raci"))
    base = get_settings().prefect_ui_url
    page = prefect_ui_page(browser, viewport={"width": 1200, "height": 1400})
    for ui in ("", "/v2"):
        page.goto(f"{base}{ui}/artifacts/artifact/{raci_id}")
        # V2 shows the artifact's details before its markdown: wait for the table itself
        shown_as_typed(page, HOSTILE_REP, ui)
        assert page.locator("a[href*='evil'], img[src*='evil']").count() == 0, ui
        page.goto(f"{base}{ui}/artifacts/artifact/{board_id}")
        heading = page.get_by_role("heading", name=re.compile(f"^Deal {deal_id}"))
        try:
            heading.wait_for(timeout=30000)
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"hostile-deal-board{ui.replace('/', '-')}.png"
            page.screenshot(path=str(shot), full_page=True)
        board = heading.locator("xpath=..")
        seen = board.inner_text().replace(WORD_JOINER, "")
        assert heading.inner_text().replace(WORD_JOINER, "") == f"Deal {deal_id}: {HOSTILE_TITLE}"
        assert f"Customer: {HOSTILE_CUSTOMER} |" in " ".join(seen.split()), seen
        links = board.locator("a").evaluate_all("links => links.map(a => a.href)")
        deal_page = f"{get_settings().public_base_url}/deals/{deal_id}?"
        assert len(links) == 1 and links[0].startswith(deal_page), (ui, links)
        assert board.locator("img").count() == 0, ui
        if ui == "/v2":  # the card names the deal's run, not "Flow run: None"
            assert page.get_by_role("link", name=f"deal-{deal_id}", exact=True).count() == 1
    page.context.close()


def shown_as_typed(page: Any, text: str, ui: str) -> None:
    """Waits until the page's text, without the invisible word joiners, holds `text`."""
    try:
        page.wait_for_function(
            "([text, joiner]) => document.body.innerText.split(joiner).join('').includes(text)",
            arg=[text, WORD_JOINER],
            timeout=30000,
        )
    except Exception as timed_out:
        seen = page.locator("body").inner_text().replace(WORD_JOINER, "")
        raise AssertionError(
            f"{ui or 'V1'}: {text!r} not shown; the page reads {seen!r}"
        ) from timed_out


def newest_artifact(key: str) -> str:
    newest = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    [artifact] = prefect_http().post("artifacts/filter", json=newest).json()
    return str(artifact["id"])


# --- the whole HTTP API, from its own schema ---------------------------------------


@pytest.mark.stack
def test_the_web_service_fuzzed_from_its_openapi_schema(
    docs_web_service: str, waiting: tuple[str, str]
) -> None:
    """No request the schema allows gets a server error, and none changes a deal; the
    genuine token is mixed in so that fuzzed forms reach the decision code. The schema
    is served only with DEALFLOW_API_DOCS: the fuzzed web service has it, on the
    stack's database."""
    deal_id, link = waiting
    genuine = link.rsplit("/", 1)[1]
    before = decisions(deal_id)
    schema = schemathesis.openapi.from_url(f"{docs_web_service}/openapi.json")
    labels = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our OpenAPI schema is invalid: {result}"
        operation = result.ok()
        fuzz(operation, docs_web_service, genuine)
        labels.append(operation.label)
    seen = len(labels)
    assert seen >= 3, f"the approval page, the decision and the health check: {labels}"
    assert decisions(deal_id) == before


def fuzz(operation: Any, base_url: str, genuine: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), use_genuine=st.booleans())
    def check(case: Any, use_genuine: bool) -> None:
        if use_genuine and "token" in (case.path_parameters or {}):
            case.path_parameters["token"] = genuine
            form = case.body if isinstance(case.body, dict) else {}
            decision = form.get("decision")
            # Fuzzed forms may send a list or an object where a word is expected.
            if isinstance(decision, str) and decision in {"approve", "reject"}:
                return  # a real decision on a genuine link is allowed to decide
        response = case.call(base_url=base_url)
        assert response.status_code < 500, (operation.label, response.text[:500])
        assert "Traceback" not in response.text

    check()


# --- finance and intake, fuzzed with valid credentials ------------------------------

# Text the schema's strategies seldom draw but that databases and parsers trip over: the
# fuzz adds one to the text of each request it sends with genuine values (PostgreSQL
# stores no NUL character).
EDGE_TEXT = ["", "\x00", "\r\n", "'\"", "%00", "\u202e", "\U0001d518", "   "]
AUTHENTICATED = ("/finance", "/api/deals")
FINANCE = "finance"  # the finance user conftest configures


@dataclasses.dataclass(frozen=True)
class Seeded:
    """The fuzzed web service's database and what is in it."""

    url: str
    invoices: list[str]  # the second one disputed
    deals: list[str]
    held: list[str]  # customers on collections hold
    submitted: dict[str, Any]  # a deal as submitted, its run started


@pytest.fixture(scope="module")
def seeded_web_service(
    stack: Any, module_web_service: Any, waiting: tuple[str, str]
) -> tuple[str, Seeded]:
    """A web service with its API schema (DEALFLOW_API_DOCS) on a database of its own,
    of the stack's kind: invoiced deals, a disputed invoice, a customer on hold, and the
    deal waiting at its manager's gate, whose run the stack has. The stack's flows write
    to the stack's database, so whatever changes in this one, a fuzzed request changed."""
    with session_scope() as session:
        waiting_deal = get_deal(session, waiting[0])
        submitted, run_id = dict(waiting_deal.payload), waiting_deal.flow_run_id
    if STACK_ON_POSTGRES:
        url = f"{POSTGRES_SERVER}/{STACK_DATABASES['fuzz']}"
    else:
        url = f"sqlite:///{DATA_DIR / 'fuzz.db'}"
    upgrade(url)
    due = utcnow().date() + dt.timedelta(days=30)
    with dealflow_database(url):
        acme, acme_invoices = invoiced_deal(due)
        initech, initech_invoices = invoiced_deal(due, customer="Initech")
        dispute_invoice(initech_invoices[0], "Seeded dispute", "finance")
        store_deal(DealIntake.model_validate(submitted))
        with session_scope() as session:
            get_deal(session, waiting[0]).flow_run_id = run_id
        with session_scope() as session:
            session.add(
                CollectionHold(
                    customer_name="Initech",
                    reason="Seeded hold",
                    placed_by="finance",
                    placed_at=utcnow(),
                )
            )
    base = module_web_service(DEALFLOW_API_DOCS="true", DEALFLOW_DATABASE_URL=url)
    deals = [acme, initech, waiting[0]]
    return base, Seeded(url, acme_invoices + initech_invoices, deals, ["Initech"], submitted)


@pytest.mark.stack
def test_finance_and_intake_fuzzed_with_valid_credentials(
    seeded_web_service: tuple[str, Seeded],
) -> None:
    """Every finance and intake request the schema allows, sent as the finance user or
    signed as the CRM's webhook: none gets a server error, and none that is refused
    (4xx) changes the database. Genuine form tokens, invoice numbers, deal ids and held
    customers are mixed in, so that fuzzed input reaches the handlers' own code."""
    base, seeded = seeded_web_service
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if isinstance(result, Ok) and result.ok().path.startswith(AUTHENTICATED)
    ]
    assert len(operations) >= 9, [op.label for op in operations]
    answered: Counter[tuple[str, int]] = Counter()
    for operation in operations:
        fuzz_with_credentials(operation, base, seeded, answered)
    refused_at_the_gate = [key for key in answered if key[1] == 401]
    assert not refused_at_the_gate, "every request must pass the gate"
    reached = {label for (label, status) in answered if status not in {403, 422}}
    assert reached >= {op.label for op in operations} - {"POST /finance/check"}, answered


def fuzz_with_credentials(
    operation: Any, base_url: str, seeded: Seeded, answered: Counter[tuple[str, int]]
) -> None:
    finance = operation.path.startswith("/finance")
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, genuine=st.booleans(), data=st.data())
    def check(case: Any, genuine: bool, data: st.DataObject) -> None:
        if genuine:
            use_genuine_values(case, seeded, data)
        request = signed_request(case, base_url, finance)
        before = database_digest(seeded.url)
        with requests.Session() as session:
            response = session.send(request, allow_redirects=False, timeout=60)
        answered[operation.label, response.status_code] += 1
        shown = (operation.label, request.path_url, request.body, response.text[:500])
        assert response.status_code < 500, shown
        if response.status_code >= 400:
            assert database_digest(seeded.url) == before, ("a refused request changed", *shown)

    check()


def use_genuine_values(case: Any, seeded: Seeded, data: st.DataObject) -> None:
    """Seeded values and a genuine form token in place of generated ones, so that the
    request gets past "no such invoice" and "this form has expired"; each text is given
    an edge character. A deal submitted is the seeded one with one field generated:
    under the same id, intake answers it without starting another run."""

    def edged(value: str) -> str:
        return value + data.draw(st.sampled_from(EDGE_TEXT))

    params = case.path_parameters or {}
    if "number" in params:
        params["number"] = edged(data.draw(st.sampled_from(seeded.invoices)))
    if "deal_id" in params:
        params["deal_id"] = edged(data.draw(st.sampled_from(seeded.deals)))
    if case.path == "/api/deals":
        generated = case.body if isinstance(case.body, dict) else {}
        deal = dict(seeded.submitted)
        fields = sorted(set(generated) - {"deal_id"})
        if fields:
            field = data.draw(st.sampled_from(fields))
            deal[field] = generated[field]
        case.body = deal
        case.media_type = "application/json"
    if not case.path.startswith("/finance") or case.method.upper() == "GET":
        return
    form = case.body if isinstance(case.body, dict) else {}
    for name, value in list(form.items()):
        if isinstance(value, str):
            form[name] = edged(value)
    if "invoice" in form:
        form["invoice"] = edged(data.draw(st.sampled_from(seeded.invoices)))
    if "customer" in form:
        form["customer"] = edged(data.draw(st.sampled_from(seeded.held)))
    # Its only field is the token: a genuine one starts a payment-check run (on the
    # stack's database), which tests/e2e/test_finance_e2e.py covers.
    if case.path != "/finance/check":
        form["form_token"] = form_token(FINANCE, case.formatted_path)
    case.body = form
    case.media_type = case.media_type or case.operation.body[0].media_type


def signed_request(case: Any, base_url: str, finance: bool) -> requests.PreparedRequest:
    """The case as it goes on the wire, with the finance user's login, or the webhook
    signature over exactly the method, target and body bytes sent."""
    sent = case.as_transport_kwargs(base_url=base_url)
    fields = {"method", "url", "headers", "files", "data", "json", "params", "cookies"}
    request = requests.Request(**{k: v for k, v in sent.items() if k in fields}).prepare()
    # Bytes, so that what is signed is what goes out: requests would send a str body
    # encoded as Latin-1.
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    assert isinstance(body, bytes), "forms, JSON and multipart bodies are prepared whole"
    if request.body is not None:
        request.body = body
        request.headers["Content-Length"] = str(len(body))
    for header in ("Authorization", API_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER):
        request.headers.pop(header, None)
    if finance:
        password = get_settings().finance_logins()[FINANCE]
        login = base64.b64encode(f"{FINANCE}:{password}".encode()).decode()
        request.headers["Authorization"] = f"Basic {login}"
    else:
        [secret] = get_settings().intake_webhook_secrets.values()
        stamp = str(int(time.time()))
        message = f"{stamp}\n{request.method}\n{request.path_url}\n".encode() + body
        digest = hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256)
        request.headers[TIMESTAMP_HEADER] = stamp
        request.headers[SIGNATURE_HEADER] = f"sha256={digest.hexdigest()}"
    return request

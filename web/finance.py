"""Finance's pages: open invoices, recording payments, bank statements, the payment
check, disputes and holds: behind HTTP Basic authentication (checked by web/guard.py),
each form with an anti-forgery token of its own (web/form_tokens.py).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from dealflow.answers.settlement import settle_deal
from dealflow.finance.bank_statement import StatementError, import_lines, parse_statement
from dealflow.finance.payments import PaymentDetails, PaymentError, parse_amount, record_payment
from dealflow.finance.receivables import (
    ReceivableError,
    active_holds,
    clear_hold,
    dispute_invoice,
    open_invoices,
    resolve_dispute,
)
from dealflow.infra.clock import utcnow
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from models.matrix import MatrixError, load_matrix
from models.settings import get_settings
from web.form_tokens import check_form, form_token
from web.guard import FINANCE_REALM, FINANCE_USER, MAX_STATEMENT_BYTES
from web.pages import browser_language

logger = logging.getLogger("dealflow.web.finance")
router = APIRouter()
basic = HTTPBasic(realm="Dealflow finance")


def finance_user(
    request: Request, credentials: Annotated[HTTPBasicCredentials, Depends(basic)]
) -> str:
    """The logged-in finance user. web/guard.py checked the password before the body was
    read (401 there); the scheme is declared here for the schema."""
    user = request.scope.get("state", {}).get(FINANCE_USER)
    if user is None or user != credentials.username:
        raise HTTPException(
            401, "Finance login required.", headers={"WWW-Authenticate": FINANCE_REALM}
        )
    return str(user)


User = Annotated[str, Depends(finance_user)]
Token = Annotated[str, Form(alias="form_token")]


def page_language(request: Request, user: User) -> str:
    """The finance user's language: that of the matrix person the login names (by id or
    email), their own or that of the teams they serve; else the browser's."""
    try:
        matrix = load_matrix(get_settings().matrix_path)
    except MatrixError:
        return browser_language(request.headers)
    login = user.lower()
    person = next((p for p in matrix.people if login in (p.id.lower(), p.email.lower())), None)
    stated = matrix.stated_language(person) if person is not None else None
    return stated or browser_language(request.headers)


Language = Annotated[str, Depends(page_language)]
# What the page says after a form: Words are read in the page's language, plain strings
# (what other modules report, a person's own words) as they are.
Said = Words | str


def _finance_page(
    user: str,
    language: str,
    notice: Said | list[Said] = "",
    error: Said = "",
    status: int = 200,
) -> HTMLResponse:
    invoices, total = open_invoices(200)
    html = render_in(
        language,
        "pages/finance.html",
        user=user,
        token=lambda action: form_token(user, action),
        invoices=invoices,
        total=total,
        holds=active_holds(),
        notice="\n".join(_written(part, language) for part in _parts(notice)),
        error=_written(error, language),
        today=utcnow().date(),
    )
    return HTMLResponse(html, status)


def _parts(said: Said | list[Said]) -> list[Said]:
    return said if isinstance(said, list) else [said]


def _written(said: Said, language: str) -> str:
    return said.in_language(language) if isinstance(said, Words) else said


@router.get("/finance", response_class=HTMLResponse)
def finance_home(user: User, language: Language) -> HTMLResponse:
    return _finance_page(user, language)


@router.post("/finance/payments", response_class=HTMLResponse)
def finance_record_payment(
    user: User,
    language: Language,
    token: Token,
    invoice: Annotated[str, Form(max_length=80)],
    amount: Annotated[str, Form(max_length=20)],
    received_on: Annotated[str, Form(max_length=10)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    check_form(user, "/finance/payments", token)
    try:
        value = parse_amount(amount)
        day = dt.date.fromisoformat(received_on) if received_on else utcnow().date()
    except (PaymentError, ValueError) as exc:
        return _finance_page(
            user,
            language,
            error=Words(
                "Nothing was recorded: %(why)s (dates as 2026-11-30; got %(got)s).",
                why=str(exc),
                got=repr(received_on),
            ),
            status=400,
        )
    if day > utcnow().date() + dt.timedelta(days=1):
        return _finance_page(
            user,
            language,
            error=Words("Nothing was recorded: %(day)s is in the future.", day=day),
            status=400,
        )
    details = PaymentDetails(invoice.strip().upper(), value, day, reference.strip())
    try:
        result = record_payment(details, source="web", recorded_by=user)
    except PaymentError as exc:
        return _finance_page(
            user, language, error=Words("Nothing was recorded: %(why)s", why=str(exc)), status=400
        )
    recorded = Words("Recorded: %(what)s", what=result.describe())
    if result.deal_settled:
        recorded = Words(
            "%(recorded)s. %(closing)s", recorded=recorded, closing=settle_deal(result.deal_id)
        )
    return _finance_page(user, language, notice=recorded)


@router.post("/finance/statements", response_class=HTMLResponse)
def finance_import_statement(
    user: User, language: Language, token: Token, statement: Annotated[UploadFile, File()]
) -> HTMLResponse:
    # A plain function: FastAPI runs it in a worker thread, so a long import does not
    # hold up the pages other people are opening.
    check_form(user, "/finance/statements", token)
    data = statement.file.read(MAX_STATEMENT_BYTES + 1)
    name = statement.filename or "statement.csv"
    if len(data) > MAX_STATEMENT_BYTES:
        return _finance_page(
            user, language, error=Words("Nothing was imported: the file is over 5 MB."), status=400
        )
    try:
        lines = parse_statement(data.decode("utf-8-sig"), name)
    except UnicodeDecodeError:
        return _finance_page(
            user,
            language,
            error=Words("Nothing was imported: the file is not UTF-8 text."),
            status=400,
        )
    except StatementError as exc:
        return _finance_page(
            user,
            language,
            error=Words("Nothing was imported: %(why)s", why="; ".join(exc.problems)),
            status=400,
        )
    report = import_lines(lines, source=name[:40], recorded_by=user)
    closing: list[Said] = [settle_deal(deal_id) for deal_id in report.settled_deals]
    return _finance_page(user, language, notice=[report.summary(), *closing])


@router.post("/finance/check", response_class=HTMLResponse)
def finance_run_check(user: User, language: Language, token: Token) -> HTMLResponse:
    """Start the payment-check deployment now; the run appears in the Prefect UI."""
    check_form(user, "/finance/check", token)
    from prefect.deployments import run_deployment

    try:
        run = run_deployment("payment-check/payment-check", timeout=0, tags=["on-demand"])
    except (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound) as exc:
        logger.warning("the payment check could not be started: %s", exc)
        return _finance_page(
            user,
            language,
            error=Words(
                "The payment check could not be started: the workflow server is not "
                "reachable or has no payment-check deployment. Try again in a minute."
            ),
            status=503,
        )
    assert not inspect.isawaitable(run)
    link = f"{get_settings().prefect_ui_url}/runs/flow-run/{run.id}"
    return _finance_page(
        user,
        language,
        notice=Words("Payment check started: %(link)s (started by %(user)s)", link=link, user=user),
    )


@router.post("/finance/invoices/{number}/dispute", response_class=HTMLResponse)
def finance_dispute(
    user: User,
    language: Language,
    token: Token,
    number: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    check_form(user, f"/finance/invoices/{number}/dispute", token)
    try:
        return _finance_page(user, language, notice=dispute_invoice(number, reason, user))
    except ReceivableError as exc:
        return _not_changed(user, language, exc)


@router.post("/finance/invoices/{number}/resolve", response_class=HTMLResponse)
def finance_resolve(user: User, language: Language, token: Token, number: str) -> HTMLResponse:
    check_form(user, f"/finance/invoices/{number}/resolve", token)
    try:
        return _finance_page(user, language, notice=resolve_dispute(number, user))
    except ReceivableError as exc:
        return _not_changed(user, language, exc)


@router.post("/finance/holds/clear", response_class=HTMLResponse)
def finance_clear_hold(
    user: User, language: Language, token: Token, customer: Annotated[str, Form(max_length=200)]
) -> HTMLResponse:
    check_form(user, "/finance/holds/clear", token)
    try:
        return _finance_page(user, language, notice=clear_hold(customer, user))
    except ReceivableError as exc:
        return _not_changed(user, language, exc)


def _not_changed(user: str, language: str, exc: ReceivableError) -> HTMLResponse:
    return _finance_page(
        user, language, error=Words("Nothing was changed: %(why)s", why=str(exc)), status=400
    )

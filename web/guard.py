"""The web service's gate: what is checked of a request before any of its body is read.

Every request passes through here first (``RequestGuard``, the outermost middleware of
web/app.py):

- **Who is asking**, from the headers alone: the finance pages want their login, deal
  intake its API key. A request without valid credentials is answered 401 before one
  byte of its body is read, however large it claims to be. A signed webhook is the one
  exception: its signature covers the body, so the body is read to check it, but only
  up to the route's limit.
- **How often**: a user name or a client address with too many failed finance logins,
  and a client address opening link pages (approval, acceptance, deal page) too often,
  get 429 with Retry-After (web/rate_limit.py; counted per process).
- **How large the body may be**, per route (``BODY_LIMITS``): a Content-Length over the
  limit is answered 413 at once; a body sent without one (chunked) is counted while it
  streams in and refused with 413 as soon as it passes the limit.

The pages and the API then find who the request comes from in ``request.state``
(``FINANCE_USER``, ``INTAKE_CLIENT``): only this gate puts it there, so a route that is
somehow reached without the gate refuses everyone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import secrets
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dealflow.infra.clock import utcnow
from dealflow.infra.rendering import render, render_in
from dealflow.infra.words import Words
from dealflow.intake.auth import (
    API_KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthProblem,
    IntakeAuthError,
    IntakeCredentials,
    check_headers,
    identify_client,
)
from models.settings import get_settings
from web.pages import browser_language
from web.rate_limit import Limits, retry_after

logger = logging.getLogger("dealflow.web.guard")

KIB = 1024
MIB = 1024 * KIB
# A deal is a few kilobytes of JSON; the largest one intake accepts (500 line items of
# 500 characters) stays under this.
MAX_DEAL_BYTES = 1 * MIB
# The bank statement file finance uploads, and the form around it.
MAX_STATEMENT_BYTES = 5 * MIB
MAX_STATEMENT_REQUEST_BYTES = MAX_STATEMENT_BYTES + 64 * KIB
# Any other request: the approval, acceptance and finance forms (their longest field is
# a 4,000-character comment, 48 KiB percent-encoded at worst), and requests that carry
# no body at all.
MAX_FORM_BYTES = 64 * KIB

FINANCE_USER = "finance_user"
INTAKE_CLIENT = "intake_client"
FINANCE_REALM = 'Basic realm="finance"'
# Pages opened with a signed token in their address.
LINK_PAGES = (
    "/approvals/",
    "/acceptance/",
    "/deals/",
    "/signing/",
    "/survey/",
    "/progress/",
    "/repurchase/",
)


@dataclass(frozen=True)
class Route:
    """What the gate checks of one kind of request."""

    area: str  # "finance", "intake", "links" (token pages) or "public"
    max_body: int
    what: str  # names the body in a 413, e.g. "a deal"


def route_of(method: str, path: str) -> Route:
    if path == "/finance" or path.startswith("/finance/"):
        if method == "POST" and path == "/finance/statements":
            return Route("finance", MAX_STATEMENT_REQUEST_BYTES, "a bank statement upload")
        return Route("finance", MAX_FORM_BYTES, "a finance form")
    if path == "/api/deals" or path.startswith("/api/deals/"):
        if method == "POST" and (path == "/api/deals" or path.endswith("/revisions")):
            return Route("intake", MAX_DEAL_BYTES, "a deal")
        return Route("intake", MAX_FORM_BYTES, "this request")
    if path.startswith(LINK_PAGES):
        return Route("links", MAX_FORM_BYTES, "a form")
    return Route("public", MAX_FORM_BYTES, "a form")


def too_large(route: Route) -> str:
    return (
        f"The request body is too large: {route.what} may be at most "
        f"{route.max_body:,} bytes ({route.max_body / MIB:.2f} MiB); nothing was stored."
    )


def request_target(scope: Scope) -> str:
    """The path and query as the request line carried them, which a signature covers."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return bytes(path + (b"?" + query if query else b"")).decode("latin-1")


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class _Answer(Exception):
    """The gate answers the request itself, with ``status`` and a JSON ``detail`` (or
    ``page``, HTML for a person's browser)."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        page: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.page = status, detail, headers or {}, page


class _Gone(Exception):
    """The client went away while its body was read."""


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise _Answer(400, "Content-Length must be a number of bytes.")
    return int(value)


def capped(receive: Receive, route: Route) -> Receive:
    """``receive`` that counts the body and stops it past the route's limit (413)."""
    seen = 0

    async def receive_capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > route.max_body:
                raise HTTPException(413, too_large(route))
        return message

    return receive_capped


async def read_body(receive: Receive, route: Route) -> bytes:
    """The whole body, read here; 413 as soon as it passes the route's limit."""
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > route.max_body:
            raise _Answer(413, too_large(route))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands the app the body read here, then whatever comes next."""
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic`` header, or None."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        # ASCII, as the finance pages' HTTPBasic scheme reads it.
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def finance_login_ok(user: str, password: str) -> bool:
    expected = get_settings().finance_logins().get(user, "")
    # Compared even for an unknown user, so that timing does not tell which users exist.
    password_ok = hmac.compare_digest(
        password.encode(), (expected or secrets.token_hex(16)).encode()
    )
    return bool(expected) and password_ok


class RequestGuard:
    """The ASGI middleware that lets a request's body in only once its sender is known."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits.from_settings(get_settings())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_of(scope["method"], scope["path"])
        headers = Headers(scope=scope)
        try:
            if route.area == "finance":
                self._finance_login(scope, headers)
            elif route.area == "links":
                self._link_request(scope)
            elif route.area == "intake":
                receive = await self._intake_client(scope, headers, receive, route)
            declared = _declared_length(headers)
            if declared is not None and declared > route.max_body:
                raise _Answer(413, too_large(route))
        except _Answer as answer:
            await _send_answer(send, answer)
            return
        except _Gone:
            return
        await self.app(scope, capped(receive, route), send)

    def _finance_login(self, scope: Scope, headers: Headers) -> None:
        # What the browser shows when the login dialog is cancelled or the password is wrong.
        login_required = _Answer(
            401,
            "Finance login required.",
            {"WWW-Authenticate": FINANCE_REALM},
            page=render(
                "pages/message.html",
                title="Finance login required",
                message="These pages are for finance staff: reload the page and sign in with "
                "your finance user name and password.",
            ),
        )
        given = basic_credentials(headers)
        if given is None:
            raise login_required  # a browser's first request: no password tried yet
        user, password = given
        address = client_address(scope)
        wait = self.limits.login_wait(user, address)
        if wait:
            # Refused without looking at the password: guessing on cannot tell a thing.
            logger.warning("finance login from %s held back: too many failures", address)
            raise _Answer(
                429,
                f"Too many failed logins: try again in {retry_after(wait)} seconds.",
                {"Retry-After": retry_after(wait)},
            )
        if not finance_login_ok(user, password):
            self.limits.login_failed(user, address)
            # The name only if it is a user's: people type passwords into the name field.
            known = user in get_settings().finance_logins()
            shown = repr(user) if known else "a name that is no user's"
            logger.warning("failed finance login for %s from %s", shown, address)
            raise login_required
        self.limits.logged_in(user)
        scope.setdefault("state", {})[FINANCE_USER] = user

    def _link_request(self, scope: Scope) -> None:
        wait = self.limits.link_request(client_address(scope))
        if wait:
            said = Words(
                "This address opened Dealflow's links too often in the last minute. Wait "
                "%(seconds)s seconds and open the link again; nothing was changed.",
                seconds=retry_after(wait),
            )
            # Approvers read this page: in their browser's language.
            language = browser_language(Headers(scope=scope))
            raise _Answer(
                429,
                str(said),
                {"Retry-After": retry_after(wait)},
                page=render_in(
                    language,
                    "pages/message.html",
                    title=Words("Too many requests").in_language(language),
                    message=said.in_language(language),
                ),
            )

    async def _intake_client(
        self, scope: Scope, headers: Headers, receive: Receive, route: Route
    ) -> Receive:
        """Who sends this intake request; the body is read here only to check a
        signature, after every header was found in order."""
        settings = get_settings()
        # An empty header counts as not sent, as the schema's security schemes read it.
        credentials = IntakeCredentials(
            headers.get(API_KEY_HEADER) or None,
            headers.get(SIGNATURE_HEADER) or None,
            headers.get(TIMESTAMP_HEADER),
            method=scope["method"],
            target=request_target(scope),
        )
        keys, signers = settings.intake_api_keys, settings.intake_webhook_secrets
        tolerance = settings.intake_signature_tolerance_seconds
        try:
            check_headers(credentials, keys, signers, utcnow(), tolerance)
            if credentials.signature is not None:
                declared = _declared_length(headers)
                if declared is not None and declared > route.max_body:
                    raise _Answer(413, too_large(route))
                body = await read_body(receive, route)
                receive = replaying(body, receive)
                credentials = IntakeCredentials(
                    credentials.api_key,
                    credentials.signature,
                    credentials.timestamp,
                    credentials.method,
                    credentials.target,
                    body,
                )
            client = identify_client(credentials, keys, signers, utcnow(), tolerance)
        except IntakeAuthError as exc:
            logger.warning(
                "deal intake refused a request from %s: %s",
                client_address(scope),
                exc.problem.value,
            )
            status = 503 if exc.problem is AuthProblem.NOT_CONFIGURED else 401
            raise _Answer(status, exc.message) from None
        scope.setdefault("state", {})[INTAKE_CLIENT] = client
        return receive


async def _send_answer(send: Send, answer: _Answer) -> None:
    if answer.page is not None:
        body, kind = answer.page.encode(), b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"detail": answer.detail}).encode(), b"application/json"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is not read: the connection cannot carry another request.
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in answer.headers.items()),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

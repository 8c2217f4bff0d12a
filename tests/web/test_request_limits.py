"""Bodies are let in only once the sender is known, and only up to a limit per route.

Large bodies are sent over a raw socket, the way a hostile client sends them: headers
announcing hundreds of megabytes and no body at all (the answer must come without it),
or a chunked body that never says how long it is (the answer must come once the limit
is passed, while the client is still sending).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import select
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from models.settings import get_settings
from tests.support import fresh_deal

pytestmark = pytest.mark.stack

KEY = "key-for-tests-0123456789"
SECRET = b"secret-for-tests-0123456789"
HUGE = 300 * 1024 * 1024
MAX_CONTACTS, MAX_LINE_ITEMS = 50, 500


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    base: str,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: Iterable[bytes] = (),
    timeout: float = 15,
) -> Answer:
    """Send the head, then ``chunks`` (chunked) until the server answers; its answer.
    With Content-Length in ``headers`` and no chunks, no body byte is ever sent."""
    address = urlsplit(base)
    head = f"{method} {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as conn:
        conn.sendall(head.encode())
        for chunk in chunks:
            if select.select([conn], [], [], 0)[0]:
                break  # the server answered: stop sending, as a client would
            try:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_answer(conn)


def read_answer(conn: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        assert more, f"the server closed the connection without an answer: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return Answer(int(status_line.split()[1]), headers, body)


def junk(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def signed(body: bytes, method: str = "POST", target: str = "/api/deals") -> dict[str, str]:
    stamp = str(int(time.time()))
    message = f"{stamp}\n{method}\n{target}\n".encode() + body
    digest = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    return {"X-Dealflow-Timestamp": stamp, "X-Dealflow-Signature": f"sha256={digest}"}


def finance_login() -> dict[str, str]:
    password = get_settings().finance_logins()["finance"]
    return {"Authorization": "Basic " + base64.b64encode(f"finance:{password}".encode()).decode()}


@pytest.fixture
def base(stack: Any) -> str:
    return str(stack.config.web_url)


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "credentials",
    [{}, {"X-API-Key": "not-the-key-9876543210"}],
    ids=["no-credentials", "wrong-key"],
)
def test_a_huge_deal_without_valid_credentials_is_refused_before_its_body(
    base: str, credentials: dict[str, str]
) -> None:
    started = time.monotonic()
    answer = raw_request(
        base, "POST", "/api/deals", {**JSON, "Content-Length": str(HUGE), **credentials}
    )
    assert answer.status == 401, answer.body
    assert "credentials" in answer.json()["detail"] or "not valid" in answer.json()["detail"]
    assert time.monotonic() - started < 10


def test_a_huge_statement_upload_without_a_login_is_refused_before_its_body(base: str) -> None:
    headers = {
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(HUGE),
    }
    answer = raw_request(base, "POST", "/finance/statements", headers)
    assert answer.status == 401 and answer.headers["www-authenticate"].startswith("Basic")


def test_a_logged_in_statement_upload_over_the_limit_is_refused_at_once(base: str) -> None:
    headers = {
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(HUGE),
        **finance_login(),
    }
    answer = raw_request(base, "POST", "/finance/statements", headers)
    assert answer.status == 413
    assert "a bank statement upload may be at most" in answer.json()["detail"]


def test_a_deal_over_the_limit_is_refused_by_its_content_length(base: str) -> None:
    headers = {**JSON, "Content-Length": str(2 * 1024 * 1024), "X-API-Key": KEY}
    answer = raw_request(base, "POST", "/api/deals", headers)
    assert answer.status == 413
    assert "a deal may be at most 1,048,576 bytes" in answer.json()["detail"]


def test_a_chunked_deal_is_cut_off_once_it_passes_the_limit(base: str) -> None:
    headers = {**JSON, "Transfer-Encoding": "chunked", "X-API-Key": KEY}
    answer = raw_request(base, "POST", "/api/deals", headers, junk(HUGE))
    assert answer.status == 413, answer.body
    assert "a deal may be at most" in answer.json()["detail"]


def test_a_signed_deal_is_read_to_check_its_signature_but_only_up_to_the_limit(
    base: str,
) -> None:
    body = b" " * (2 * 1024 * 1024)
    headers = {**JSON, "Content-Length": str(len(body)), **signed(body)}
    assert raw_request(base, "POST", "/api/deals", headers).status == 413
    chunked = {**JSON, "Transfer-Encoding": "chunked", **signed(body)}
    answer = raw_request(base, "POST", "/api/deals", chunked, junk(HUGE))
    assert answer.status == 413 and "a deal may be at most" in answer.json()["detail"]


def test_a_huge_form_on_an_approval_link_is_refused(base: str) -> None:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(HUGE),
    }
    answer = raw_request(base, "POST", "/approvals/any.token", headers)
    assert answer.status == 413 and "a form may be at most" in answer.json()["detail"]
    chunked = {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"}
    answer = raw_request(base, "POST", "/acceptance/any.token", chunked, junk(HUGE))
    assert answer.status == 413


def test_a_deal_under_the_limits_still_goes_through_chunked(base: str) -> None:
    """A body sent in chunks, within the limit, reaches the API whole."""
    data = fresh_deal()
    body = json.dumps(data).encode()
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)] + [b""]
    headers = {**JSON, "Transfer-Encoding": "chunked", **signed(body)}
    address = urlsplit(base)
    head = f"POST /api/deals HTTP/1.1\r\nHost: {address.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((address.hostname, address.port), timeout=60) as conn:
        conn.sendall(head.encode())
        for piece in pieces:
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        answer = read_answer(conn)
    assert answer.status == 201, answer.body
    assert answer.json()["deal_id"] == data["deal_id"]


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (
            lambda d: d["customer"].update(contacts=[d["customer"]["billing_contact"]] * 51),
            ["body", "customer", "contacts"],
            f"at most {MAX_CONTACTS} contacts allowed, got 51",
        ),
        (
            lambda d: d.update(line_items=d["line_items"][:1] * (MAX_LINE_ITEMS + 1)),
            ["body", "line_items"],
            f"at most {MAX_LINE_ITEMS} line items allowed, got {MAX_LINE_ITEMS + 1}",
        ),
        (
            lambda d: d["customer"]["billing_contact"].update(role="r" * 101),
            ["body", "customer", "billing_contact", "role"],
            "at most 100 characters allowed, got 101",
        ),
        (
            lambda d: d["customer"]["billing_contact"].update(phone="1" * 51),
            ["body", "customer", "billing_contact", "phone"],
            "at most 50 characters allowed, got 51",
        ),
        (
            lambda d: d.update(notes="n" * 4001),
            ["body", "notes"],
            "at most 4000 characters",
        ),
    ],
    ids=["contacts", "line-items", "role", "phone", "notes"],
)
def test_lists_and_free_text_of_a_deal_are_capped_with_the_field_named(
    base: str, change: Any, loc: list[str], words: str
) -> None:
    data = fresh_deal()
    change(data)
    response = httpx.post(f"{base}/api/deals", json=data, headers={"X-API-Key": KEY}, timeout=60)
    assert response.status_code == 422, response.text
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert words in problems[tuple(loc)], problems

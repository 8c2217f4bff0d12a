"""Dealflow's emails as the people who get them use them: whose a message is, its text,
the link it carries, and the decision posted at that link."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Protocol

import httpx

LINK = re.compile(r"https?://[^\s\"'<>]+/approvals/[A-Za-z0-9_.=-]+")
ACCEPTANCE_LINK = re.compile(r"https?://[^\s\"'<>]+/acceptance/[A-Za-z0-9_.=-]+")
SIGNING_LINK = re.compile(r"https?://[^\s\"'<>]+/signing/[A-Za-z0-9_.=-]+")
SURVEY_LINK = re.compile(r"https?://[^\s\"'<>]+/survey/[A-Za-z0-9_.=-]+")
PROGRESS_LINK = re.compile(r"https?://[^\s\"'<>]+/progress/[A-Za-z0-9_.=-]+")
REPURCHASE_LINK = re.compile(r"https?://[^\s\"'<>]+/repurchase/[A-Za-z0-9_.=-]+")
SIGNING_SUBJECT = "Record the signed contract"  # the rep's email after the last approval


def to(address: str, subject_part: str, deal_id: str) -> Callable[[EmailMessage], bool]:
    """Whether a message goes to ``address``, about ``deal_id``, with ``subject_part`` in
    its subject: a predicate for an inbox's ``wait_for``."""

    def predicate(message: EmailMessage) -> bool:
        return (
            address in str(message["To"])
            and subject_part in str(message["Subject"])
            and deal_id in str(message["Subject"]) + str(message.get_body(("plain",)))
        )

    return predicate


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no {subtype} part in {message['Subject']}"
    return str(part.get_content())


def link_in(message: EmailMessage, pattern: re.Pattern[str] = LINK) -> str:
    """The first link of the message's text part; AssertionError unless the HTML part
    carries it too."""
    text_links = pattern.findall(text_of(message, "plain"))
    html_links = [link.replace("&amp;", "&") for link in pattern.findall(text_of(message, "html"))]
    assert text_links and text_links[0] in html_links, "the text and HTML parts carry the same link"
    return str(text_links[0])


def decide(link: str, decision: str, comment: str = "") -> httpx.Response:
    """What the approval page's buttons post: ``decision`` is "approve" or "reject"."""
    return httpx.post(link, data={"decision": decision, "comment": comment}, timeout=60)


def sign(
    link: str,
    signed_by: str = "Jane Buyer",
    document: str = "CONTRACT-SIGNED.pdf",
    signed_on: str = "",
) -> httpx.Response:
    """What the signing page's form posts: who signed for the customer, the signed
    document, and the date (empty: today)."""
    data = {"signed_by": signed_by, "document": document, "signed_on": signed_on}
    return httpx.post(link, data=data, timeout=60)


class Mailbox(Protocol):
    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = ...
    ) -> EmailMessage: ...


def sign_from_email(
    inbox: Mailbox,
    rep: str,
    deal_id: str,
    *,
    signed_by: str = "Jane Buyer",
    document: str = "CONTRACT-SIGNED.pdf",
    timeout: float = 90,
) -> str:
    """Follow the link of the sales rep's "record the signed contract" email about
    ``deal_id`` and post the form, as the rep does; the link used. AssertionError unless
    the page says it is recorded."""
    link = link_in(inbox.wait_for(to(rep, SIGNING_SUBJECT, deal_id), timeout), SIGNING_LINK)
    response = sign(link, signed_by, document)
    assert response.status_code == 200, response.text
    assert "Signed contract recorded" in response.text, response.text
    return link

"""An email goes out once per key: across re-executions, retries and concurrent senders."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.intake.submit import load_deal_file
from models.settings import PROJECT_ROOT, get_settings
from models.tables import SentMessage
from tasks.effect import is_transient
from tasks.mailer import OutgoingEmail, deliver, message_id_for
from tests.conftest import Inbox

pytestmark = pytest.mark.usefixtures("database_url")


def mail(key: str, **changes: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "key": key,
        "kind": "test",
        "deal_id": None,
        "to": ["someone@example.com"],
        "cc": ["finance@example.com"],
        "subject": f"Subject {key}",
        "template": "rejection",
        "context": {
            "deal": load_deal_file(PROJECT_ROOT / "examples" / "acme.json"),
            "gate": {"title": "Legal review"},
            "rejection": {
                "decided_by_name": "Lena",
                "decided_by": "l@x",
                "decided_at": None,
                "comment": "<b>no</b>",
            },
        },
    }
    fields.update(changes)
    return OutgoingEmail(**fields)


def backend(url: str) -> str:
    return url.split(":", 1)[0]  # the SMTP receiver is shared: keys differ per database


def sent_with(inbox: Inbox, key: str) -> list[Any]:
    return inbox.matching(lambda m: m["X-Dealflow-Key"] == key)


def row(key: str) -> SentMessage:
    with session_scope() as session:
        found = session.scalar(select(SentMessage).where(SentMessage.key == key))
    assert found is not None
    return found


def test_a_key_is_sent_once(inbox: Inbox, database_url: str) -> None:
    key = f"{backend(database_url)}/once"
    assert deliver(mail(key)) is True
    assert deliver(mail(key)) is False
    [message] = sent_with(inbox, key)
    assert message["Message-ID"] == message_id_for(key, get_settings())
    assert message["X-Envelope-To"] == "someone@example.com, finance@example.com"
    assert "&lt;b&gt;no&lt;/b&gt;" in message.get_body(("html",)).get_content()
    assert row(key).status == "sent" and row(key).attempts == 1


def test_smtp_down_is_recorded_transient_and_sent_once_when_back(
    inbox: Inbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{backend(database_url)}/smtp-down"
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")  # nothing listens on the discard port
    get_settings.cache_clear()
    with pytest.raises(ConnectionRefusedError) as caught:
        deliver(mail(key))
    assert is_transient(caught.value)
    failed = row(key)
    assert failed.status == "retrying" and "ConnectionRefusedError" in (failed.last_error or "")

    monkeypatch.undo()
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", database_url)
    get_settings.cache_clear()
    assert deliver(mail(key)) is True
    assert deliver(mail(key)) is False
    assert len(sent_with(inbox, key)) == 1
    recovered = row(key)
    assert recovered.status == "sent" and recovered.attempts == 2 and recovered.last_error is None


def test_concurrent_senders_of_one_key_send_once(inbox: Inbox, database_url: str) -> None:
    key = f"{backend(database_url)}/race"
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        results.append(deliver(mail(key)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [False, False, False, True]
    assert len(sent_with(inbox, key)) == 1


def test_permanent_smtp_errors_are_not_retried() -> None:
    import smtplib

    assert not is_transient(smtplib.SMTPRecipientsRefused({"x@y": (550, b"no such user")}))
    assert not is_transient(smtplib.SMTPDataError(554, b"rejected"))
    assert is_transient(smtplib.SMTPDataError(451, b"try later"))
    assert is_transient(smtplib.SMTPServerDisconnected("gone"))
    assert not is_transient(ValueError("a bug of ours"))


def test_an_email_that_failed_is_resent_once_from_the_outbox(
    inbox: Inbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.mailer import resend_failed

    key = f"{backend(database_url)}/resend"
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")
    get_settings.cache_clear()
    with pytest.raises(ConnectionRefusedError):
        deliver(mail(key))
    assert resend_failed() == [], "still down: kept for later"
    assert row(key).status == "retrying"

    monkeypatch.undo()
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", database_url)
    get_settings.cache_clear()
    assert resend_failed() == [key]
    assert resend_failed() == []
    assert deliver(mail(key)) is False, "a retry of the task finds it sent"
    [message] = sent_with(inbox, key)
    assert message["Message-ID"] == message_id_for(key, get_settings())
    assert row(key).status == "sent"


def test_a_deal_email_held_back_by_an_outage_waits_in_the_outbox_with_the_delay_on_the_timeline(
    inbox: Inbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from dealflow.infra.records import timeline
    from dealflow.intake.submit import store_deal
    from tasks import mailer
    from tasks.mailer import deliver_or_queue, resend_failed

    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    deal_id = f"Q{uuid.uuid4().hex[:8].upper()}-ACME"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    key = f"deal/{deal_id}/test/outage"
    monkeypatch.setattr(mailer, "OUTAGE_RETRY_SECONDS", (0.0,))
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")
    get_settings.cache_clear()
    assert deliver_or_queue(mail(key, deal_id=deal_id)) is False, "held back, not raised"
    assert row(key).status == "retrying" and row(key).attempts == 2

    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(inbox_port()))
    get_settings.cache_clear()
    assert resend_failed() == [key]
    assert deliver_or_queue(mail(key, deal_id=deal_id)) is False, "a re-run finds it sent"
    assert len(sent_with(inbox, key)) == 1
    with session_scope() as session:
        events = [t.event for t in timeline(session, deal_id) if t.key.startswith("mail/")]
    assert len(events) == 2
    assert events[0].startswith("Email to someone@example.com held back: the mail server")
    assert "ConnectionRefusedError" in events[0]
    assert events[1].startswith("Email to someone@example.com sent 0 min late, after 3 attempts")


def test_a_refused_message_is_not_queued_but_raised(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smtplib

    from tasks import mailer
    from tasks.mailer import deliver_or_queue

    def refuse(*_args: object) -> None:
        raise smtplib.SMTPRecipientsRefused({"someone@example.com": (550, b"no such user")})

    monkeypatch.setattr(mailer, "smtp_send", refuse)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        deliver_or_queue(mail(f"{backend(database_url)}/refused"))


def inbox_port() -> int:
    from tests.conftest import PORTS

    return PORTS["smtp"]

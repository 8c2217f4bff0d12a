"""An email goes out once per key: across re-executions, retries and concurrent senders."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.intake.submit import load_deal_file
from models.settings import PROJECT_ROOT, get_settings
from models.tables import SentMessage
from tasks.effect import is_transient
from tasks.email_message import OutgoingEmail, message_id_for
from tasks.mailer import deliver
from tests.conftest import Inbox

pytestmark = pytest.mark.usefixtures("database_url")

InboxT = TypeVar("InboxT", bound=Inbox)


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


class SlowInbox(Inbox):
    """A mail server that takes the message and then holds its answer until ``release``:
    a sender is mid-conversation for as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.receiving = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        self.receiving.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def mail_server(handler: InboxT, monkeypatch: pytest.MonkeyPatch) -> Iterator[InboxT]:
    """An SMTP server of its own, with ``handler``, that Dealflow sends to meanwhile."""
    from harness.ports import free_port
    from tests.conftest import SmtpServer

    server = SmtpServer(handler, free_port())
    server.start()
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(server.port))
    get_settings.cache_clear()
    try:
        yield handler
    finally:
        server.stop()
        get_settings.cache_clear()


@pytest.fixture
def slow_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowInbox]:
    with mail_server(SlowInbox(), monkeypatch) as inbox:
        yield inbox
        inbox.release.set()


class MarkCheckingInbox(Inbox):
    """A mail server that, as each message's data arrives, notes the outbox status of
    every message it received before: all must be marked sent by then."""

    def __init__(self) -> None:
        super().__init__()
        self.unmarked_before: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        earlier = [str(m["X-Dealflow-Key"]) for m in self.messages]
        if earlier:
            with session_scope() as database:
                marked = set(
                    database.scalars(
                        select(SentMessage.key).where(
                            SentMessage.key.in_(earlier), SentMessage.status == "sent"
                        )
                    )
                )
            self.unmarked_before.append(
                (str(envelope.rcpt_tos), [key for key in earlier if key not in marked])
            )
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def mark_checking_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MarkCheckingInbox]:
    with mail_server(MarkCheckingInbox(), monkeypatch) as inbox:
        yield inbox


def queued(key: str) -> str:
    """``key``'s email, queued in the outbox as the payment check queues its letters."""
    from tasks.mailer import outbox_values

    with session_scope() as session:
        session.add(SentMessage(**outbox_values(mail(key), get_settings())))
    return key


def another_writer_gets_in(database_url: str, key: str) -> None:
    """Write to the outbox row of ``key`` from another connection, giving up after a
    second: raises if a sender holds the database (SQLite) or the row (PostgreSQL)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        connection = sqlite3.connect(
            database_url.removeprefix("sqlite:///"), timeout=1, isolation_level=None
        )
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE sent_messages SET kind = kind WHERE key = ?", (key,))
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as pg:
        pg.execute("SET lock_timeout = '1s'")
        pg.execute("UPDATE sent_messages SET kind = kind WHERE key = %s", (key,))
        pg.rollback()


@pytest.mark.parametrize("sender", ["deliver", "send_outbox"])
def test_a_slow_mail_server_holds_up_no_writer(
    slow_inbox: SlowInbox, database_url: str, sender: str
) -> None:
    from tasks.mailer import send_outbox

    key = f"{backend(database_url)}/slow/{sender}"
    send = (
        (lambda: deliver(mail(key))) if sender == "deliver" else lambda: send_outbox([queued(key)])
    )
    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert slow_inbox.receiving.wait(30), "the email never reached the mail server"
        another_writer_gets_in(database_url, key)
    finally:
        slow_inbox.release.set()
        thread.join(60)
    assert len(sent_with(slow_inbox, key)) == 1
    assert row(key).status == "sent" and row(key).attempts == 1


def test_the_email_in_flight_when_its_sender_dies_goes_out_again_after_the_claim_lease(
    slow_inbox: SlowInbox, inbox: Inbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt
    import signal
    import subprocess
    import sys

    from dealflow.infra.clock import utcnow
    from tasks.mailer import resend_failed
    from tasks.outbox_claims import CLAIM_LEASE

    key = queued(f"{backend(database_url)}/in-flight")
    child = subprocess.Popen(
        [sys.executable, "-c", f"from tasks.mailer import send_outbox; send_outbox([{key!r}])"],
        cwd=PROJECT_ROOT,
    )
    try:
        assert slow_inbox.receiving.wait(60), "the email never reached the mail server"
    finally:
        child.send_signal(signal.SIGKILL)  # before the server has answered
        child.wait()
    assert row(key).status == "sending"

    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(inbox_port()))
    get_settings.cache_clear()
    assert resend_failed() == [], "its sender may still be at it: left alone"
    later = utcnow() + CLAIM_LEASE + dt.timedelta(seconds=1)
    assert resend_failed(now=later) == [key]
    assert resend_failed(now=later) == []
    [message] = sent_with(inbox, key)
    assert message["Message-ID"] == message_id_for(key, get_settings())
    assert row(key).status == "sent" and row(key).attempts == 1, "handed to SMTP and answered once"


def test_the_same_flow_run_recovered_in_a_new_process_sends_its_email_in_flight_at_once(
    slow_inbox: SlowInbox, inbox: Inbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import uuid

    from tasks.mailer import resend_failed

    key = queued(f"{backend(database_url)}/in-flight-of-a-run")
    run = str(uuid.uuid4())
    child = subprocess.Popen(
        [sys.executable, "-c", f"from tasks.mailer import send_outbox; send_outbox([{key!r}])"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT__FLOW_RUN_ID": run},
    )
    try:
        assert slow_inbox.receiving.wait(60), "the email never reached the mail server"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert row(key).status == "sending" and str(row(key).claimed_by).startswith(f"{run}/")

    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(inbox_port()))
    get_settings.cache_clear()
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(uuid.uuid4()))
    assert resend_failed() == [], "another flow run leaves it to its sender's lease"
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", run)
    assert resend_failed() == [key], "the same run, recovered, sends it without waiting"
    assert resend_failed() == []
    [message] = sent_with(inbox, key)
    assert message["Message-ID"] == message_id_for(key, get_settings())
    assert row(key).status == "sent" and row(key).attempts == 1


def test_each_email_is_marked_sent_before_the_next_one_goes(
    mark_checking_inbox: MarkCheckingInbox, database_url: str
) -> None:
    from tasks.mailer import send_outbox

    keys = [queued(f"{backend(database_url)}/in-order/{n}") for n in range(30)]
    assert send_outbox(keys) == keys
    assert len(mark_checking_inbox.messages) == 30
    assert len(mark_checking_inbox.unmarked_before) == 29
    assert all(not unmarked for _to, unmarked in mark_checking_inbox.unmarked_before), [
        entry for entry in mark_checking_inbox.unmarked_before if entry[1]
    ]
    assert {row(key).status for key in keys} == {"sent"}

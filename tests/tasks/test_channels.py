"""An email's notice in the recipient's messaging app: posted once under the email's key,
with the email's own words and link, retried like the email when the service is down.

The messaging service is outside Dealflow: a local HTTP server stands in for it, named
by an Apprise ``json://`` URL in the matrix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import link_keys, verify
from dealflow.infra.records import get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from harness.mail import LINK, link_in, text_of
from models import keys
from models.settings import PROJECT_ROOT, get_settings
from models.tables import SentMessage
from tasks.approvals import plan_approvals, request_approval
from tasks.mailer import resend_failed
from tests.conftest import Inbox
from tests.messaging_service import Service, running_service

MATRIX = PROJECT_ROOT / "config" / "matrix.yaml"


@pytest.fixture
def service() -> Iterator[Service]:
    with running_service() as running:
        yield running


def matrix_with_channels(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    people: dict[str, str] | None = None,
    teams: dict[str, str] | None = None,
) -> None:
    """The default matrix with these people's and teams' channels, in force."""
    data = yaml.safe_load(MATRIX.read_text())
    for person in data["people"]:
        if person["id"] in (people or {}):
            person["channel"] = (people or {})[person["id"]]
    for name, channel in (teams or {}).items():
        data["teams"][name]["channel"] = channel
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()


def deal_asking_the_manager() -> tuple[str, Any]:
    """An EMEA deal (Acme) whose manager, Mara, is asked to approve it: the deal's id and
    the manager's gate."""
    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    deal_id = f"C{uuid.uuid4().hex[:8].upper()}-ACME"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    with session_scope() as session:
        get_deal(session, deal_id).flow_run_id = str(uuid.uuid4())
    manager = plan_approvals.fn(deal_id)[0]
    assert manager.name == "manager"
    return deal_id, manager


def outbox_row(key: str) -> SentMessage:
    with session_scope() as session:
        found = session.scalar(select(SentMessage).where(SentMessage.key == key))
    assert found is not None, key
    return found


@pytest.mark.usefixtures("database_url")
def test_an_approval_request_is_posted_once_with_the_emails_words_and_working_link(
    inbox: Inbox, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The webhook's secret path is in the environment, not in the matrix file.
    monkeypatch.setenv("DEALFLOW_TEST_HOOK", "hook-secret-4711")
    matrix_with_channels(
        tmp_path, monkeypatch, people={"mara": service.url("${DEALFLOW_TEST_HOOK}")}
    )
    deal_id, manager = deal_asking_the_manager()

    request_approval.fn(deal_id, manager, "run")
    request_approval.fn(deal_id, manager, "run")  # a re-executed flow asks again
    resend_failed()  # and a sweep finds nothing left to send

    mail_key = keys.gate_request_mail(deal_id, "manager")
    [email] = inbox.matching(lambda m: m["X-Dealflow-Key"] == mail_key)
    [notice] = service.posted_to("hook-secret-4711")
    assert len(service.notices) == 1
    assert notice["title"] == str(email["Subject"])
    # The recipient's own email text, in whatever language it was written for them.
    assert notice["message"].splitlines() == text_of(email).splitlines()
    [link] = LINK.findall(notice["message"])
    assert link == link_in(email)
    claim = verify(link.rsplit("/", 1)[1], link_keys(), utcnow())
    assert (claim.deal_id, claim.gate, claim.approver) == (
        deal_id,
        "manager",
        "mara.keller@example.com",
    )

    row = outbox_row(keys.channel_notice(mail_key))
    assert (row.status, row.attempts, row.recipients) == ("sent", 1, ["mara.keller@example.com"])
    assert row.channel is not None and "hook-secret-4711" not in row.channel, "no secret stored"


@pytest.mark.usefixtures("database_url")
def test_a_notice_the_service_did_not_take_is_posted_once_when_it_is_back(
    inbox: Inbox, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix_with_channels(tmp_path, monkeypatch, teams={"emea": service.url("emea-team")})
    deal_id, manager = deal_asking_the_manager()
    service.down = True
    request_approval.fn(deal_id, manager, "run")  # the email goes; the notice cannot

    mail_key = keys.gate_request_mail(deal_id, "manager")
    notice_key = keys.channel_notice(mail_key)
    assert outbox_row(mail_key).status == "sent"
    held = outbox_row(notice_key)
    assert (held.status, held.attempts) == ("retrying", 1)
    assert held.last_error is not None and "503" in held.last_error
    assert service.notices == []

    assert resend_failed() == [], "still down: it waits"
    service.down = False
    assert resend_failed() == [notice_key]
    assert resend_failed() == []
    request_approval.fn(deal_id, manager, "run")
    [notice] = service.posted_to("emea-team")
    assert notice["title"].startswith("Approval needed:")
    assert len(service.notices) == 1
    assert len(inbox.matching(lambda m: m["X-Dealflow-Key"] == mail_key)) == 1
    assert (outbox_row(notice_key).status, outbox_row(notice_key).attempts) == ("sent", 3)
    with session_scope() as session:
        events = [t.event for t in timeline(session, deal_id) if t.key.startswith("mail/")]
    assert events[0].startswith("Notice to mara.keller@example.com in their messaging app held")
    assert events[1].startswith("Messaging-app notice to mara.keller@example.com sent 0 min late")


@pytest.mark.usefixtures("database_url")
def test_notices_go_while_the_mail_server_is_down(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import mailer

    matrix_with_channels(tmp_path, monkeypatch, people={"mara": service.url("mara")})
    deal_id, manager = deal_asking_the_manager()
    monkeypatch.setattr(mailer, "OUTAGE_RETRY_SECONDS", (0.0,))
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")
    get_settings.cache_clear()
    with contextlib.suppress(ConnectionError):
        request_approval.fn(deal_id, manager, "run")
    assert len(service.posted_to("mara")) == 1
    mail_key = keys.gate_request_mail(deal_id, "manager")
    assert outbox_row(mail_key).status == "retrying"
    assert resend_failed(now=utcnow() + dt.timedelta(minutes=1)) == []
    assert len(service.notices) == 1


@pytest.mark.usefixtures("database_url")
def test_an_overdue_digest_of_the_payment_check_is_posted_once(
    inbox: Inbox, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.dunning import apply_dunning_ladder
    from tests.finance_support import invoiced_deal

    matrix_with_channels(tmp_path, monkeypatch, people={"finance": service.url("finance")})
    due = dt.date(2027, 3, 10)
    _deal_id, [number] = invoiced_deal(due)
    seven_days_late = dt.datetime(2027, 3, 17, 9, tzinfo=dt.UTC)
    apply_dunning_ladder.fn(seven_days_late)
    apply_dunning_ladder.fn(seven_days_late)
    resend_failed()
    overdue = [n for n in service.posted_to("finance") if n["title"].startswith("Overdue:")]
    assert len(overdue) == 1
    assert number in overdue[0]["title"] and number in overdue[0]["message"]
    [email] = inbox.matching(
        lambda m: (
            "finance@example.com" in str(m["X-Envelope-To"])
            and str(m["Subject"]) == overdue[0]["title"]
        )
    )
    assert overdue[0]["message"].splitlines() == text_of(email).splitlines()


def test_a_channel_secret_stays_out_of_apprises_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from models.channels import ChannelError
    from tasks.channels import post

    monkeypatch.setenv("DEALFLOW_TEST_ROBOT", "not-a-valid-robot-token-8086")
    with pytest.raises(ChannelError, match="its form is wrong"):
        post("dingtalk://${DEALFLOW_TEST_ROBOT}/", "Title", "Body")
    assert "Token (${DEALFLOW_TEST_ROBOT})" in caplog.text, "Apprise logged the token"
    assert "not-a-valid-robot-token-8086" not in caplog.text


@pytest.mark.usefixtures("database_url")
def test_an_email_queued_before_its_recipient_had_a_channel_gets_no_late_notice(
    inbox: Inbox, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal_id, manager = deal_asking_the_manager()
    request_approval.fn(deal_id, manager, "run")  # sent before the channel was named
    matrix_with_channels(tmp_path, monkeypatch, people={"mara": service.url("mara")})
    request_approval.fn(deal_id, manager, "run")  # the flow re-executed after an upgrade
    resend_failed()
    assert service.notices == []

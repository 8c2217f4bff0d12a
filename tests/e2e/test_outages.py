"""Outages survived on the production path: the mail server, Prefect's server and
Dealflow's database each go away for a while and come back. Nothing is lost, nothing
happens twice, and the people clicking are told to try again, not shown an error."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, timeline
from harness.mail import decide, link_in, to
from harness.runs import run_state, wait_for_state
from tests.conftest import POSTGRES_SERVER, STACK_DATABASES, Inbox, SmtpServer
from tests.faults import describe_deals, repeated_keys, submit_over_http, wait_until
from tests.support import deal_waiting_at_manager, dealflow, fresh_deal, production_path_only

pytestmark = production_path_only()
MANAGER, DIRECTOR = "mara.keller@example.com", "dana.whitfield@example.com"


def timeline_of(deal_id: str) -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(t.key, t.event) for t in timeline(session, deal_id)]


def decision_of(deal_id: str, gate: str) -> str | None:
    with session_scope() as session:
        row = get_approval(session, deal_id, gate)
        return row.decision if row else None


def of_deal(inbox: Inbox, deal_id: str) -> list[Any]:
    return inbox.matching(lambda m: f"deal/{deal_id}/" in str(m["X-Dealflow-Key"]))


def test_mail_server_down_then_back_loses_nothing_and_the_timeline_shows_the_delay(
    stack: Any, inbox: Inbox, smtp_server: SmtpServer
) -> None:
    deal = fresh_deal()
    deal_id = deal["deal_id"]
    smtp_server.stop()
    try:
        run_id = submit_over_http(stack.config.web_url, deal)
        # The deal does not wait for the mail server: it reaches its gate, the request
        # held back in the outbox.
        wait_for_state(run_id, "PAUSED", key="gate-manager")
        held = [event for key, event in timeline_of(deal_id) if key.startswith("mail/")]
        assert len(held) == 1 and held[0].startswith(f"Email to {MANAGER} held back")
        status = dealflow("deal", "status", deal_id).stdout
        assert "held back: the mail server is unavailable" in status
        # A sweep while it is still down keeps the email for later.
        assert "resent" not in dealflow("sla", "sweep").stdout
    finally:
        smtp_server.start()

    swept = dealflow("sla", "sweep").stdout
    assert f"resent deal/{deal_id}/gate/manager/request" in swept
    request = inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    assert decide(link_in(request), "approve", "fine").status_code == 200
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    dealflow("sla", "sweep")

    assert repeated_keys(of_deal(inbox, deal_id)) == {}
    assert [str(m["X-Dealflow-Key"]) for m in of_deal(inbox, deal_id)] == [
        f"deal/{deal_id}/gate/manager/request",
        f"deal/{deal_id}/gate/director/request",
    ]
    late = [event for key, event in timeline_of(deal_id) if key.endswith("/sent-late")]
    assert len(late) == 1 and late[0].startswith(f"Email to {MANAGER} sent ")


def test_prefect_server_down_while_deals_wait_and_an_approver_clicks(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    stack.halt("prefect")
    try:
        page = httpx.get(link, timeout=30)
        assert page.status_code == 200, "the page itself needs only Dealflow's database"
        answer = decide(link, "approve", "while Prefect is down")
        assert answer.status_code == 503, answer.text
        assert "try again in a minute" in answer.text and "Nothing was recorded" in answer.text
        assert decision_of(deal_id, "manager") is None
    finally:
        stack.restart("prefect")
    # The suspended deal survived the restart and takes the decision now.
    assert run_state(run_id)[:2] == ("PAUSED", "gate-manager")
    assert decide(link, "approve", "after the restart").status_code == 200
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    assert repeated_keys(of_deal(inbox, deal_id)) == {}


@pytest.mark.parametrize("kill_after", [0.0, 0.08, 0.25])
def test_prefect_server_killed_in_the_middle_of_a_click_applies_the_decision_once(
    stack: Any, inbox: Inbox, tmp_path: Path, kill_after: float
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    answers: list[httpx.Response | Exception] = []

    def click() -> None:
        try:
            answers.append(decide(link, "approve", "mid-click"))
        except Exception as exc:  # shown in the assertion below
            answers.append(exc)

    clicking = threading.Thread(target=click)
    clicking.start()
    time.sleep(kill_after + random.uniform(0, 0.05))
    stack.halt("prefect", signal.SIGKILL)
    clicking.join(120)
    try:
        [first] = answers
        assert isinstance(first, httpx.Response), first
        assert first.status_code in (200, 503), first.text
    finally:
        stack.restart("prefect")
    if first.status_code == 503:
        assert "try again" in first.text.lower()
        # The approver does as told; the decision lands once, whichever click made it.
        wait_until(
            lambda: _clicked_again(link) in (200, 409),
            120,
            "a second click is taken",
            lambda: describe_deals({deal_id: run_id}),
        )
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id), timeout=180)
    wait_for_state(run_id, "PAUSED", key="gate-director", timeout=120)
    assert decision_of(deal_id, "manager") == "approved"
    keys = Counter(key for key, _event in timeline_of(deal_id))
    assert keys["gate/manager/decided"] == 1
    assert repeated_keys(of_deal(inbox, deal_id)) == {}


def _clicked_again(link: str) -> int:
    try:
        return decide(link, "approve", "second click").status_code
    except httpx.HTTPError:
        return 0


def _dealflow_database(allow: bool) -> None:
    """Open or close Dealflow's database to every connection, as an outage would."""
    name = STACK_DATABASES["dealflow"]
    engine = sa.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {allow}'))
        if not allow:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    engine.dispose()


def test_dealflow_database_briefly_unreachable_tasks_retry_and_nothing_is_half_written(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    from dealflow.infra.db import get_engine

    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    assert decide(link, "approve", "just before the outage").status_code == 200
    _dealflow_database(allow=False)
    try:
        # The run resumes into the outage; the page says to come back.
        page = httpx.get(link, timeout=30)
        assert page.status_code == 503 and "try again" in page.text.lower()
        time.sleep(8)
    finally:
        _dealflow_database(allow=True)
        get_engine().dispose()  # this test process's pool held killed connections
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id), timeout=180)
    wait_for_state(run_id, "PAUSED", key="gate-director", timeout=120)

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    retried = [t.name for t in task_runs if t.run_count > 1]
    assert retried, "the task that met the outage was retried"
    keys = Counter(key for key, _event in timeline_of(deal_id))
    assert max(keys.values()) == 1 and keys["gate/manager/decided"] == 1
    assert keys["gate/director/requested"] == 1
    assert repeated_keys(of_deal(inbox, deal_id)) == {}
    assert decision_of(deal_id, "director") is None
    assert os.environ.get("DEALFLOW_DATABASE_URL", "").endswith(STACK_DATABASES["dealflow"])

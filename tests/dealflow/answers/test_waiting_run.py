"""Answering a waiting run (dealflow/answers/waiting_run.py): its waiting, on runs of
Prefect's server that a test puts where it wants, and its outcomes through the real paths
(the approval page over HTTP, ``dealflow deal accept``, ``dealflow deal report``)."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Crashed, Paused, Running, State
from pydantic import BaseModel
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dealflow.answers.acceptance import accepted_entry
from dealflow.answers.waiting_run import (
    Answered,
    Earlier,
    Outcome,
    Patience,
    Why,
    answer_waiting_run,
)
from dealflow.infra.db import get_engine, session_scope
from dealflow.infra.links import verify
from dealflow.infra.records import add_transition, get_approval, get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from flows.sla_sweep import sla_sweep
from harness.mail import decide, link_in, sign_from_email, to
from harness.runs import wait_for_state
from models.settings import PROJECT_ROOT, get_settings
from models.tables import Deal, StageTransition
from tests.conftest import Inbox
from tests.support import (
    approve_via_email,
    deal_file,
    deal_waiting_at_manager,
    dealflow,
    prefect_http,
    submit,
)
from web.decisions import Verdict
from web.decisions import decide as web_decide

pytestmark = pytest.mark.stack


# The waiting itself, on runs of Prefect's server that stand where a test puts them, and a
# clock the test moves: no wall time is spent waiting.

ANSWER_KEY = "test/answer"


@flow(name="waiting-run-placeholder")
def placeholder() -> None:
    """Never executed: a run of it only holds the state a test gives it."""


class MovedClock:
    """The clock and sleep the waiting uses: each sleep moves the clock on at once, and
    may let something happen meanwhile."""

    def __init__(self, meanwhile: Callable[[int], None] | None = None) -> None:
        self.now, self.sleeps, self.meanwhile = 0.0, 0, meanwhile

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.meanwhile is not None:
            self.meanwhile(self.sleeps)

    def patience(self, seconds: float = 10) -> Patience:
        return Patience(seconds, poll=0.5, clock=lambda: self.now, sleep=self.sleep)


def stored_deal(run_id: str | None) -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    intake = intake.model_copy(update={"deal_id": f"W{uuid.uuid4().hex[:8].upper()}-ACME"})
    store_deal(intake)
    with session_scope() as session:
        get_deal(session, intake.deal_id).flow_run_id = run_id
    return intake.deal_id


def run_in(state: State[Any]) -> str:
    """A flow run of Prefect's server, left in ``state``."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(placeholder)
        client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def note_answer(deal_id: str, actor: str) -> None:
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        add_transition(session, deal, key=ANSWER_KEY, stage=deal.stage, event="x", actor=actor)


def earlier(session: Session, deal: Deal) -> Earlier | None:
    entry = session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal.id, StageTransition.key == ANSWER_KEY
        )
    )
    return Earlier(entry.actor, entry.at, "answered") if entry is not None else None


def never_recorded(_session: Session, _deal: Deal) -> BaseModel:
    raise AssertionError("the run never waited for this answer")


def answer(deal_id: str, clock: MovedClock, run_id: str | None = None) -> Outcome:
    return answer_waiting_run(
        deal_id,
        "gate-manager",
        record=never_recorded,
        earlier=earlier,
        run_id=run_id,
        patience=clock.patience(),
    )


def test_a_run_on_its_way_is_waited_for_until_the_patience_runs_out(stack: Any) -> None:
    deal_id = stored_deal(run_in(Running()))
    clock = MovedClock()
    started = time.monotonic()
    outcome = answer(deal_id, clock)
    assert (outcome.kind, outcome.why, outcome.state) == (
        Answered.TRY_AGAIN,
        Why.ON_ITS_WAY,
        "running",
    )
    assert clock.sleeps == 20 and clock.now == 10, "it looked every half second for 10 s"
    assert time.monotonic() - started < 10, "on the test's clock, not the wall's"


def test_an_answer_recorded_while_the_run_is_on_its_way_is_said_with_who_and_when(
    stack: Any,
) -> None:
    """The second of two answers meets the run resumed by the first: it is told who
    answered and when, not that the run is not waiting or to try again."""
    run_id = run_in(Running())
    deal_id = stored_deal(run_id)
    clock = MovedClock(
        lambda sleeps: note_answer(deal_id, "first@example.com") if sleeps == 2 else None
    )
    outcome = answer(deal_id, clock)
    assert outcome.kind is Answered.ALREADY_ANSWERED and clock.sleeps == 2
    assert outcome.earlier is not None and outcome.earlier.by == "first@example.com"
    with session_scope() as session:
        recorded = earlier(session, get_deal(session, deal_id))
    assert recorded is not None and outcome.earlier.at == recorded.at
    # The same once the run waits for something else, or has ended.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Paused(pause_key="gate-director"), force=True)
    assert answer(deal_id, MovedClock()).kind is Answered.ALREADY_ANSWERED


@pytest.mark.parametrize(
    ("state", "kind", "why", "words"),
    [
        (Crashed(), Answered.TRY_AGAIN, Why.CRASHED, "crashed"),
        (Completed(), Answered.NOT_WAITING, Why.ELSEWHERE, "completed"),
        (Cancelled(), Answered.NOT_WAITING, Why.ELSEWHERE, "cancelled"),
        (Paused(pause_key="gate-director"), Answered.NOT_WAITING, Why.ELSEWHERE, "paused"),
    ],
    ids=["crashed", "completed", "cancelled", "at-another-gate"],
)
def test_a_run_that_will_not_wait_for_the_answer_is_said_so_at_once(
    stack: Any, state: State[Any], kind: Answered, why: Why, words: str
) -> None:
    deal_id = stored_deal(run_in(state))
    clock = MovedClock()
    outcome = answer(deal_id, clock)
    assert (outcome.kind, outcome.why, outcome.state) == (kind, why, words)
    assert outcome.stage == "submitted" and clock.sleeps == 0


def test_an_answer_with_no_run_to_take_it_is_not_found(stack: Any) -> None:
    assert answer(stored_deal(None), MovedClock()).why is Why.NO_RUN
    unknown = stored_deal(str(uuid.uuid4()))
    assert answer(unknown, MovedClock()).why is Why.RUN_GONE
    other = stored_deal(run_in(Running()))
    outcome = answer(other, MovedClock(), run_id=str(uuid.uuid4()))
    assert (outcome.kind, outcome.why) == (Answered.NOT_FOUND, Why.OTHER_RUN)


# The outcomes through the pages and the commands.

GATES = [
    ("manager", "mara.keller@example.com", "Mara Keller"),
    ("director", "dana.whitfield@example.com", "Dana Whitfield"),
    ("legal", "lena.fischer@example.com", "Lena Fischer"),
]
ALREADY = re.compile(r"Already (approved|rejected) by (.+?) at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\.")


def race(link: str, run_id: str, decisions: list[str]) -> list[httpx.Response]:
    """POST every decision of ``decisions`` from the same link at about the same moment
    (released together, each after a random pause of up to a quarter second), and one
    more the moment Prefect shows the run resumed: while the winner's resume is under way
    and its record not yet committed, the loser's hardest moment."""
    start = threading.Barrier(len(decisions) + 1)
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * (
        len(decisions) + 1
    )

    def click(i: int) -> None:
        start.wait()
        try:
            if i == len(decisions):
                with prefect_http() as api:
                    deadline = time.monotonic() + 60
                    while api.get(f"flow_runs/{run_id}").json()["state"]["type"] == "PAUSED":
                        assert time.monotonic() < deadline, "no click resumed the run"
                answers[i] = decide(link, "approve", "the moment it resumed")
                return
            time.sleep(random.uniform(0, 0.25))
            answers[i] = decide(link, decisions[i], f"click {i}")
        except BaseException as exc:  # shown by the assertion below
            answers[i] = exc

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(answers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert len(responses) == len(answers), answers
    return responses


def test_clicks_racing_on_one_gate_decide_it_once_and_every_loser_hears_who_and_when(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Issue #12, item 12: two approvals of the same gate at the same moment. One click
    decides; every other one is told who decided and when, never that the deal is not
    waiting or should be tried again."""
    deals = [deal_file(tmp_path) for _ in range(3)]
    runs = {deal_id: submit(path) for path, deal_id in deals}
    races = 0
    for gate, approver, name in GATES:
        for deal_id, run_id in runs.items():
            link = link_in(inbox.wait_for(to(approver, "Approval needed", deal_id)))
            wait_for_state(run_id, "PAUSED", key=f"gate-{gate}")
            # The last gate also races a rejection against the approvals.
            decisions = ["approve"] * 4 if gate != "legal" else ["approve", "reject"] * 2
            responses = race(link, run_id, decisions)
            races += 1
            said = [(r.status_code, r.text.split("<main", 1)[-1][:400]) for r in responses]
            won = [r for r in responses if r.status_code == 200]
            assert len(won) == 1, said
            assert re.search(r"You (approved|rejected) this deal", won[0].text), said
            with session_scope() as session:
                row = get_approval(session, deal_id, gate)
                assert row is not None and row.decided_at is not None
                decided, at = row.decision, row.decided_at.strftime("%Y-%m-%d %H:%M")
            for lost in responses:
                if lost is won[0]:
                    continue
                assert lost.status_code == 409, said
                found = ALREADY.search(lost.text)
                assert found is not None, said
                assert found.groups() == (decided, name, at), said
        for deal_id, run_id in runs.items():
            if gate == "legal":
                with session_scope() as session:
                    row = get_approval(session, deal_id, "legal")
                    rejected = row is not None and row.decision == "rejected"
                if rejected:
                    wait_for_state(run_id, "CANCELLED")
                else:
                    wait_for_state(run_id, "PAUSED", key="signing")
    assert races == len(GATES) * len(runs)


def test_acceptance_from_the_cli_is_recorded_once_and_the_second_hears_who_and_when(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path, "initech.json")  # manager and legal only
    run_id = submit(path)
    early = dealflow("deal", "accept", deal_id, check=False)
    assert early.returncode == 1
    assert re.search(
        rf"Nothing was recorded: deal {deal_id} is not waiting for acceptance \(it is at "
        r"(submitted|approval:manager)\)",
        early.stderr,
    ), early.stderr
    for approver in ("tom.alvarez@example.com", "lena.fischer@example.com"):
        approve_via_email(inbox, approver, "Approval needed", deal_id, "fine")
    sign_from_email(inbox, "priya.natarajan@example.com", deal_id)
    request = inbox.wait_for(
        lambda m: "Record acceptance" in str(m["Subject"]) and deal_id in str(m["Subject"])
    )
    manager = str(request["To"])  # the delivery manager of the deal's team

    accepted = dealflow(
        "deal", "accept", deal_id, "--note", "Signed protocol", "--report", "scan-0042.pdf"
    )
    assert f"Recorded acceptance of {deal_id} on " in accepted.stdout
    again = dealflow("deal", "accept", deal_id, check=False)
    assert again.returncode == 1
    entry = accepted_entry(deal_id)
    assert entry is not None and entry.actor == manager
    assert "acceptance report scan-0042.pdf: Signed protocol" in entry.event
    assert (
        f"Nothing was recorded: acceptance of {deal_id} was already recorded by "
        f"{manager} at {entry.at:%Y-%m-%d %H:%M} UTC"
    ) in again.stderr
    wait_for_state(run_id, "PAUSED", key="payment")
    with session_scope() as session:
        keys = [t.key for t in timeline(session, deal_id)]
    assert keys.count("accepted") == 1


def test_an_answer_to_a_run_prefect_no_longer_knows_says_so(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    response = prefect_http().delete(f"flow_runs/{run_id}")
    assert response.status_code in {200, 204}, response.text
    clicked = decide(link, "approve", "too late")
    assert clicked.status_code == 409, clicked.text
    assert "workflow run no longer exists. Nothing was recorded" in clicked.text
    accepted = dealflow("deal", "accept", deal_id, check=False)
    assert accepted.returncode == 1
    assert f"the flow run of deal {deal_id} no longer exists; ask operations" in accepted.stderr
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision is None
        asked = row.requested_at
    assert asked is not None
    # The sweep still follows the deal up and publishes its board (no run tags to keep).
    done = sla_sweep(now=asked + dt.timedelta(days=14))
    assert f"{deal_id}/manager: escalation to victor.stone@example.com" in done


def cli(*args: str, wait: float = 60) -> subprocess.Popen[str]:
    """``dealflow`` started as a user starts it, patient with a run on its way."""
    return subprocess.Popen(
        [sys.executable, "-m", "dealflow", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DEALFLOW_RESUME_WAIT_SECONDS": str(wait)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_reports_of_one_stage_at_once_one_moves_the_deal_the_other_hears_who(
    stack: Any, tmp_path: Path
) -> None:
    """Both are given before the run reaches its first stage: both wait for it; one is
    recorded, the other is told who reported the stage and when (it does not answer the
    next stage in its place)."""
    path, deal_id = deal_file(tmp_path, stage="lead_screening")
    run_id = submit(path)
    reports = [cli("deal", "report", deal_id, "--score", score) for score in ("85", "40")]
    done = [(p.wait(120), *p.communicate()) for p in reports]
    recorded = [d for d in done if d[0] == 0]
    assert len(recorded) == 1, done
    assert f"Recorded lead screening of {deal_id}, grade" in recorded[0][1], done
    [refused] = [d for d in done if d[0] != 0]
    assert refused[0] == 1, done
    with session_scope() as session:
        entry = session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal_id,
                StageTransition.key == "stage/lead_screening/reported",
            )
        )
    assert entry is not None
    assert (
        f"Nothing was recorded: lead screening of {deal_id} was already recorded by "
        f"sam.rivera@example.com at {entry.at:%Y-%m-%d %H:%M} UTC"
    ) in refused[2], done
    wait_for_state(run_id, "PAUSED", key="stage-needs-discovery")
    with session_scope() as session:
        assert get_deal(session, deal_id).grade in {"A", "C"}
        keys = [t.key for t in timeline(session, deal_id)]
    assert keys.count("stage/lead_screening/reported") == 1
    assert "stage/needs_discovery/reported" not in keys


def test_a_decision_whose_commit_fails_after_the_resume_is_recorded_all_the_same(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Prefect took the decision, then the database refused the commit: the run goes on
    with it, so it is recorded afresh rather than lost (the flow writes it no more)."""
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    claim = verify(link.rsplit("/", 1)[1], get_settings().signing_key(), dt.datetime.now(dt.UTC))
    engine = get_engine()
    fault = {"armed": False, "failed": 0}

    def armed_by_the_decision(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE APPROVALS") and not fault["failed"]:
            fault["armed"] = True

    def commit_fails_once(_conn: Any) -> None:
        if fault["armed"]:
            fault["armed"], fault["failed"] = False, 1
            raise OperationalError("COMMIT", {}, Exception("the disk went away"))

    event.listen(engine, "after_cursor_execute", armed_by_the_decision)
    event.listen(engine, "commit", commit_fails_once)
    try:
        outcome = web_decide(claim, True, "through a failed commit", get_settings())
    finally:
        event.remove(engine, "after_cursor_execute", armed_by_the_decision)
        event.remove(engine, "commit", commit_fails_once)
    assert fault["failed"] == 1, "the commit after the resume failed"
    assert outcome.verdict is Verdict.DECIDED, outcome
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision == "approved"
        assert row.decided_by == "mara.keller@example.com"
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    with session_scope() as session:
        keys = [t.key for t in timeline(session, deal_id)]
    assert keys.count("gate/manager/decided") == 1

"""Workers SIGKILLed at random points while deals are in flight, on the production path.

Deals go from intake through their approval gates, signing, kickoff, invoices, acceptance,
payment checks that send dunning letters, and payment (six at a time, a new one as
each closes, for as long as the kills go on), driven the way people drive them
(links in the emails, the intake API, payments recorded). Meanwhile a worker, with every
flow-run process it started, is killed again and again and started again. Lost runs are
brought back the product's way (``recover_lost_runs``, which the sla-sweep runs). In the
end every deal is Completed, and every email, invoice and dunning letter exists once.

The kill points, where each killed run stood, go to
``test-output/reliability/kill-points.md`` for bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dealflow.finance.payments import DuplicatePayment, PaymentDetails, record_payment
from dealflow.infra.db import session_scope
from harness.mail import ACCEPTANCE_LINK, LINK, SIGNING_LINK
from harness.runs import run_state
from models.settings import PROJECT_ROOT
from models.tables import Approval, Deal, DunningLetter, Invoice, StageTransition
from tests.conftest import Inbox
from tests.faults import (
    KillPoint,
    LinkAnswers,
    Repeater,
    describe_deals,
    describe_kill,
    flow_processes,
    forked_runs,
    kill_tree,
    repeated_keys,
    submit_over_http,
    wait_until,
    warm_parent_of,
)
from tests.support import fresh_deal, production_path_only, runs_of_deal

pytestmark = production_path_only()

KILLS = int(os.environ.get("DEALFLOW_TEST_KILLS", "50"))
SEED = int(os.environ.get("DEALFLOW_TEST_KILL_SEED", str(int(time.time()))))
REPORT = PROJECT_ROOT / "test-output" / "reliability"
EXAMPLES = ["acme.json", "initech.json", "globex.yaml"]  # 3, 2 and 3 gates; 1, 1, 3 invoices
IN_FLIGHT = 6
WORKERS = ["worker-1", "worker-2"]
# Killed runs come back after DEALFLOW_STALLED_RUN_SECONDS; the kills stop here at the
# latest, so that a slow machine fails with the count rather than a timeout.
KILLING_BUDGET = float(os.environ.get("DEALFLOW_TEST_KILL_MINUTES", "30")) * 60
REQUEST_KEY = re.compile(r"deal/(?P<deal>[^/]+)/gate/(?P<gate>[^/]+)/request$")
ACCEPTANCE_KEY = re.compile(r"deal/(?P<deal>[^/]+)/acceptance/request$")
SIGNING_KEY = re.compile(r"deal/(?P<deal>[^/]+)/signing/request$")


class Driver:
    """Moves every deal on as its people would, whatever the workers are going through."""

    def __init__(self, inbox: Inbox, web_url: str, since: int) -> None:
        self.inbox, self.web_url, self.since = inbox, web_url, since
        self.run_ids: dict[str, str] = {}
        self.invoices_expected: dict[str, int] = {}
        self.deals: set[str] = set()
        self.feeding = threading.Event()  # while set, deals keep coming
        self.done_links: set[str] = set()
        self.paid: set[str] = set()
        # Every third customer pays only once told to (after a payment check six weeks
        # on has written them dunning letters); meanwhile their deals wait at the payment
        # step, idle, and make room for another deal in flight.
        self.slow_payers: set[str] = set()
        self.held: set[str] = set()
        self.slow_payers_pay = threading.Event()
        self.answers: Counter[str] = Counter()
        self.link_answers = LinkAnswers()  # per deal and link, for a failure to show
        self.customers_tag = f"kill test {uuid.uuid4().hex[:6]}"

    def submit(self, example: str) -> None:
        deal = fresh_deal(example)
        # Customers of their own: a collections hold that an earlier test on the shared
        # stack put on "Globex Corporation" would keep the slow payers out of the ladder.
        deal["customer"]["name"] += f" ({self.customers_tag})"
        deal_id = deal["deal_id"]
        self.invoices_expected[deal_id] = len(deal.get("payment_terms", {}).get("schedule", [1]))
        self.run_ids[deal_id] = submit_over_http(self.web_url, deal)
        if len(self.deals) % 3 == 2:  # globex.yaml
            self.slow_payers.add(deal_id)
        self.deals.add(deal_id)

    def keep_deals_in_flight(self) -> None:
        """A new won deal whenever fewer than IN_FLIGHT are open, so that the workers
        always have something to be killed in the middle of."""
        if not self.feeding.is_set():
            return
        with session_scope() as session:
            closed = set(
                session.scalars(
                    select(Deal.id).where(Deal.id.in_(self.deals), Deal.outcome == "paid")
                )
            )
        for _ in range(IN_FLIGHT - len(self.deals - closed - self.held)):
            self.submit(EXAMPLES[len(self.deals) % len(EXAMPLES)])

    def _mail_links(self) -> list[tuple[str, str, str, str]]:
        """(kind, deal id, which link, link) of every link mailed for the deals."""
        found = []
        for message in self.inbox.messages[self.since :]:
            key = str(message["X-Dealflow-Key"])
            for kind, pattern, links in (
                ("approval", REQUEST_KEY, LINK),
                ("signing", SIGNING_KEY, SIGNING_LINK),
                ("acceptance", ACCEPTANCE_KEY, ACCEPTANCE_LINK),
            ):
                match = pattern.fullmatch(key)
                if match and match["deal"] in self.deals:
                    body = message.get_body(("plain",))
                    assert body is not None
                    which = f"{kind} {match.groupdict().get('gate') or ''}".strip()
                    found += [
                        (kind, match["deal"], which, link)
                        for link in links.findall(body.get_content())[:1]
                    ]
        return found

    def act_on_emails(self) -> None:
        for kind, deal_id, which, link in self._mail_links():
            if link in self.done_links:
                continue
            data = {
                "approval": {"decision": "approve", "comment": "ok"},
                "signing": {"signed_by": "Jane Buyer", "document": f"{deal_id}-signed.pdf"},
            }.get(kind, {})
            try:
                response = httpx.post(link, data=data, timeout=60)
            except httpx.HTTPError as exc:
                self.answers[f"{kind}: {type(exc).__name__}"] += 1
                self.link_answers.record(deal_id, which, f"{type(exc).__name__}: {exc}")
                continue
            self.link_answers.response(deal_id, which, response)
            said = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))
            already = response.status_code == 409 and "already" in said.lower()
            self.answers[f"{kind}: {response.status_code}{' already' if already else ''}"] += 1
            if response.status_code == 200 or already:
                self.done_links.add(link)

    def pay_accepted_deals(self) -> None:
        """Pay in full every deal whose customer accepted and whose invoices are all out."""
        with session_scope() as session:
            accepted = set(
                session.scalars(
                    select(StageTransition.deal_id).where(
                        StageTransition.deal_id.in_(self.deals - self.paid),
                        StageTransition.key == "accepted",
                    )
                )
            )
            invoices = session.execute(
                select(Invoice.deal_id, Invoice.number, Invoice.amount).where(
                    Invoice.deal_id.in_(accepted)
                )
            ).all()
        issued = Counter(deal_id for deal_id, _n, _a in invoices)
        ready = {d for d in accepted if issued[d] == self.invoices_expected[d]}
        if not self.slow_payers_pay.is_set():
            self.held |= ready & self.slow_payers
            ready -= self.slow_payers
        for deal_id, number, amount in invoices:
            if deal_id not in ready:
                continue  # the invoices due on acceptance are still on their way, or held
            with contextlib.suppress(DuplicatePayment):
                record_payment(
                    PaymentDetails(number, Decimal(amount), dt.date.today(), f"wire {number}"),
                    source="test",
                    recorded_by="fiona",
                )
        self.paid |= ready

    def step(self) -> None:
        self.keep_deals_in_flight()
        self.act_on_emails()
        self.pay_accepted_deals()

    def explain(self, *repeaters: Repeater) -> str:
        """Every deal not finished, as far as it got and what its links answered; and
        what the repeaters caught: for the message of any wait that fails."""
        held = sorted(self.slow_payers - self.held)
        return (
            f"slow payers not yet invoiced: {held}; held: {sorted(self.held)}; "
            f"paid: {len(self.paid)} of {len(self.deals)}\n"
            + describe_deals(dict(self.run_ids), self.link_answers, list(repeaters))
        )


def letters_written(deal_ids: set[str]) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(DunningLetter)
                .join(Invoice)
                .where(Invoice.deal_id.in_(deal_ids))
            )
            or 0
        )


def run_payment_check(day: int) -> str:
    """A payment check of the deployment, as the daily schedule starts it, ``day`` days on;
    its flow run's id."""
    from prefect.client.orchestration import get_client

    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=day)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("payment-check/payment-check")
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"now": at.isoformat()}, tags=["kill-test"]
        )
    return str(run.id)


def recover() -> None:
    from tasks.recovery import recover_lost_runs

    recover_lost_runs.fn()


def completed(run_ids: dict[str, str]) -> bool:
    return all(run_state(run)[0] == "COMPLETED" for run in list(run_ids.values()))


def flow_runs_of(deployment: str, tag: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
    return [run for run in runs if run.deployment_id == deployment_id]


def write_report(points: list[KillPoint], facts: dict[str, Any]) -> str:
    REPORT.mkdir(parents=True, exist_ok=True)
    by_label = Counter(point.label for point in points)
    lines = [
        f"Seed {SEED}; {len(points)} killed flow processes or idle workers in {facts['kills']} kills.",
        "",
        "| where the killed run stood | kills |",
        "|---|---|",
        *(f"| {label} | {n} |" for label, n in by_label.most_common()),
        "",
        *(f"- {name}: {value}" for name, value in facts.items()),
    ]
    text = "\n".join(lines) + "\n"
    (REPORT / "kill-points.md").write_text(text)
    (REPORT / "kill-points.json").write_text(
        json.dumps({"seed": SEED, "points": [p.__dict__ for p in points], **facts}, indent=1)
    )
    return text


# Half the kills take a worker down with everything it started, as a machine losing power
# would; the others hit one process of the warm path: the launcher the worker started for
# a run, the run the warm parent forked for it, or the warm parent itself.
KILL_TARGETS = ["worker", "worker", "worker", "launcher", "run", "warm parent"]


def kill(stack: Any, worker: str, target: str, rng: random.Random) -> list[KillPoint]:
    """SIGKILL ``target`` on ``worker`` (the whole worker when it runs no such process),
    start again what the kill took down, and say where the killed runs stood."""
    pid = stack.processes[worker].pid
    if target == "warm parent" and (parent := warm_parent_of(pid)) is not None:
        in_flight = len(flow_processes(pid))
        os.kill(parent, signal.SIGKILL)
        return [KillPoint(worker, "", f"{in_flight} runs in flight went on", target)]
    chosen = {"launcher": flow_processes, "run": forked_runs}.get(target, lambda _pid: {})(pid)
    if chosen:
        victim, run = rng.choice(sorted(chosen.items()))
        runs = [run]
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    else:
        target, runs = "worker", sorted(set(flow_processes(pid).values()))
        kill_tree(pid)
        stack.processes[worker].wait(30)
        stack.restart(worker)
    return describe_kill(worker, runs, target)


def busy_workers(stack: Any) -> list[str]:
    """The workers executing a flow run at this moment."""
    return [
        name
        for name in WORKERS
        if stack.processes[name].poll() is None and flow_processes(stack.processes[name].pid)
    ]


@pytest.mark.timeout(3000)
def test_workers_killed_at_random_points_lose_no_deal_and_repeat_no_effect(
    stack: Any, inbox: Inbox
) -> None:
    rng = random.Random(SEED)
    since = len(inbox.messages)
    driver = Driver(inbox, stack.config.web_url, since)
    driver.feeding.set()
    moving = Repeater(driver.step, every=0.5, name="driver")
    recovering = Repeater(recover, every=5, name="recovery")
    repeaters = [moving, recovering]
    moving.start()
    recovering.start()
    # 35 to 55 days on, over and over: never 30 days past the net 45 of Globex, whose
    # deals are the slow payers (every third deal), so that no collections hold takes
    # their invoices out of the ladder before the check six weeks on.
    checks = itertools.cycle(range(1, 6))
    points: list[KillPoint] = []
    kills = 0
    try:
        started = time.monotonic()
        # Until KILLS kills have hit a flow-run process (a kill of an idle worker counts
        # in the report, not towards that), within three times as many kills in all and
        # the time budget; the count is asserted once every deal has been checked.
        while (
            len([p for p in points if p.hit]) < KILLS
            and kills < 3 * KILLS
            and time.monotonic() - started < KILLING_BUDGET
        ):
            # A worker that runs something (either, if neither does for a while), then a
            # random moment into it: imports, tasks, the suspend, the exit.
            wait_until_busy = time.monotonic() + 15
            while not (busy := busy_workers(stack)) and time.monotonic() < wait_until_busy:
                time.sleep(0.1)
            worker = rng.choice(busy or WORKERS)
            # A warm run lasts a second or two: soon into it, or the run is over.
            time.sleep(rng.uniform(0.0, 2.0))
            target = rng.choice(KILL_TARGETS)
            kill_point = kill(stack, worker, target, rng)
            kills += 1
            points += kill_point
            print(
                f"{time.monotonic() - started:5.0f} s: kill {kills} ({worker}, {kill_point[0].label}); "
                f"{len([p for p in points if p.hit])} so far",
                flush=True,
            )
            if kills % 5 == 0:
                # Open invoices a month and more later: dunning letters, level by level.
                run_payment_check(30 + next(checks) * 5)
        killing_took = time.monotonic() - started
        driver.feeding.clear()
        run_ids = driver.run_ids
        # The slow payers' deals reach their payment step; a payment check six weeks on
        # writes their dunning letters (the checks run during the kills may have found
        # none of their invoices out yet); then they pay.
        wait_until(
            lambda: driver.slow_payers <= driver.held,
            900,
            "every slow payer's deal invoiced",
            lambda: driver.explain(*repeaters),
        )
        six_weeks_on = run_payment_check(45)
        wait_until(
            lambda: run_state(six_weeks_on)[0] == "COMPLETED",
            300,
            "the payment check six weeks on Completed",
            lambda: f"{run_state(six_weeks_on)}\n{driver.explain(*repeaters)}",
        )
        driver.slow_payers_pay.set()
        # Finance's daily payment check closes deals whose last payment came while their
        # run was still on its way to waiting for it; here it runs every half minute.
        closing = Repeater(lambda: run_payment_check(0), every=30, name="payment checks")
        closing.start()
        try:
            wait_until(
                lambda: completed(run_ids),
                900,
                "every deal's run Completed",
                lambda: f"answers: {dict(driver.answers)}\n" + driver.explain(*repeaters, closing),
            )
        finally:
            closing.stop()
        # The payment checks started during the kills finish too (recovered if killed).
        wait_until(
            lambda: all(
                r.state and r.state.type.value == "COMPLETED"
                for r in flow_runs_of("payment-check/payment-check", "kill-test")
            ),
            300,
            "every payment check Completed",
            lambda: (
                "payment checks not Completed: "
                + ", ".join(
                    f"{r.name} {r.state and r.state.type.value} {r.id}"
                    for r in flow_runs_of("payment-check/payment-check", "kill-test")
                    if not (r.state and r.state.type.value == "COMPLETED")
                )
                + "\n"
                + driver.explain(*repeaters)
            ),
        )
        total = time.monotonic() - started
    finally:
        moving.stop()
        recovering.stop()
    assert not moving.errors, moving.caught()
    assert not recovering.errors, recovering.caught()

    received = inbox.messages[since:]
    repeated = repeated_keys(received)
    message_ids = Counter(str(m["Message-ID"]) for m in received)
    with session_scope() as session:
        invoices = session.execute(
            select(Invoice.deal_id, func.count())
            .where(Invoice.deal_id.in_(run_ids))
            .group_by(Invoice.deal_id)
        ).all()
        undecided = session.scalar(
            select(func.count())
            .select_from(Approval)
            .where(Approval.deal_id.in_(run_ids), Approval.decision.is_distinct_from("approved"))
        )
        recovered = session.scalar(
            select(func.count())
            .select_from(StageTransition)
            .where(
                StageTransition.deal_id.in_(run_ids), StageTransition.key.like("run/recovered/%")
            )
        )
        half_suspended = session.scalar(
            select(func.count())
            .select_from(StageTransition)
            .where(
                StageTransition.deal_id.in_(run_ids),
                StageTransition.key.like("run/recovered/%"),
                StageTransition.event.like("%died while it suspended%"),
            )
        )
    letters = letters_written(set(run_ids))
    invoice_emails = Counter(
        str(m["X-Dealflow-Key"]).rsplit("/", 1)[1]
        for m in received
        if "/invoice/" in str(m["X-Dealflow-Key"])
    )
    letter_emails = [m for m in received if "dunning" in str(m["X-Dealflow-Key"])]
    hit = [p for p in points if p.hit]
    report = write_report(
        points,
        {
            "kills": kills,
            "flow-run processes or warm parents killed": len(hit),
            "kills by target": dict(Counter(p.target for p in points)),
            "deals": len(run_ids),
            "deals lost (not Completed)": 0,
            "flow runs per deal": sorted({len(runs_of_deal(d)) for d in run_ids}),
            "runs started again after a kill (deal timelines)": recovered,
            "of them, killed between suspending and storing the input schema": half_suspended,
            "emails received": len(received),
            "emails received twice (same Message-ID: a kill between send and record)": len(
                repeated
            ),
            "invoices": sum(n for _d, n in invoices),
            "invoice emails": sum(invoice_emails.values()),
            "dunning letters": letters,
            "dunning emails": len(letter_emails),
            "approval, signing and acceptance answers": dict(driver.answers),
            "seconds killing": round(killing_took),
            "seconds until all completed": round(total),
        },
    )
    print(report)

    assert len(hit) >= KILLS, (
        f"only {len(hit)} of {kills} kills hit a flow-run process or a warm parent in "
        f"{killing_took / 60:.0f} min; {KILLS} were wanted"
    )
    # A process killed after the mail server took an email but before our transaction
    # recorded it sends it again on the re-run, with the same Message-ID (derived from
    # the key), which mail clients show once: the one repeat the design allows, at most
    # once per killed process. Different Message-IDs for one key would be a real double.
    ids_per_key: dict[str, set[str]] = {}
    for m in received:
        ids_per_key.setdefault(str(m["X-Dealflow-Key"]), set()).add(str(m["Message-ID"]))
    assert all(len(ids) == 1 for ids in ids_per_key.values()), "one Message-ID per key"
    assert all(n == 2 for n in repeated.values()) and len(repeated) <= len(hit), repeated
    assert len(message_ids) == len(ids_per_key)
    assert all(len(runs_of_deal(d)) == 1 for d in run_ids), "one flow run per deal"
    assert undecided == 0
    assert dict(invoices) == driver.invoices_expected, "each deal's invoices, once"
    assert all(n == 1 for n in invoice_emails.values()) and set(invoice_emails) == {
        number for number in _invoice_numbers(list(run_ids))
    }
    assert letters and letter_emails, "the payment checks sent dunning letters"


def _invoice_numbers(deal_ids: list[str]) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Invoice.number).where(Invoice.deal_id.in_(deal_ids))))

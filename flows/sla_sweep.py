"""The sla-sweep flow: reminders and escalations for work past its time limit."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from dealflow.infra.clock import utcnow
from flows.outcomes import reported
from flows.run_names import by_minute
from tasks.artifacts import publish_deal_board
from tasks.deadlines import (
    follow_up_archiving,
    follow_up_complaints,
    follow_up_delivery_progress,
    follow_up_overdue_gates,
    follow_up_overdue_stages,
    follow_up_repurchases,
    resend_failed_mail,
)
from tasks.recovery import recover_lost_runs


@flow(name="sla-sweep", flow_run_name=by_minute("sla-sweep"), persist_result=False)
def sla_sweep(now: dt.datetime | None = None) -> list[str]:
    """Send every reminder and escalation due at ``now``: for stages before the contract
    that passed their limit (the rep, then the accountable manager), for open
    approval gates, and for signed contracts administration has yet to archive (a
    reminder on the day it is due, then the matrix's ``archive_escalate_to``), for
    deliveries whose week ended without the rep's progress report (a reminder to the
    rep; two weeks in a row, the matrix's ``progress_escalate_to``), for customer
    complaints (a satisfaction score of 6 or less) not answered by their due time (the
    matrix's ``complaint_escalate_to``, once); and, for deals paid
    the matrix's ``repurchase_after_days`` ago, it asks the sales rep once for a
    repurchase conversation, then reminds them once if it is not recorded.

    Waits: never. Runs on a schedule (every 15 minutes in the local stack and in
    prefect.yaml) or on demand (``dealflow sla sweep``); ``now`` defaults to the current
    time, and a test or a catch-up run passes its own.

    First it schedules again every Dealflow run whose process was lost (a worker killed
    mid-step: Running with no heartbeat for ``DEALFLOW_STALLED_RUN_SECONDS``) or that
    crashed, so that it goes on from its last step; then it sends again any email whose
    send failed before (SMTP down), so nothing recorded as sent to someone is lost.

    Touches: Prefect's runs (lost ones scheduled again), Dealflow's database (deals,
    approvals, timeline, outbox), the boards of
    the deals it acted on (Prefect artifacts) and SMTP (reminders and repurchase requests
    to the rep or the assignee; escalations to the next person in the gate's chain, who gets a
    working approval link; a complaint's escalation). Each level is sent once per gate,
    however often it runs.
    """
    moment = now or utcnow()
    recovered = recover_lost_runs()
    resent = [f"resent {key}" for key in resend_failed_mail()]
    done = [
        *follow_up_overdue_stages(moment),
        *follow_up_overdue_gates(moment),
        *follow_up_archiving(moment),
        *follow_up_delivery_progress(moment),
        *follow_up_repurchases(moment),
        *follow_up_complaints(moment),
    ]
    for deal_id in sorted({follow_up.deal_id for follow_up in done}):
        publish_deal_board(deal_id)  # ops see the new holder and the follow-up
    actions = [*recovered, *resent, *(str(follow_up) for follow_up in done)]
    return reported(actions, "\n".join(actions) or "Nothing is due.")

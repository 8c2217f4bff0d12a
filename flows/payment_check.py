"""The payment-check flow: the dunning ladder, the aging report, and closing paid deals."""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.runtime import flow_run

from dealflow.infra.clock import utcnow
from tasks.aging import compute_aging, publish_payment_check
from tasks.closing import close_paid_deals
from tasks.deadlines import resend_failed_mail
from tasks.dunning import DunningSummary, apply_dunning_ladder


@flow(name="payment-check", persist_result=False)
def payment_check(now: dt.datetime | None = None) -> str:
    """Apply the dunning ladder to every open invoice at ``now``, report the aging of
    receivables, and close deals that are paid but still waiting.

    Waits: never. Runs daily (prefect.yaml, and every day in the local stack) and on
    demand: ``dealflow payments check``, the finance page's button, or ``prefect
    deployment run payment-check/payment-check``. ``now`` defaults to the current time; a
    test or a catch-up run passes its own.

    First it sends any email left queued by an earlier run or sweep (SMTP down, or a
    crash after its letters were claimed), so nothing claimed is lost or sent twice.

    Touches: Dealflow's database (invoices' dunning level, dunning letters, collections
    holds, deals' timelines, outbox), SMTP (letters to customers, escalations to the
    people each level names, the report to finance), the deals' runs (resumed when paid)
    and the keyed artifacts ``aging-report`` (table) and ``payment-check`` (markdown).
    """
    moment = now or utcnow()
    resend_failed_mail()
    summary: DunningSummary = apply_dunning_ladder(moment)
    closing = close_paid_deals()
    today = moment.astimezone(dt.UTC).date()
    aging = compute_aging(today)
    run_key = str(flow_run.id or moment.isoformat())
    publish_payment_check(today, aging, summary, closing, run_key)
    return (
        f"{summary.escalated} escalation(s) ({dict(summary.by_level) or 'none'}), "
        f"{summary.emails_sent} email(s) over {summary.smtp_connections} SMTP connection(s); "
        f"{len(closing)} paid deal(s) resumed"
    )

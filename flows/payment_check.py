"""The payment-check flow: the dunning ladder, the aging report, and closing paid deals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from prefect import flow
from prefect.runtime import flow_run

from dealflow.infra.clock import utcnow
from dealflow.infra.words import Words
from flows.outcomes import reported
from flows.run_names import by_day
from tasks.aging import compute_aging, publish_payment_check
from tasks.closing import close_paid_deals
from tasks.deadlines import resend_failed_mail
from tasks.dunning import DunningPreview, DunningSummary, apply_dunning_ladder


@flow(name="payment-check", flow_run_name=by_day("payment-check"), persist_result=False)
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
    people each level names, the report to finance on a day the check did something),
    the deals' runs (resumed when paid) and the keyed artifacts ``aging-report`` (table)
    and ``payment-check`` (markdown), every time.
    """
    moment = now or utcnow()
    resend_failed_mail()
    summary: DunningSummary = apply_dunning_ladder(moment)
    closing = close_paid_deals()
    today = moment.astimezone(dt.UTC).date()
    aging = compute_aging(today)
    run_key = str(flow_run.id or moment.isoformat())
    mailed = publish_payment_check(today, aging, summary, closing, run_key)
    outcome = what_it_did(today, summary, closing, mailed)
    return reported(outcome, outcome)


def what_it_did(
    today: dt.date, summary: DunningSummary, closing: Sequence[Words | str], mailed: list[str]
) -> str:
    """The check's outcome for a person: what `dealflow payments check` prints."""
    levels = ", ".join(f"{level} {count}" for level, count in summary.by_level.items())
    lines = [
        f"Payment check of {today.isoformat()}:",
        f"  Escalations: {summary.escalated} ({levels})" if levels else "  Escalations: none",
    ]
    if summary.holds:
        lines.append(f"  Put on collections hold: {', '.join(summary.holds)}")
    if summary.unknown_teams:
        teams = ", ".join(sorted(summary.unknown_teams))
        lines.append(f"  Skipped: invoices of teams the matrix does not name ({teams})")
    if summary.emails_queued:
        waiting = summary.emails_queued - summary.emails_sent
        later = f", {waiting} left queued for the next check" if waiting else ""
        lines.append(f"  Dunning emails: {summary.emails_sent} sent{later}")
    lines += [f"  {line}" for line in closing] or ["  Paid deals closed: none"]
    lines.append(
        f"  Report to finance: emailed to {', '.join(mailed)}"
        if mailed
        else "  Report to finance: not emailed (nothing to report); the aging report is the "
        "artifact aging-report"
    )
    return "\n".join(lines)


def what_it_would_do(preview: DunningPreview) -> str:
    """The dunning ladder's outcome at a moment, foreseen: what `dealflow payments check
    --dry-run` prints. Per invoice the level it would reach and who would be told, the
    holds that would be placed, and the totals."""
    at = preview.now.astimezone(dt.UTC)
    lines = [
        f"Dry run of the payment check at {at:%Y-%m-%d %H:%M} UTC: nothing was changed "
        "and no email was sent.",
    ]
    if not preview.levels:
        lines.append("  No invoice would reach a new level.")
    for foreseen in preview.levels:
        escalation = foreseen.escalation
        lines.append(
            f'  {escalation.invoice} ({escalation.customer}) would reach "{escalation.level_title}" '
            f"({escalation.level}): {escalation.overdue}, "
            f"{escalation.balance:,.2f} {escalation.currency} open"
        )
        if foreseen.letter_to:
            lines.append(f"    letter to the customer: {', '.join(foreseen.letter_to)}")
        if foreseen.told:
            people = ", ".join(f"{name} <{email}>" for email, name in foreseen.told)
            lines.append(f"    in the digest to: {people}")
        if escalation.hold:
            lines.append(f"    {escalation.customer} would go on collections hold")
    if preview.holds:
        lines.append(f"  Would be put on collections hold: {', '.join(preview.holds)}")
    if preview.unknown_teams:
        teams = ", ".join(sorted(preview.unknown_teams))
        lines.append(f"  Would be skipped: invoices of teams the matrix does not name ({teams})")
    levels = ", ".join(f"{level} {n}" for level, n in preview.by_level.items())
    lines.append(
        f"In all: {len(preview.levels)} invoice(s) would reach a new level"
        + (f" ({levels})" if levels else "")
        + f"; {preview.letters} letter(s) to customers and {preview.digests} digest(s) "
        f"would be sent; {len(preview.holds)} customer(s) would go on collections hold."
    )
    lines.append(
        "Left out of the dry run: emails still queued by an earlier check, closing paid "
        "deals, the report to finance."
    )
    return "\n".join(lines)

"""What ``dealflow deal status`` tells: stage, who the deal waits on, since when, timeline."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import (
    DealNotFound,
    approvals,
    earlier_revisions,
    get_deal,
    intake_of,
    stored_intake,
    timeline,
)
from dealflow.infra.rendering import money, when
from models.revisions import changed_fields
from models.settings import Settings, get_settings
from models.tables import Deal, Invoice

__all__ = ["DealNotFound", "deal_report", "format_report"]


def deal_report(deal_id: str) -> dict[str, Any]:
    settings = get_settings()
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        invoices = session.scalars(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
        )
        return {
            "deal_id": deal.id,
            "title": deal.title,
            "team": deal.team,
            "customer": deal.customer_name,
            "amount": money(deal.amount, deal.currency),
            "stage": deal.stage,
            "outcome": deal.outcome,
            "outcome_reason": deal.outcome_reason,
            "waiting_on": deal.waiting_on,
            "waiting_on_name": deal.waiting_on_name,
            "waiting_since": deal.waiting_since,
            "flow_run_url": f"{settings.prefect_ui_url}/runs/flow-run/{deal.flow_run_id}"
            if deal.flow_run_id
            else None,
            "matrix_version": deal.matrix_version,
            "revision": deal.revision,
            "revisions": _revisions(session, deal, settings),
            "approvals": [
                {
                    "gate": a.gate,
                    "assignee": a.assignee_email,
                    "assignee_name": a.assignee_name,
                    "requested_at": a.requested_at,
                    "decision": a.decision,
                    "decided_by": a.decided_by,
                    "decided_at": a.decided_at,
                    "comment": a.comment,
                }
                for a in approvals(session, deal_id)
            ],
            "invoices": [
                {
                    "number": i.number,
                    "amount": money(i.amount, i.currency),
                    "issue_date": i.issue_date,
                    "due_date": i.due_date,
                    "status": i.status,
                    "open": money(i.balance, i.currency),
                    "dunning_level": i.dunning_level,
                }
                for i in invoices
            ],
            "timeline": [
                {
                    "at": t.at,
                    "stage": t.stage,
                    "event": t.event,
                    "actor": t.actor,
                    "comment": t.comment,
                }
                for t in timeline(session, deal_id)
            ],
        }


def _revisions(session: Session, deal: Deal, settings: Settings) -> list[dict[str, Any]]:
    """Every revision of the deal, oldest first, the current one last, each with what it
    changed since the one before; empty for a deal never revised."""
    earlier = earlier_revisions(session, deal.id)
    if not earlier:
        return []

    def run_url(run_id: str | None) -> str | None:
        return f"{settings.prefect_ui_url}/runs/flow-run/{run_id}" if run_id else None

    contents = [stored_intake(row.payload) for row in earlier] + [intake_of(deal)]
    changes = [[], *(changed_fields(a, b) for a, b in itertools.pairwise(contents))]
    revisions = [
        {
            "revision": row.revision,
            "amount": money(row.amount, row.currency),
            "submitted_at": row.submitted_at,
            "outcome": row.outcome,
            "outcome_reason": row.outcome_reason,
            "flow_run_url": run_url(row.flow_run_id),
        }
        for row in earlier
    ]
    revisions.append(
        {
            "revision": deal.revision,
            "amount": money(deal.amount, deal.currency),
            "submitted_at": earlier[-1].replaced_at,
            "outcome": deal.outcome,
            "outcome_reason": deal.outcome_reason,
            "flow_run_url": run_url(deal.flow_run_id),
        }
    )
    return [{**r, "changes": c} for r, c in zip(revisions, changes, strict=True)]


def _since(value: Any) -> str:
    elapsed = utcnow() - value
    hours, rest = divmod(int(elapsed.total_seconds()), 3600)
    return f"{when(value)} ({hours}h {rest // 60}m ago)"


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Deal {report['deal_id']}: {report['title']} - {report['customer']}, {report['amount']}",
        f"  Stage:       {report['stage']}"
        + (f" (outcome: {report['outcome']})" if report["outcome"] else ""),
    ]
    if report["waiting_on"]:
        lines.append(
            f"  Waiting on:  {report['waiting_on_name']} <{report['waiting_on']}> since {_since(report['waiting_since'])}"
        )
    if report["outcome_reason"]:
        lines.append(f"  Reason:      {report['outcome_reason']}")
    if report["flow_run_url"]:
        lines.append(f"  Flow run:    {report['flow_run_url']}")
    if report["revisions"]:
        lines.append(
            f"  Revisions:   {len(report['revisions'])} (this is revision {report['revision']})"
        )
        for r in report["revisions"]:
            ended = f", {r['outcome']}" if r["outcome"] else ""
            reason = f": {r['outcome_reason']}" if r["outcome_reason"] else ""
            lines.append(
                f"    r{r['revision']}  {when(r['submitted_at'])}  {r['amount']}{ended}{reason}"
            )
            lines += [f"        changed {change}" for change in r["changes"]]
    if report["approvals"]:
        lines.append("  Approvals:")
        for a in report["approvals"]:
            state = (
                f"{a['decision']} by {a['decided_by']} at {when(a['decided_at'])}"
                if a["decision"]
                else f"asked {when(a['requested_at'])}"
                if a["requested_at"]
                else "not asked (deal closed)"
                if report["outcome"]
                else "not yet asked"
            )
            lines.append(
                f"    {a['gate']:<10} {a['assignee_name']:<20} {state}"
                + (f' "{a["comment"]}"' if a["comment"] else "")
            )
    if report["invoices"]:
        lines.append("  Invoices:")
        lines += [
            f"    {i['number']:<26} {i['amount']:>18}  due {i['due_date']}  {i['status']}"
            + (f", {i['open']} open" if i["status"] == "partially_paid" else "")
            + (f", dunning: {i['dunning_level']}" if i["dunning_level"] else "")
            for i in report["invoices"]
        ]
    lines.append("  Timeline:")
    for t in report["timeline"]:
        comment = f' "{t["comment"]}"' if t["comment"] else ""
        lines.append(f"    {when(t['at'])}  {t['stage']:<18} {t['event']} [{t['actor']}]{comment}")
    return "\n".join(lines)

"""The weekly report as tables of text: the same tables go to the terminal (rich), the
HTML report and email, and the Prefect artifact."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from dealflow.infra.rendering import when
from dealflow.reports.measures import AGING_BUCKETS, Amounts, Summary
from dealflow.reports.pipeline_figures import Board, Figures
from models.matrix import Matrix


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def money(value: Decimal | None, currency: str = "") -> str:
    text = "-" if value is None else f"{value:,.2f}"
    return f"{text} {currency}".strip()


def change(now: float | None, before: float | None, digits: int = 1) -> str:
    if now is None or before is None:
        return "-"
    delta = now - before
    return f"{delta:+,.{digits}f}"


AFTER_APPROVAL = {
    "invoiced": "Invoiced",
    "delivery": "Delivery, awaiting acceptance",
    "accepted": "Accepted",
    "awaiting_payment": "Awaiting payment",
    "closed": "Closed, paid",
}


def stage_title(matrix: Matrix, stage: str) -> str:
    if stage in AFTER_APPROVAL:
        return AFTER_APPROVAL[stage]
    if stage.startswith("approval:"):
        return matrix.gate_title(stage.split(":", 1)[1])
    rule = next((s for s in matrix.stages if s.name == stage), None)
    return rule.title if rule else stage.replace("_", " ").capitalize()


def _per_currency(
    label: str, now: dict[str, Amounts], before: dict[str, Amounts]
) -> Iterable[list[str]]:
    for currency in sorted(set(now) | set(before)):
        a, b = now.get(currency), before.get(currency)
        yield [
            f"{label} ({currency})",
            money(a.amount if a else Decimal(0), currency),
            money(b.amount if b else Decimal(0), currency),
            change(float(a.amount) if a else 0.0, float(b.amount) if b else 0.0, 2),
        ]


def weekly_tables(matrix: Matrix, now: Figures, before: Figures) -> list[Table]:
    summary = [
        [
            "Deals won (entered contract approval)",
            str(now.won),
            str(before.won),
            change(now.won, before.won, 0),
        ],
        [
            "Deals handed off to delivery",
            str(now.handed_off),
            str(before.handed_off),
            change(now.handed_off, before.handed_off, 0),
        ],
        *_per_currency("Won amount", now.won_amounts, before.won_amounts),
        *_per_currency("Invoices issued", now.issued, before.issued),
        *_per_currency("Cash collected", now.collected, before.collected),
        [
            "Invoice-to-cash (DSO), median days",
            number(now.invoice_to_cash.median),
            number(before.invoice_to_cash.median),
            change(now.invoice_to_cash.median, before.invoice_to_cash.median),
        ],
    ]
    for currency in sorted(set(now.collection) | set(before.collection)):
        a, b = now.collection.get(currency), before.collection.get(currency)
        summary.append(
            [
                f"Collection rate ({currency}, of the amount that fell due)",
                percent(a.rate if a else None),
                percent(b.rate if b else None),
                change(
                    a.rate * 100 if a and a.rate is not None else None,
                    b.rate * 100 if b and b.rate is not None else None,
                    0,
                ),
            ]
        )
    before_funnel = dict(before.funnel)
    gates = [g.name for g in matrix.gates] + sorted(set(now.gates) - {g.name for g in matrix.gates})
    before_cycle = dict(before.cycle)
    tables = [
        Table("Summary", ["measure", "this period", "previous period", "change"], summary),
        Table(
            "Stage funnel",
            ["stage", "deals entering", "previous period"],
            [[stage_title(matrix, s), str(n), str(before_funnel.get(s, 0))] for s, n in now.funnel],
        ),
        Table(
            "Conversion per gate",
            ["gate", "decided", "approved", "rejected", "approval rate", "previous period"],
            [
                [
                    matrix.gate_title(gate),
                    str(now.gates[gate].decided) if gate in now.gates else "0",
                    str(now.gates[gate].approved) if gate in now.gates else "0",
                    str(now.gates[gate].rejected) if gate in now.gates else "0",
                    percent(now.gates[gate].approval_rate) if gate in now.gates else "-",
                    percent(before.gates[gate].approval_rate) if gate in before.gates else "-",
                ]
                for gate in gates
            ],
        ),
        Table(
            "Approval turnaround per gate (business hours)",
            ["gate", "median", "p90", "previous median"],
            [
                [
                    matrix.gate_title(gate),
                    number(now.gates[gate].turnaround.median if gate in now.gates else None),
                    number(now.gates[gate].turnaround.p90 if gate in now.gates else None),
                    number(before.gates[gate].turnaround.median if gate in before.gates else None),
                ]
                for gate in gates
            ],
        ),
        Table(
            "Cycle time per stage (days, stays that ended in the period)",
            ["stage", "stays", "median", "p90", "previous median"],
            [
                [
                    stage_title(matrix, stage),
                    str(s.count),
                    number(s.median, 2),
                    number(s.p90, 2),
                    number(before_cycle.get(stage, Summary()).median, 2),
                ]
                for stage, s in now.cycle
            ],
        ),
        Table(
            "On-time rate per responsibility (the matrix's time limits)",
            ["responsibility", "on time", "late", "rate", "previous rate"],
            [
                [
                    who,
                    str(o.on_time),
                    str(o.late),
                    percent(o.rate),
                    percent(before.on_time[who].rate) if who in before.on_time else "-",
                ]
                for who, o in sorted(now.on_time.items())
            ],
            note="Work asked in the period: done within its limit, or done late or still open past it.",
        ),
        Table(
            f"Overdue by bucket (open balances on {now.period.last})",
            ["bucket", "currency", "invoices", "amount", "previous period"],
            [
                [
                    bucket,
                    currency,
                    str(now.overdue[bucket].get(currency, Amounts(0, Decimal(0))).items),
                    money(now.overdue[bucket].get(currency, Amounts(0, Decimal(0))).amount),
                    money(before.overdue[bucket].get(currency, Amounts(0, Decimal(0))).amount),
                ]
                for bucket in AGING_BUCKETS
                for currency in sorted(set(now.overdue[bucket]) | set(before.overdue[bucket]))
            ],
        ),
        Table(
            "Per sales rep",
            ["sales rep", "won", "won amount", "handed off", "rejected", "lost", "previous won"],
            [
                [
                    rep,
                    str(r.won),
                    ", ".join(money(v, c) for c, v in sorted(r.won_amounts.items())) or "-",
                    str(r.handed_off),
                    str(r.rejected),
                    str(r.lost),
                    str(before.reps[rep].won) if rep in before.reps else "0",
                ]
                for rep, r in sorted(now.reps.items())
            ],
        ),
        Table(
            "Per approver",
            [
                "approver",
                "decided",
                "approved",
                "rejected",
                "median h",
                "p90 h",
                "previous decided",
            ],
            [
                [
                    name,
                    str(a.decided),
                    str(a.approved),
                    str(a.rejected),
                    number(a.turnaround.median),
                    number(a.turnaround.p90),
                    str(before.approvers[name].decided) if name in before.approvers else "0",
                ]
                for name, a in sorted(now.approvers.items())
            ],
        ),
    ]
    return tables


# --- the pipeline board ----------------------------------------------------------------


class Link(str):
    """A table cell that links somewhere (markdown renders it as a link)."""

    url: str

    def __new__(cls, text: str, url: str) -> Link:
        cell = super().__new__(cls, text)
        cell.url = url
        return cell


def hours_left(left: float | None) -> str:
    if left is None:
        return "no limit"
    return f"{left:.1f} h left" if left >= 0 else f"{-left:.1f} h overdue"


def board_tables(
    matrix: Matrix, board: Board, page_url: Callable[[str], str], limit: int = 200
) -> dict[str, list[Table]]:
    """The board's artifacts by key: what waits and what is overdue, approvals, cycle
    times, cash. Deal ids link to the deal's page."""
    recent = board.recent
    overdue = [w for w in board.waiting if w.overdue]
    waiting_rows = [
        [
            Link(w.deal_id, page_url(w.deal_id)),
            stage_title(matrix, w.stage),
            w.team,
            w.grade or "-",
            w.waiting_on,
            when(w.since),
            hours_left(w.left_hours),
        ]
        for w in board.waiting[:limit]
    ]
    more = len(board.waiting) - limit
    waits = Table(
        "Waiting deals, most urgent first",
        ["deal", "stage", "team", "tier", "waits on", "since", "time limit (business hours)"],
        waiting_rows,
        note=f"{more} more not shown." if more > 0 else "",
    )
    board_page = [
        Table(
            "Overdue now",
            ["what", "count"],
            [
                ["Gates and stages past their time limit", str(len(overdue))],
                ["Delivery plans not confirmed by their date", str(len(board.late_plans))],
                [
                    "Invoices past due or in the dunning ladder",
                    str(len(board.invoices)),
                ],
            ],
        ),
        Table(
            "Late delivery plans",
            ["deal", "title", "plan due", "days late"],
            [
                [Link(p.deal_id, page_url(p.deal_id)), p.title, str(p.confirm_by), str(p.days_late)]
                for p in board.late_plans[:limit]
            ],
        ),
        Table(
            "Invoices past due or in the dunning ladder",
            ["invoice", "deal", "customer", "balance", "due", "status", "dunning level"],
            [
                [
                    i.number,
                    Link(i.deal_id, page_url(i.deal_id)),
                    i.customer,
                    money(i.balance, i.currency),
                    str(i.due_date),
                    i.status,
                    i.level or "-",
                ]
                for i in board.invoices[:limit]
            ],
        ),
        waits,
        Table(
            "Deals by stage",
            ["stage", "open deals"],
            [[stage_title(matrix, s), str(n)] for s, n in board.open_by_stage]
            + [
                [f"closed: {outcome.replace('_', ' ')}", str(n)]
                for outcome, n in board.closed_by_outcome
            ],
        ),
    ]
    gates = [g.name for g in matrix.gates]
    approvals = [
        Table(
            f"Approvals per gate ({recent.period.label})",
            ["gate", "decided", "approval rate", "rejection rate", "median h", "p90 h"],
            [
                [
                    matrix.gate_title(g),
                    str(recent.gates[g].decided),
                    percent(recent.gates[g].approval_rate),
                    percent(recent.gates[g].rejection_rate),
                    number(recent.gates[g].turnaround.median),
                    number(recent.gates[g].turnaround.p90),
                ]
                for g in gates
                if g in recent.gates
            ],
            note="Turnaround in business hours on the deal team's calendar.",
        ),
        Table(
            "Approvals per approver",
            ["approver", "decided", "approval rate", "median h", "p90 h"],
            [
                [
                    name,
                    str(a.decided),
                    percent(a.approval_rate),
                    number(a.turnaround.median),
                    number(a.turnaround.p90),
                ]
                for name, a in sorted(recent.approvers.items())
            ],
        ),
    ]
    cycle = [
        Table(
            f"Cycle time per stage ({recent.period.label}, days)",
            ["stage", "stays ended", "median", "p90", "open deals there now"],
            [
                [
                    stage_title(matrix, s),
                    str(summary.count),
                    number(summary.median, 2),
                    number(summary.p90, 2),
                    str(dict(board.open_by_stage).get(s, 0)),
                ]
                for s, summary in recent.cycle
            ],
        )
    ]
    cash = [
        Table(
            f"Receivables on {recent.period.last} by days past due",
            ["bucket", "currency", "invoices", "balance"],
            [
                [bucket, currency, str(cell.items), money(cell.amount)]
                for bucket in AGING_BUCKETS
                for currency, cell in sorted(recent.overdue[bucket].items())
            ],
        ),
        Table(
            f"Cash ({recent.period.label})",
            ["measure", "value"],
            [
                ["Invoice-to-cash (DSO), median days", number(recent.invoice_to_cash.median)],
                ["Invoice-to-cash (DSO), mean days", number(recent.invoice_to_cash.mean)],
                *(
                    [f"Collection rate ({c})", percent(col.rate)]
                    for c, col in sorted(recent.collection.items())
                ),
                *(
                    [f"Cash collected ({c})", money(a.amount, c)]
                    for c, a in sorted(recent.collected.items())
                ),
            ],
        ),
    ]
    return {
        "pipeline-board": board_page,
        "pipeline-approvals": approvals,
        "pipeline-cycle-times": cycle,
        "pipeline-cash": cash,
    }

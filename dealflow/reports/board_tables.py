"""The pipeline board's tables, by the key of the Prefect artifact that shows them: what
is overdue and what waits on whom, approvals, cycle times, cash. Deal ids link to the
deal's page."""

from __future__ import annotations

from collections.abc import Callable

from dealflow.infra.rendering import when
from dealflow.reports.board import Board
from dealflow.reports.measures import AGING_BUCKETS
from dealflow.reports.pipeline_figures import Figures
from dealflow.reports.tables import Link, Table, money, number, percent, stage_title
from models.matrix import Matrix

DealLink = Callable[[str], Link]


def hours_left(left: float | None) -> str:
    if left is None:
        return "no limit"
    return f"{left:.1f} h left" if left >= 0 else f"{-left:.1f} h overdue"


def board_tables(
    matrix: Matrix, board: Board, page_url: Callable[[str], str], limit: int = 200
) -> dict[str, list[Table]]:
    """The board's artifacts by key; each list of deals shows its first ``limit``."""

    def link(deal_id: str) -> Link:
        return Link(deal_id, page_url(deal_id))

    return {
        "pipeline-board": _board_page(matrix, board, link, limit),
        "pipeline-approvals": _approvals(matrix, board.recent),
        "pipeline-cycle-times": [_cycle_times(matrix, board)],
        "pipeline-cash": _cash(board.recent),
    }


def _board_page(matrix: Matrix, board: Board, link: DealLink, limit: int) -> list[Table]:
    waits = _waiting(matrix, board, link, limit)
    return [
        _overdue_now(board),
        _late_plans(board, link, limit),
        _late_duties(board, link, limit),
        _chased_invoices(board, link, limit),
        waits,
        _by_stage(matrix, board),
    ]


def _waiting(matrix: Matrix, board: Board, link: DealLink, limit: int) -> Table:
    rows = [
        [
            link(w.deal_id),
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
    return Table(
        "Waiting deals, most urgent first",
        ["deal", "stage", "team", "tier", "waits on", "since", "time limit (business hours)"],
        rows,
        note=f"{more} more not shown." if more > 0 else "",
    )


def _overdue_now(board: Board) -> Table:
    overdue = [w for w in board.waiting if w.overdue]
    return Table(
        "Overdue now",
        ["what", "count"],
        [
            ["Gates and stages past their time limit", str(len(overdue))],
            ["Delivery plans not confirmed by their date", str(len(board.late_plans))],
            ["Duties beside the runs past their day", str(len(board.late_duties))],
            ["Invoices past due or in the dunning ladder", str(len(board.invoices))],
        ],
    )


def _late_plans(board: Board, link: DealLink, limit: int) -> Table:
    return Table(
        "Late delivery plans",
        ["deal", "title", "plan due", "days late"],
        [
            [link(p.deal_id), p.title, str(p.confirm_by), str(p.days_late)]
            for p in board.late_plans[:limit]
        ],
    )


def _late_duties(board: Board, link: DealLink, limit: int) -> Table:
    return Table(
        "Duties past their day",
        ["deal", "title", "duty", "due", "days late"],
        [
            [link(d.deal_id), d.title, d.duty, str(d.due), str(d.days_late)]
            for d in board.late_duties[:limit]
        ],
    )


def _chased_invoices(board: Board, link: DealLink, limit: int) -> Table:
    return Table(
        "Invoices past due or in the dunning ladder",
        ["invoice", "deal", "customer", "balance", "due", "status", "dunning level"],
        [
            [
                i.number,
                link(i.deal_id),
                i.customer,
                money(i.balance, i.currency),
                str(i.due_date),
                i.status,
                i.level or "-",
            ]
            for i in board.invoices[:limit]
        ],
    )


def _by_stage(matrix: Matrix, board: Board) -> Table:
    return Table(
        "Deals by stage",
        ["stage", "open deals"],
        [[stage_title(matrix, s), str(n)] for s, n in board.open_by_stage]
        + [
            [f"closed: {outcome.replace('_', ' ')}", str(n)]
            for outcome, n in board.closed_by_outcome
        ],
    )


def _approvals(matrix: Matrix, recent: Figures) -> list[Table]:
    per_gate = Table(
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
            for g in (gate.name for gate in matrix.gates)
            if g in recent.gates
        ],
        note="Turnaround in business hours on the deal team's calendar.",
    )
    per_approver = Table(
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
    )
    return [per_gate, per_approver]


def _cycle_times(matrix: Matrix, board: Board) -> Table:
    recent = board.recent
    open_now = dict(board.open_by_stage)
    return Table(
        f"Cycle time per stage ({recent.period.label}, days)",
        ["stage", "stays ended", "median", "p90", "open deals there now"],
        [
            [
                stage_title(matrix, s),
                str(summary.count),
                number(summary.median, 2),
                number(summary.p90, 2),
                str(open_now.get(s, 0)),
            ]
            for s, summary in recent.cycle
        ],
    )


def _cash(recent: Figures) -> list[Table]:
    receivables = Table(
        f"Receivables on {recent.period.last} by days past due",
        ["bucket", "currency", "invoices", "balance"],
        [
            [bucket, currency, str(cell.items), money(cell.amount)]
            for bucket in AGING_BUCKETS
            for currency, cell in sorted(recent.overdue[bucket].items())
        ],
    )
    cash = Table(
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
    )
    return [receivables, cash]

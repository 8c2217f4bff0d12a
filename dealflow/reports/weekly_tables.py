"""The weekly report's tables: each measure of the period beside the period before."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from dealflow.infra.rendering import N_
from dealflow.reports.measures import AGING_BUCKETS, Amounts, Summary
from dealflow.reports.pipeline_figures import Figures
from dealflow.reports.tables import Table, change, money, number, percent, stage_title
from models.matrix import Matrix


def weekly_tables(matrix: Matrix, now: Figures, before: Figures) -> list[Table]:
    # The matrix's gates in its order, then gates decided in the period that it dropped.
    gates = [g.name for g in matrix.gates] + sorted(set(now.gates) - {g.name for g in matrix.gates})
    return [
        _summary(now, before),
        _funnel(matrix, now, before),
        _gate_conversion(matrix, gates, now, before),
        _turnaround(matrix, gates, now, before),
        _cycle_times(matrix, now, before),
        _on_time(now, before),
        _overdue(now, before),
        _per_rep(now, before),
        _per_approver(now, before),
    ]


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


def _collection_rates(now: Figures, before: Figures) -> Iterable[list[str]]:
    for currency in sorted(set(now.collection) | set(before.collection)):
        a, b = now.collection.get(currency), before.collection.get(currency)
        yield [
            f"Collection rate ({currency}, of the amount that fell due)",
            percent(a.rate if a else None),
            percent(b.rate if b else None),
            change(
                a.rate * 100 if a and a.rate is not None else None,
                b.rate * 100 if b and b.rate is not None else None,
                0,
            ),
        ]


def mean(scores: list[int]) -> float | None:
    return sum(scores) / len(scores) if scores else None


def _summary(now: Figures, before: Figures) -> Table:
    rows = [
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
        *_collection_rates(now, before),
        [
            "Customer satisfaction, average score (0-10)",
            number(mean(now.satisfaction)),
            number(mean(before.satisfaction)),
            change(mean(now.satisfaction), mean(before.satisfaction)),
        ],
        [
            "Satisfaction surveys answered",
            str(len(now.satisfaction)),
            str(len(before.satisfaction)),
            change(len(now.satisfaction), len(before.satisfaction), 0),
        ],
    ]
    return Table(
        N_("Summary"), [N_("measure"), N_("this period"), N_("previous period"), N_("change")], rows
    )


def _funnel(matrix: Matrix, now: Figures, before: Figures) -> Table:
    before_funnel = dict(before.funnel)
    return Table(
        N_("Stage funnel"),
        [N_("stage"), N_("deals entering"), N_("previous period")],
        [[stage_title(matrix, s), str(n), str(before_funnel.get(s, 0))] for s, n in now.funnel],
    )


def _gate_conversion(matrix: Matrix, gates: list[str], now: Figures, before: Figures) -> Table:
    return Table(
        N_("Conversion per gate"),
        [
            N_("gate"),
            N_("decided"),
            N_("approved"),
            N_("rejected"),
            N_("approval rate"),
            N_("previous period"),
        ],
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
    )


def _turnaround(matrix: Matrix, gates: list[str], now: Figures, before: Figures) -> Table:
    return Table(
        N_("Approval turnaround per gate (business hours)"),
        [N_("gate"), N_("median"), N_("p90"), N_("previous median")],
        [
            [
                matrix.gate_title(gate),
                number(now.gates[gate].turnaround.median if gate in now.gates else None),
                number(now.gates[gate].turnaround.p90 if gate in now.gates else None),
                number(before.gates[gate].turnaround.median if gate in before.gates else None),
            ]
            for gate in gates
        ],
    )


def _cycle_times(matrix: Matrix, now: Figures, before: Figures) -> Table:
    before_cycle = dict(before.cycle)
    return Table(
        N_("Cycle time per stage (days, stays that ended in the period)"),
        [N_("stage"), N_("stays"), N_("median"), N_("p90"), N_("previous median")],
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
    )


def _on_time(now: Figures, before: Figures) -> Table:
    return Table(
        N_("On-time rate per responsibility (the matrix's time limits)"),
        [N_("responsibility"), N_("on time"), N_("late"), N_("rate"), N_("previous rate")],
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
    )


def _overdue(now: Figures, before: Figures) -> Table:
    nothing = Amounts(0, Decimal(0))
    return Table(
        f"Overdue by bucket (open balances on {now.period.last})",
        [N_("bucket"), N_("currency"), N_("invoices"), N_("amount"), N_("previous period")],
        [
            [
                bucket,
                currency,
                str(now.overdue[bucket].get(currency, nothing).items),
                money(now.overdue[bucket].get(currency, nothing).amount),
                money(before.overdue[bucket].get(currency, nothing).amount),
            ]
            for bucket in AGING_BUCKETS
            for currency in sorted(set(now.overdue[bucket]) | set(before.overdue[bucket]))
        ],
    )


def _per_rep(now: Figures, before: Figures) -> Table:
    return Table(
        N_("Per sales rep"),
        [
            N_("sales rep"),
            N_("won"),
            N_("won amount"),
            N_("handed off"),
            N_("rejected"),
            N_("lost"),
            N_("previous won"),
        ],
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
    )


def _per_approver(now: Figures, before: Figures) -> Table:
    return Table(
        N_("Per approver"),
        [
            N_("approver"),
            N_("decided"),
            N_("approved"),
            N_("rejected"),
            N_("median h"),
            N_("p90 h"),
            N_("previous decided"),
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
    )

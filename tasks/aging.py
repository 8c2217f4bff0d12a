"""The aging report: what customers owe, by currency and by how long it is overdue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import case, func, select

from dealflow.infra.db import session_scope
from dealflow.infra.rendering import render, translations, when
from dealflow.infra.words import Words
from models import keys
from models.finance import AGING_BUCKETS
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Invoice, InvoiceStatus
from tasks.dunning import DunningSummary
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver

AgingTable = dict[str, dict[str, Decimal]]  # currency -> bucket -> open balance


@effect_task("compute-aging")
def compute_aging(today: dt.date) -> AgingTable:
    """Open balances (disputed ones included) per currency and aging bucket, in one query."""
    bucket = case(
        (Invoice.due_date >= today, "current"),
        (Invoice.due_date >= today - dt.timedelta(days=30), "1-30"),
        (Invoice.due_date >= today - dt.timedelta(days=60), "31-60"),
        (Invoice.due_date >= today - dt.timedelta(days=90), "61-90"),
        else_="90+",
    )
    with session_scope() as session:
        rows = session.execute(
            select(Invoice.currency, bucket, func.sum(Invoice.amount - Invoice.paid_amount))
            .where(Invoice.status.not_in(InvoiceStatus.SETTLED))
            .group_by(Invoice.currency, bucket)
        ).all()
    table: AgingTable = {}
    for currency, name, balance in rows:
        table.setdefault(currency, dict.fromkeys(AGING_BUCKETS, Decimal(0)))[name] = Decimal(
            balance or 0
        ).quantize(Decimal("0.01"))
    return dict(sorted(table.items()))


def aging_rows(table: AgingTable) -> list[dict[str, str]]:
    return [
        {"currency": currency}
        | {name: f"{amount:,.2f}" for name, amount in buckets.items()}
        | {"total": f"{sum(buckets.values(), Decimal(0)):,.2f}"}
        for currency, buckets in table.items()
    ]


def worth_reporting(summary: DunningSummary, closing: Sequence[Words | str]) -> bool:
    """Whether a payment check did something finance should hear of: an invoice reached a
    new level, a customer went on hold, a paid deal closed, or invoices were skipped."""
    return bool(summary.escalated or summary.holds or closing or summary.unknown_teams)


@effect_task("publish-payment-check")
def publish_payment_check(
    today: dt.date,
    aging: AgingTable,
    summary: DunningSummary,
    closing: Sequence[Words | str],
    run_key: str,
) -> list[str]:
    """The aging table and what the check did, as Prefect artifacts every time; and as an
    email to finance when the check did something (not a daily "0 escalations"), one per
    language its readers read. Whom it emailed."""
    rows = aging_rows(aging)
    create_table_artifact(
        key="aging-report",
        table=rows or [{"currency": "-", **dict.fromkeys(AGING_BUCKETS, "0.00"), "total": "0.00"}],
        description=f"Open receivables by days overdue on {today.isoformat()}.",
    )
    context = {"today": today, "rows": rows, "summary": summary, "closing": list(closing)}
    create_markdown_artifact(
        key="payment-check",
        markdown=render("artifacts/payment_check.md", **context),
        description=f"What the payment check of {today.isoformat()} did.",
    )
    if not worth_reporting(summary, closing):
        return []
    return mail_payment_check(today, context, summary, closing, run_key)


def mail_payment_check(
    today: dt.date,
    context: dict[str, object],
    summary: DunningSummary,
    closing: Sequence[Words | str],
    run_key: str,
) -> list[str]:
    """The payment check's email to finance, one per language its readers read; whom it
    emailed."""
    matrix = load_matrix(get_settings().matrix_path)
    people = {
        p.email: p
        for team in matrix.teams
        for p in matrix.people_for(matrix.handoff.finance_role, team)
    }
    finance = sorted(people)
    readers: dict[str, list[str]] = {}
    for email in finance:
        readers.setdefault(matrix.reader_language(people[email]), []).append(email)
    for language, recipients in sorted(readers.items()):
        subject = translations(language).ngettext(
            "Payment check %(date)s: %(num)s escalation",
            "Payment check %(date)s: %(num)s escalations",
            summary.escalated,
        ) % {"date": when(today, language), "num": summary.escalated}
        deliver(
            OutgoingEmail(
                key=keys.payment_check_mail(run_key, language),
                kind="aging-report",
                deal_id=None,
                to=recipients,
                subject=subject,
                template="aging_report",
                context=context | {"closing": [_written(line, language) for line in closing]},
                language=language,
            )
        )
    return finance


def _written(line: Words | str, language: str) -> str:
    return line.in_language(language) if isinstance(line, Words) else line

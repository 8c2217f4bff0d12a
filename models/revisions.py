"""What a revision of a deal changed: the short list approvers are shown ("What changed
since revision 1") and the deal's timeline records."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from models.deal import DealIntake, LineItem, PaymentTerms


class Revised(NamedTuple):
    """What an approver is shown of a revised deal: this is revision ``current``; what
    changed since revision ``since``, the last one they were asked about (else the one
    before this)."""

    since: int
    current: int
    changes: list[str]


def superseded_message(deal_id: str, revision: int, current: int) -> str:
    """What a run of a replaced revision says as it ends without acting."""
    return (
        f"{deal_id}: revision {revision} was replaced by revision {current}, which has a run "
        "of its own; this run ended without acting"
    )


def _number(value: Decimal) -> str:
    """``120``, ``12.5``, ``310.00`` as written: no exponent, no trailing noise."""
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _item(item: LineItem, currency: str) -> str:
    return f"{item.description} ({_number(item.quantity)} x {_money(item.unit_price, currency)})"


def _line_item_changes(before: DealIntake, after: DealIntake) -> list[str]:
    old = {item.description: item for item in before.line_items}
    new = {item.description: item for item in after.line_items}
    changes = []
    for description, item in old.items():
        if description not in new:
            changes.append(f"line item removed: {_item(item, before.currency)}")
        elif new[description] != item:
            changes.append(
                f"line item changed: {_item(item, before.currency)} -> "
                f"{_item(new[description], after.currency)}"
            )
    changes += [
        f"line item added: {_item(item, after.currency)}"
        for description, item in new.items()
        if description not in old
    ]
    if not changes and before.line_items != after.line_items:
        changes.append("line items: reordered")
    return changes


def _schedule(terms: PaymentTerms) -> str:
    return ", ".join(
        f"{part.label} {_number(part.percent)}% at {part.milestone.value}"
        for part in terms.schedule
    )


def _terms_changes(before: DealIntake, after: DealIntake) -> list[str]:
    old, new = before.payment_terms, after.payment_terms
    changes = []
    if old.net_days != new.net_days:
        changes.append(f"payment terms: net {old.net_days} days -> net {new.net_days} days")
    if old.schedule != new.schedule:
        changes.append(f"payment schedule: {_schedule(old)} -> {_schedule(new)}")
    if before.non_standard_terms != after.non_standard_terms:
        yes_no = {True: "yes", False: "no"}
        changes.append(
            f"non-standard terms: {yes_no[before.non_standard_terms]} -> "
            f"{yes_no[after.non_standard_terms]}"
        )
    return changes


def changed_fields(before: DealIntake, after: DealIntake) -> list[str]:
    """One line per change from ``before`` to ``after``, the money first: amount,
    discount, line items, payment terms, dates, then the rest."""
    changes = []
    if (before.amount, before.currency) != (after.amount, after.currency):
        changes.append(
            f"amount: {_money(before.amount, before.currency)} -> "
            f"{_money(after.amount, after.currency)}"
        )
    if before.discount_percent != after.discount_percent:
        changes.append(
            f"discount: {_number(before.discount_percent)}% -> {_number(after.discount_percent)}%"
        )
    changes += _line_item_changes(before, after)
    changes += _terms_changes(before, after)
    if before.delivery_start != after.delivery_start:
        changes.append(f"delivery start: {before.delivery_start} -> {after.delivery_start}")
    simple = {
        "title": (before.title, after.title),
        "team": (before.team, after.team),
        "customer": (before.customer.name, after.customer.name),
        "sales rep": (before.sales_rep.email, after.sales_rep.email),
    }
    changes += [f"{what}: {old} -> {new}" for what, (old, new) in simple.items() if old != new]
    if before.customer != after.customer and before.customer.name == after.customer.name:
        changes.append("customer contacts or billing contact")
    if before.notes != after.notes:
        changes.append("notes")
    if before.stage != after.stage:
        changes.append(f"stage: {before.stage.value} -> {after.stage.value}")
    return changes

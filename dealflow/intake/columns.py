"""The flat spreadsheet form of a deal: one row per deal, one column per field.

Lists take numbered columns: ``item1_description``, ``item1_quantity``,
``item1_unit_price``, then ``item2_...``; likewise ``installment<N>_label/_percent/
_milestone`` for the payment schedule and ``contact<N>_name/_email/_role/_phone`` for
customer contacts. Blank cells are left out (the model's defaults apply), and a numbered
group with every cell blank is no entry. Problems are named by column, so that a person
fixing the sheet finds the cell.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Loc = tuple[int | str, ...]

SINGLE: dict[str, Loc] = {
    "deal_id": ("deal_id",),
    "title": ("title",),
    "team": ("team",),
    "stage": ("stage",),
    "customer_name": ("customer", "name"),
    "customer_country": ("customer", "country"),
    "customer_language": ("customer", "language"),
    "billing_contact_name": ("customer", "billing_contact", "name"),
    "billing_contact_email": ("customer", "billing_contact", "email"),
    "billing_contact_role": ("customer", "billing_contact", "role"),
    "billing_contact_phone": ("customer", "billing_contact", "phone"),
    "sales_rep_name": ("sales_rep", "name"),
    "sales_rep_email": ("sales_rep", "email"),
    "currency": ("currency",),
    "discount_percent": ("discount_percent",),
    "amount": ("amount",),
    "net_days": ("payment_terms", "net_days"),
    "delivery_start": ("delivery_start",),
    "non_standard_terms": ("non_standard_terms",),
    "notes": ("notes",),
}


@dataclass(frozen=True)
class Repeated:
    prefix: str
    path: Loc
    fields: tuple[str, ...]
    whole: str  # how the list is named when a problem concerns all of it


REPEATED = [
    Repeated("item", ("line_items",), ("description", "quantity", "unit_price"), "item columns"),
    Repeated(
        "installment",
        ("payment_terms", "schedule"),
        ("label", "percent", "milestone"),
        "installment columns",
    ),
    Repeated(
        "contact", ("customer", "contacts"), ("name", "email", "role", "phone"), "contact columns"
    ),
]
REQUIRED = [
    "deal_id",
    "title",
    "team",
    "customer_name",
    "customer_country",
    "billing_contact_name",
    "billing_contact_email",
    "sales_rep_name",
    "sales_rep_email",
    "currency",
    "amount",
    "delivery_start",
    "item1_description",
    "item1_quantity",
    "item1_unit_price",
]
GROUP_NAMES: dict[Loc, str] = {
    **{group.path: group.whole for group in REPEATED},
    ("payment_terms",): "installment columns",
    ("customer",): "customer columns",
    ("customer", "billing_contact"): "billing_contact columns",
    ("sales_rep",): "sales_rep columns",
}
NUMBERED = re.compile(
    r"^(?P<prefix>"
    + "|".join(g.prefix for g in REPEATED)
    + r")(?P<number>[1-9][0-9]{0,2})_(?P<field>[a-z_]+)$"
)


def header_problems(header: list[str]) -> list[str]:
    """What is wrong with a header row: unknown, repeated or missing columns."""
    problems = []
    seen: set[str] = set()
    known = [*SINGLE, *(f"{g.prefix}1_{name}" for g in REPEATED for name in g.fields)]
    for column in header:
        if column in seen:
            problems.append(f"column {column!r} appears twice")
        seen.add(column)
        if column and _place(column) is None:
            close = difflib.get_close_matches(column, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown column {column!r}{hint}")
    problems += [f"missing column {name!r}" for name in REQUIRED if name not in seen]
    return problems


def _place(column: str) -> tuple[Repeated | None, int, str] | None:
    if column in SINGLE:
        return None, 0, column
    match = NUMBERED.match(column)
    if match is None:
        return None
    group = next(g for g in REPEATED if g.prefix == match["prefix"])
    if match["field"] not in group.fields:
        return None
    return group, int(match["number"]), match["field"]


@dataclass
class FlatDeal:
    """One row as the nested data the deal model takes, and which column each field came from."""

    data: dict[str, Any] = field(default_factory=dict)
    columns: dict[Loc, str] = field(default_factory=dict)

    def column_of(self, loc: Loc) -> str:
        """The column (or group of columns) a problem at ``loc`` is about."""
        for length in range(len(loc), 0, -1):
            prefix = tuple(loc[:length])
            if prefix in self.columns:
                return self.columns[prefix]
            if prefix in GROUP_NAMES:
                return GROUP_NAMES[prefix]
        return ".".join(str(part) for part in loc) or "(row)"


def _put(data: dict[str, Any], path: Loc, value: Any) -> None:
    *parents, last = path
    for part in parents:
        data = data.setdefault(str(part), {})
    data[str(last)] = value


def nest(row: Mapping[str, str]) -> FlatDeal:
    """The nested deal of a row of cells keyed by column; blank cells are left out."""
    flat = FlatDeal()
    groups: dict[str, dict[int, dict[str, str]]] = {g.prefix: {} for g in REPEATED}
    for column, raw in row.items():
        value = raw.strip()
        place = _place(column)
        if not value or place is None:
            continue
        group, number, name = place
        if group is None:
            _put(flat.data, SINGLE[name], value)
            flat.columns[SINGLE[name]] = column
        else:
            groups[group.prefix].setdefault(number, {})[name] = value
    for group in REPEATED:
        entries = groups[group.prefix]
        if not entries:
            continue
        _put(flat.data, group.path, [entries[number] for number in sorted(entries)])
        for index, number in enumerate(sorted(entries)):
            for name in group.fields:
                flat.columns[(*group.path, index, name)] = f"{group.prefix}{number}_{name}"
    return flat

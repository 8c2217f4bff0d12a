"""The won deal as sales submits it: the intake model every channel (CLI, file, HTTP) shares."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.language import Language

DealId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{1,62}[A-Za-z0-9]$"),
    Field(description="The CRM's deal id: letters, digits and dashes, e.g. ACME-2026-014."),
]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]


def _one_line(text: str) -> str:
    # Titles and names go into email headers and table cells: no line breaks there.
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise ValueError("must be one line, without line breaks or control characters")
    return text


def iso_4217(currency: str) -> str:
    """``currency`` if it is an ISO 4217 code, else ValueError saying so."""
    import pycountry

    if pycountry.currencies.get(alpha_3=currency) is None:
        raise ValueError(f"{currency} is not an ISO 4217 currency code (e.g. EUR, USD, CNY)")
    return currency


OneLine = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_one_line)]


CENT = Decimal("0.01")
# Validation context of a deal read back from the database: checks added since it was
# stored do not apply to it.
STORED = "stored"

# The most a deal may hold: far above any real deal, low enough that one request cannot
# make Dealflow validate, store and mail megabytes.
MAX_CONTACTS = 50
MAX_LINE_ITEMS = 500
MAX_INSTALLMENTS = 24
MAX_ROLE = 100
MAX_PHONE = 50


def _at_most(limit: int, unit: str) -> Any:
    """A cap on a list's items or a text's characters, checked before the items are
    validated one by one; deals stored before the cap existed are read as they are."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if (info.context or {}).get(STORED) or not isinstance(value, list | str):
            return value
        if len(value) > limit:
            raise ValueError(f"at most {limit} {unit} allowed, got {len(value)}")
        return value

    key = "maxItems" if unit != "characters" else "maxLength"
    return (BeforeValidator(check), Field(json_schema_extra={key: limit}))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Person(Strict):
    name: OneLine
    email: EmailStr


class Contact(Person):
    role: Annotated[str, *_at_most(MAX_ROLE, "characters")] = ""
    phone: Annotated[str, *_at_most(MAX_PHONE, "characters")] = ""


class Customer(Strict):
    name: OneLine
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166 country code, e.g. DE."
    )
    billing_contact: Contact
    contacts: Annotated[list[Contact], *_at_most(MAX_CONTACTS, "contacts")] = Field(
        default_factory=list
    )
    language: Language | None = Field(
        default=None,
        description="The language of invoices and letters to the customer (en, zh_Hans); "
        "none: the deal team's.",
    )


class LineItem(Strict):
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    quantity: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3)]
    unit_price: Annotated[Money, Field(ge=0)]

    @property
    def total(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)


class SubmittedStage(StrEnum):
    """Where a deal stands when it is submitted; the flow starts from there."""

    LEAD_SCREENING = "lead_screening"
    NEEDS_DISCOVERY = "needs_discovery"
    QUOTE = "quote"
    WON = "won"


EARLY_STAGES = [SubmittedStage.LEAD_SCREENING, SubmittedStage.NEEDS_DISCOVERY, SubmittedStage.QUOTE]


class Milestone(StrEnum):
    SIGNING = "signing"
    KICKOFF = "kickoff"
    ACCEPTANCE = "acceptance"


class Installment(Strict):
    label: Annotated[OneLine, StringConstraints(max_length=100)]
    percent: Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)]
    milestone: Milestone = Milestone.SIGNING


def split_by_percent(amount: Decimal, percents: list[Decimal]) -> list[Decimal]:
    """``amount`` in parts of ``percents`` (adding up to 100), exact to the cent: each part
    gets its whole cents, and the cents left over go one each to the parts with the
    largest fractions (the earlier part first on a tie), so the parts add up to
    ``amount`` and none is off by more than a cent."""
    cents = int(amount / CENT)
    exact = [cents * percent / 100 for percent in percents]
    whole = [int(share) for share in exact]
    by_fraction = sorted(range(len(exact)), key=lambda i: (whole[i] - exact[i], i))
    for i in by_fraction[: cents - sum(whole)]:
        whole[i] += 1
    return [Decimal(share) * CENT for share in whole]


class PaymentTerms(Strict):
    net_days: Annotated[int, Field(ge=0, le=365)] = 30
    schedule: Annotated[list[Installment], *_at_most(MAX_INSTALLMENTS, "installments")] = Field(
        default_factory=lambda: [Installment(label="Full amount", percent=Decimal(100))],
        min_length=1,
        description="Invoices to issue; percentages add up to 100.",
    )

    @model_validator(mode="after")
    def _adds_up_to_100(self) -> PaymentTerms:
        total = sum((part.percent for part in self.schedule), Decimal(0))
        if total != 100:
            raise ValueError(f"schedule percentages add up to {total}, not 100")
        return self


class DealIntake(Strict):
    """A won deal, validated field by field before anything is stored or started."""

    deal_id: DealId
    title: OneLine
    team: Annotated[str, StringConstraints(min_length=1, max_length=50)] = Field(
        description="Sales team / region; picks the approvers in the responsibility matrix."
    )
    customer: Customer
    sales_rep: Person
    line_items: Annotated[list[LineItem], *_at_most(MAX_LINE_ITEMS, "line items")] = Field(
        min_length=1
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, e.g. EUR."
    )
    discount_percent: Annotated[Decimal, Field(ge=0, lt=100, decimal_places=2)] = Decimal(0)
    amount: Annotated[Money, Field(gt=0)] = Field(
        description="Contract value after discount; must match the line items."
    )
    payment_terms: PaymentTerms = Field(default_factory=PaymentTerms)
    delivery_start: dt.date = Field(description="Agreed start of delivery.")
    non_standard_terms: bool = False
    stage: SubmittedStage = Field(
        default=SubmittedStage.WON,
        description="Submit a deal early (lead_screening, needs_discovery, quote) to track "
        "those stages too; amounts and items are then the expected ones.",
    )
    notes: Annotated[str, StringConstraints(max_length=4000)] = ""

    @property
    def list_total(self) -> Decimal:
        return sum((item.total for item in self.line_items), Decimal(0))

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, currency: str, info: ValidationInfo) -> str:
        if (info.context or {}).get(STORED):
            return currency  # stored under the rules of its day: read it as it is
        return iso_4217(currency)

    def installment_amounts(self) -> list[Decimal]:
        """Each installment's invoice amount: positive, adding up to ``amount`` exactly."""
        return split_by_percent(self.amount, [part.percent for part in self.payment_terms.schedule])

    @model_validator(mode="after")
    def _splits_into_positive_installments(self, info: ValidationInfo) -> DealIntake:
        if (info.context or {}).get(STORED):
            return self
        amounts = self.installment_amounts()
        if min(amounts) <= 0:
            smallest = amounts.index(min(amounts))
            label = self.payment_terms.schedule[smallest].label
            raise ValueError(
                f"payment_terms.schedule: {self.amount} {self.currency} cannot be split into "
                f"{len(amounts)} installments of at least one cent each ({label!r} "
                f"would be {amounts[smallest]}); use fewer installments"
            )
        return self

    @field_validator("amount")
    @classmethod
    def _amount_matches_line_items(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        items, discount = info.data.get("line_items"), info.data.get("discount_percent")
        if items is None or discount is None:
            return amount  # their own errors are reported; this check needs both
        list_total = sum((item.total for item in items), Decimal(0))
        expected = (list_total * (100 - discount) / 100).quantize(CENT, ROUND_HALF_UP)
        if abs(amount - expected) > CENT:
            raise ValueError(
                f"{amount} does not match the line items: {list_total} "
                f"less {discount}% discount is {expected}"
            )
        return amount

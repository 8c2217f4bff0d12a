"""Routing rules: which approval gates a deal needs, decided by its fields.

Rules are tried in order and the first whose conditions all hold decides; the last rule
has no conditions, so every deal has a route. The rule that fired is recorded on the deal.

Amount thresholds are per currency (``amount_at_least: {EUR: 50000, CNY: 400000}``): the
same number means very different sums in EUR and in CNY. A deal in a currency a rule's
threshold does not name cannot be routed (``UnpricedCurrency``) unless the rule's own
``currencies`` condition leaves the deal out: a large deal must never slip past a
threshold because nobody priced its currency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.deal import DealIntake, iso_4217

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(iso_4217)]
Amounts = dict[Currency, Decimal]
AMOUNT_CONDITIONS = ("amount_at_least", "amount_below")


class UnpricedCurrency(ValueError):
    """A rule's amount threshold names no amount in the deal's currency."""


class Conditions(BaseModel):
    """All given conditions must hold. Amounts are per currency: ``{EUR: 50000, CNY:
    400000}``; a plain number only in a rule limited to one currency
    (``currencies: [EUR]``), which says the currency it means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_at_least: Amounts | None = Field(default=None, description="Per currency.")
    amount_below: Amounts | None = Field(default=None, description="Per currency.")
    discount_above: Decimal | None = Field(default=None, description="Percent.")
    discount_at_most: Decimal | None = Field(default=None, description="Percent.")
    non_standard_terms: bool | None = None
    teams: list[str] | None = None
    currencies: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_amounts(cls, data: Any) -> Any:
        """A plain number is an amount in the rule's one currency; with none named, it is
        refused: its meaning changed when thresholds became per currency."""
        if not isinstance(data, dict):
            return data
        currencies = data.get("currencies")
        for name in AMOUNT_CONDITIONS:
            value = data.get(name)
            if value is None or isinstance(value, dict):
                continue
            if isinstance(currencies, list) and len(currencies) == 1:
                data = {**data, name: {currencies[0]: value}}
            else:
                raise ValueError(
                    f"{name} {value} names no currency: give it per currency "
                    f"({name}: {{EUR: {value}, CNY: ...}}), or limit the rule to one "
                    f"currency (currencies: [EUR])"
                )
        return data

    def amounts(self) -> dict[str, Amounts]:
        """The amount conditions given, by name."""
        given = {name: getattr(self, name) for name in AMOUNT_CONDITIONS}
        return {name: amounts for name, amounts in given.items() if amounts is not None}

    def contradiction(self) -> str | None:
        """Why no deal can meet these conditions, or None."""
        if self.amount_at_least is not None and self.amount_below is not None:
            for currency in sorted(set(self.amount_at_least) & set(self.amount_below)):
                low, high = self.amount_at_least[currency], self.amount_below[currency]
                if low >= high:
                    return (
                        f"amount_at_least {low} {currency} is not below "
                        f"amount_below {high} {currency}"
                    )
        if any(amounts == {} for amounts in self.amounts().values()):
            return "an amount condition without any currency matches nothing"
        if (
            self.discount_above is not None
            and self.discount_at_most is not None
            and self.discount_above >= self.discount_at_most
        ):
            return f"discount_above {self.discount_above} is not below discount_at_most {self.discount_at_most}"
        if self.discount_above is not None and self.discount_above >= 100:
            return "discount_above 100 or more: discounts are below 100%"
        if self.teams == [] or self.currencies == []:
            return "an empty list of teams or currencies matches nothing"
        return None

    def checks(self, deal: DealIntake) -> list[tuple[bool, str]]:
        """Each condition: whether it holds for ``deal``, and why, in words."""
        amount = f"amount {deal.amount} {deal.currency}"
        discount = f"discount {deal.discount_percent}%"
        checks: list[tuple[bool, str]] = []
        left_out = self.currencies is not None and deal.currency not in self.currencies
        for name, amounts in self.amounts().items():
            threshold = amounts.get(deal.currency)
            if threshold is None:
                if left_out:
                    continue  # the currencies condition below says why the rule is out
                raise UnpricedCurrency(
                    f"{name} has amounts for {', '.join(sorted(amounts))} only, none for "
                    f"{deal.currency}"
                )
            if name == "amount_at_least":
                held = deal.amount >= threshold
                words = f"at least {threshold} {deal.currency}"
            else:
                held = deal.amount < threshold
                words = f"below {threshold} {deal.currency}"
            checks.append((held, f"{amount} is {'' if held else 'not '}{words}"))
        if self.discount_above is not None:
            held = deal.discount_percent > self.discount_above
            checks.append(
                (held, f"{discount} is {'' if held else 'not '}above {self.discount_above}%")
            )
        if self.discount_at_most is not None:
            held = deal.discount_percent <= self.discount_at_most
            checks.append(
                (held, f"{discount} is {'' if held else 'not '}at most {self.discount_at_most}%")
            )
        if self.non_standard_terms is not None:
            held = deal.non_standard_terms == self.non_standard_terms
            terms = "non-standard" if deal.non_standard_terms else "standard"
            checks.append((held, f"terms are {terms}"))
        if self.teams is not None:
            held = deal.team in self.teams
            checks.append(
                (
                    held,
                    f"team {deal.team} is {'' if held else 'not '}one of {', '.join(self.teams)}",
                )
            )
        if self.currencies is not None:
            held = deal.currency in self.currencies
            checks.append(
                (
                    held,
                    f"currency {deal.currency} is {'' if held else 'not '}one of {', '.join(self.currencies)}",
                )
            )
        return checks


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = ""
    when: Conditions | None = Field(default=None, description="None: every deal (the last rule).")
    gates: list[str] = Field(min_length=1, description="Gates the deal needs, by name.")

    def verdict(self, deal: DealIntake) -> tuple[bool, str]:
        """Whether the rule fires for ``deal``, and the reason in words."""
        if self.when is None:
            return True, "applies to every deal the rules above did not take"
        checks = self.when.checks(deal)
        failed = [why for held, why in checks if not held]
        if failed:
            return False, "; ".join(failed)
        return True, "; ".join(why for _, why in checks)

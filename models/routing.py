"""Routing rules: which approval gates a deal needs, decided by its fields.

Rules are tried in order and the first whose conditions all hold decides; the last rule
has no conditions, so every deal has a route. The rule that fired is recorded on the deal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.deal import DealIntake

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]


class Conditions(BaseModel):
    """All given conditions must hold. Amounts are in the deal's own currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_at_least: Decimal | None = None
    amount_below: Decimal | None = None
    discount_above: Decimal | None = Field(default=None, description="Percent.")
    discount_at_most: Decimal | None = Field(default=None, description="Percent.")
    non_standard_terms: bool | None = None
    teams: list[str] | None = None
    currencies: list[str] | None = None

    def contradiction(self) -> str | None:
        """Why no deal can meet these conditions, or None."""
        if (
            self.amount_at_least is not None
            and self.amount_below is not None
            and self.amount_at_least >= self.amount_below
        ):
            return f"amount_at_least {self.amount_at_least} is not below amount_below {self.amount_below}"
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
        if self.amount_at_least is not None:
            held = deal.amount >= self.amount_at_least
            checks.append(
                (held, f"{amount} is {'' if held else 'not '}at least {self.amount_at_least}")
            )
        if self.amount_below is not None:
            held = deal.amount < self.amount_below
            checks.append((held, f"{amount} is {'' if held else 'not '}below {self.amount_below}"))
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

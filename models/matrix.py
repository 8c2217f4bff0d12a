"""The responsibility matrix: who approves each gate and who takes over after approval.

It is data (``config/matrix.yaml`` by default), validated on load so that a mistake is
reported with its place in the file instead of surfacing in a running deal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
)

from models.business_time import BusinessCalendar
from models.channels import check_channel
from models.deal import DealIntake
from models.finance import DunningLadder
from models.language import ENGLISH, Language
from models.matrix_checks import cross_check
from models.routing import RoutingRule, UnpricedCurrency

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
# An Apprise URL (dingtalk://, wecombot://, feishu://, slack://, workflows://, ...); may
# hold ${NAME} references to environment variables (models/channels.py).
Channel = Annotated[str, AfterValidator(check_channel)]


class MatrixError(ValueError):
    """The matrix file is wrong, or cannot staff a deal; the message says where."""


class UnroutableCurrency(MatrixError):
    """A routing rule the deal reaches has no amount threshold in the deal's currency."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Team(_Item):
    name: str
    channel: Channel | None = Field(
        default=None, description="Where the team's members also get their notices."
    )
    language: Language = Field(
        default=ENGLISH, description="The language of its people's emails and pages (en, zh_Hans)."
    )
    timezone: str = "UTC"
    country: str | None = Field(default=None, description="Public holidays of this country.")
    subdivision: str | None = None
    working_hours: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d-\d\d:\d\d$")] = (
        "09:00-17:00"
    )
    days_off: list[dt.date] = Field(
        default_factory=list, description="The company's own days off (a bridge day)."
    )
    extra_working_days: list[dt.date] = Field(
        default_factory=list, description="Days the team works that its calendar has off."
    )

    def calendar(self) -> BusinessCalendar:
        opening, closing = (dt.time.fromisoformat(t) for t in self.working_hours.split("-"))
        return BusinessCalendar(
            timezone=self.timezone,
            country=self.country,
            subdivision=self.subdivision,
            day_start=opening,
            day_end=closing,
            days_off=frozenset(self.days_off),
            extra_working_days=frozenset(self.extra_working_days),
        )


class MatrixPerson(_Item):
    id: Name
    name: str
    email: EmailStr
    roles: list[Name] = Field(min_length=1)
    teams: list[str] = Field(default_factory=lambda: ["*"], description='"*" means every team.')
    channel: Channel | None = Field(
        default=None, description="Where this person also gets their notices (before a team's)."
    )
    language: Language | None = Field(
        default=None, description="Their emails' and pages' language; none: the deal team's."
    )


class Gate(_Item):
    name: Name
    title: str
    titles: dict[Language, str] = Field(
        default_factory=dict, description="The title in other languages: {zh_Hans: ...}."
    )
    role: Name
    remind_after_hours: list[float] = Field(
        default_factory=lambda: [8.0, 16.0],
        description="Business hours after the request at which the assignee is reminded.",
    )
    escalate_after_hours: float | None = Field(
        default=24.0, description="Business hours after the request at which it escalates."
    )
    escalate_to: Name | None = Field(default=None, description="Role that takes over then.")

    def title_in(self, language: str) -> str:
        """The title as readers of ``language`` read it (the English one if not given)."""
        return self.titles.get(language, self.title)

    def deadlines(self) -> list[tuple[str, dt.timedelta]]:
        """Each follow-up level with the business time after the request it falls due."""
        levels = [
            (f"reminder-{n}", dt.timedelta(hours=h))
            for n, h in enumerate(self.remind_after_hours, start=1)
        ]
        if self.escalate_after_hours is not None and self.escalate_to:
            levels.append(("escalation", dt.timedelta(hours=self.escalate_after_hours)))
        return levels


class Stage(_Item):
    """One stage of a deal with its RACI roles and time limit (in business time)."""

    name: Name
    title: str
    titles: dict[Language, str] = Field(
        default_factory=dict, description="The title in other languages: {zh_Hans: ...}."
    )
    responsible: list[Name] = Field(min_length=1)
    accountable: list[Name] = Field(min_length=1)
    consulted: list[Name] = Field(default_factory=list)
    informed: list[Name] = Field(default_factory=list)
    limit: str = Field(default="", description="The time limit, in words.")
    limit_business_hours: float | None = Field(default=None, gt=0)
    limit_from: Literal["opened", "visit"] = Field(
        default="opened", description="The limit counts from the stage opening, or the visit."
    )
    on_miss: str = ""

    def title_in(self, language: str) -> str:
        """The title as readers of ``language`` read it (the English one if not given)."""
        return self.titles.get(language, self.title)

    def roles(self) -> list[tuple[str, str]]:
        return [
            (letter, role)
            for letter, roles in (
                ("R", self.responsible),
                ("A", self.accountable),
                ("C", self.consulted),
                ("I", self.informed),
            )
            for role in roles
        ]


class Delegation(_Item):
    """While ``from`` is away, ``to`` acts for them (dates inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_person: Name = Field(alias="from")
    to_person: Name = Field(alias="to")
    start: dt.date
    end: dt.date
    reason: str = ""

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


class Handoff(_Item):
    delivery_role: Name = "delivery_manager"
    finance_role: Name = "finance"
    plan_confirmation_business_days: int = Field(default=5, ge=0)
    archive_role: Name | None = Field(
        default=None,
        description="Who archives the signed contract (told when it is signed); none: no duty.",
    )
    archive_business_days: int = Field(
        default=3, ge=1, description="Business days after signing by which it is archived."
    )
    archive_escalate_to: Name | None = Field(
        default=None, description="Role told when the archiving is overdue."
    )
    repurchase_after_days: int | None = Field(
        default=30,
        ge=1,
        description="Calendar days after a deal is paid when its sales rep is asked for a "
        "repurchase conversation; none: never asked.",
    )
    repurchase_remind_days: int = Field(
        default=7,
        ge=1,
        description="Calendar days after that request when the rep is reminded, once, if "
        "the conversation is not recorded yet.",
    )
    # Delivery progress: the rep's weekly report while delivery runs.
    progress_every_days: int | None = Field(
        default=7,
        ge=1,
        description="Days in a delivery week: the rep reports progress once each, from "
        "kickoff to acceptance; none: no progress duty.",
    )
    progress_escalate_to: Name | None = Field(
        default=None,
        description="Role told (the rep in copy) when two delivery weeks in a row end "
        "without a progress report.",
    )
    # Customer success: told at kickoff, takes the deal over after the acceptance.
    success_role: Name | None = Field(
        default=None,
        description="Who takes the deal over after the customer's acceptance (in copy of "
        "the kickoff; the customer gets a satisfaction survey); none: no such steps.",
    )
    complaint_business_hours: int = Field(
        default=16,
        ge=1,
        description="Business hours (team calendar) within which a complaint (a survey "
        "score of 6 or less) is answered.",
    )
    complaint_escalate_to: Name | None = Field(
        default=None, description="Role told when a complaint is not answered in time."
    )


class Reports(_Item):
    """Who reads the pipeline's reports, and whose calendar their periods follow."""

    timezone: str = Field(default="UTC", description="The company's time zone: report days.")
    weekly_recipients: list[Name] = Field(
        default_factory=list, description="Roles that receive the weekly report by email."
    )


@dataclass(frozen=True)
class Route:
    """A deal's approval route: the rule that chose its gates, and who approves each."""

    rule: RoutingRule
    reason: str
    steps: list[tuple[Gate, MatrixPerson]]

    def describe(self) -> str:
        path = " -> ".join(f"{gate.title} ({person.name})" for gate, person in self.steps)
        return f"rule {self.rule.name!r} ({self.reason}): {path}"


class Matrix(_Item):
    version: str
    roles: dict[Name, str] = Field(description="Role id -> human title.")
    teams: dict[str, Team]
    people: list[MatrixPerson]
    gates: list[Gate] = Field(min_length=1)
    handoff: Handoff = Field(default_factory=Handoff)
    routing: list[RoutingRule] = Field(
        default_factory=list, description="Tried in order; none given: every deal, every gate."
    )
    delegations: list[Delegation] = Field(default_factory=list)
    stages: list[Stage] = Field(default_factory=list, description="The deal's stages, RACI.")
    dunning: DunningLadder = Field(
        default_factory=DunningLadder, description="Overdue-payment follow-up levels."
    )
    reports: Reports = Field(default_factory=Reports)
    fingerprint: str = ""

    def rules(self) -> list[RoutingRule]:
        return self.routing or [RoutingRule(name="all-gates", gates=[g.name for g in self.gates])]

    def choose_rule(self, deal: DealIntake) -> tuple[RoutingRule, str]:
        for index, rule in enumerate(self.rules()):
            try:
                fired, reason = rule.verdict(deal)
            except UnpricedCurrency as exc:
                raise UnroutableCurrency(
                    f"deal {deal.deal_id} is in {deal.currency}, and routing rule "
                    f"routing[{index}] ({rule.name}) of matrix {self.version} has no "
                    f"{deal.currency} threshold: {exc}. Add one to the matrix to route "
                    f"{deal.currency} deals"
                ) from exc
            if fired:
                return rule, reason
        raise MatrixError(f"no routing rule of matrix {self.version} applies to {deal.deal_id}")

    def role_title(self, role: str) -> str:
        return self.roles[role]

    def gate_title(self, name: str, language: str = ENGLISH) -> str:
        """The gate's title in ``language``, or its name for a gate this version of the
        matrix dropped."""
        return next((gate.title_in(language) for gate in self.gates if gate.name == name), name)

    def people_for(self, role: str, team: str) -> list[MatrixPerson]:
        return [p for p in self.people if role in p.roles and ("*" in p.teams or team in p.teams)]

    def first_for(self, role: str, team: str, *, excluding: Collection[str] = ()) -> MatrixPerson:
        for person in self.people_for(role, team):
            if person.email.lower() not in excluding:
                return person
        raise MatrixError(
            f"nobody in the matrix can act as {role} for team {team!r}"
            + (f" other than {', '.join(sorted(excluding))}" if excluding else "")
        )

    def route(self, deal: DealIntake) -> Route:
        """The gates ``deal`` needs and who approves each: four eyes, one gate per person."""
        self.check_team(deal.team)
        rule, reason = self.choose_rule(deal)
        taken = {deal.sales_rep.email.lower()}
        steps = []
        for gate in self.gates:
            if gate.name not in rule.gates:
                continue
            person = self.first_for(gate.role, deal.team, excluding=taken)
            taken.add(person.email.lower())
            steps.append((gate, person))
        return Route(rule=rule, reason=reason, steps=steps)

    @property
    def label(self) -> str:
        return f"{self.version} ({self.fingerprint})" if self.fingerprint else self.version

    def person(self, person_id: str) -> MatrixPerson:
        return next(p for p in self.people if p.id == person_id)

    def acting_for(self, email: str, day: dt.date) -> tuple[MatrixPerson, Delegation] | None:
        """Who acts for the person with ``email`` on ``day``, following a chain of
        delegations to someone who is in; None if they are in themselves."""
        current = next((p for p in self.people if p.email.lower() == email.lower()), None)
        found: tuple[MatrixPerson, Delegation] | None = None
        seen: set[str] = set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            away = next(
                (d for d in self.delegations if d.from_person == current.id and d.covers(day)),
                None,
            )
            if away is None:
                break
            current = self.person(away.to_person)
            found = (current, away)
        return found

    def channel_for(self, email: str, team: str | None) -> str | None:
        """The channel where the person with ``email`` also gets notices: their own, else
        the channel of ``team`` (the team the notice is about) if they name that team,
        else, for a notice about no team, that of the one team they name. None for
        anyone not in the matrix, and for a person whose teams are "*" only."""
        person = next((p for p in self.people if p.email.lower() == email.lower()), None)
        if person is None:
            return None
        if person.channel:
            return person.channel
        named = [name for name in person.teams if name in self.teams]
        if team is None and len(named) == 1:
            team = named[0]
        if team in named:
            return self.teams[team].channel
        return None

    def team_language(self, team: str) -> str:
        """The language of ``team`` (English for a team this matrix does not know)."""
        found = self.teams.get(team)
        return found.language if found else ENGLISH

    def language_of(self, email: str, team: str) -> str:
        """The language of the person with ``email`` on a deal of ``team``: their own if
        the matrix gives one, else the team's."""
        person = next((p for p in self.people if p.email.lower() == email.lower()), None)
        if person is not None and person.language:
            return person.language
        return self.team_language(team)

    def reader_language(self, person: MatrixPerson) -> str:
        """The language of what ``person`` reads beyond one deal (the weekly report):
        their own, else that of the teams they serve if those share one, else English."""
        return self.stated_language(person) or ENGLISH

    def stated_language(self, person: MatrixPerson) -> str | None:
        """``person``'s own language, else that of the teams they serve if those share
        one; None for a person serving every team ("*") who sets none."""
        if person.language:
            return person.language
        teams = {self.team_language(team) for team in person.teams if team != "*"}
        return teams.pop() if len(teams) == 1 and "*" not in person.teams else None

    def customer_language(self, deal: DealIntake) -> str:
        """The language of the letters to ``deal``'s customer: theirs, else the team's."""
        return deal.customer.language or self.team_language(deal.team)

    def archive_due(self, team: str, requested_at: dt.datetime) -> dt.date:
        """The team's day by which a signed contract is to be archived: the handoff's
        business days after the day administration was asked."""
        calendar = self.calendar(team)
        day = requested_at.astimezone(calendar.zone).date()
        return calendar.add_business_days(day, self.handoff.archive_business_days)

    def complaint_due(self, team: str, opened_at: dt.datetime) -> dt.datetime:
        """When a customer's complaint opened at ``opened_at`` is to be answered: the
        handoff's business hours later on the team's calendar."""
        hours = dt.timedelta(hours=self.handoff.complaint_business_hours)
        return self.calendar(team).add_business_hours(opened_at, hours)

    def calendar(self, team: str) -> BusinessCalendar:
        self.check_team(team)
        return self.teams[team].calendar()

    def check_team(self, team: str) -> None:
        if team not in self.teams:
            known = ", ".join(sorted(self.teams))
            raise MatrixError(f"team {team!r} is not in the matrix (known teams: {known})")


class _DatesAsText(yaml.SafeLoader):
    """PyYAML turns 2026-02-30 into a bare ValueError with no place in the file; left as
    text, the date reaches pydantic, which reports it where it stands."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_matrix(text: str, source: str = "<matrix>") -> Matrix:
    """Parse and validate a matrix document; every problem is listed with its place.

    A run reads the matrix in nearly every task, and parsing it is most of a task's CPU:
    the same text is parsed once per process (the matrix is frozen, so it can be shared).
    """
    return _parsed(text, source)


@lru_cache(maxsize=16)
def _parsed(text: str, source: str) -> Matrix:
    try:
        data = yaml.load(text, Loader=_DatesAsText)
    except yaml.YAMLError as exc:
        raise MatrixError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MatrixError(f"{source}: expected a mapping at the top level")
    try:
        matrix = Matrix.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{source}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise MatrixError("\n".join(lines)) from exc
    problems = cross_check(matrix)
    if problems:
        raise MatrixError("\n".join(f"{source}: {p}" for p in problems))
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:12]
    return matrix.model_copy(update={"fingerprint": fingerprint})


def load_matrix(path: Path) -> Matrix:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(f"cannot read the responsibility matrix {path}: {exc.strerror}") from exc
    return parse_matrix(text, str(path))

"""The responsibility matrix: who approves each gate and who takes over after approval.

It is data (``config/matrix.yaml`` by default), validated on load so that a mistake is
reported with its place in the file instead of surfacing in a running deal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError

from models.business_time import BusinessCalendar
from models.deal import DealIntake
from models.finance import CUSTOMER, DunningLadder
from models.routing import RoutingRule

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


SALES_REP = "sales_rep"  # a role the deal names itself: its submitting rep


class MatrixError(ValueError):
    """The matrix file is wrong, or cannot staff a deal; the message says where."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Team(_Item):
    name: str
    timezone: str = "UTC"
    country: str | None = Field(default=None, description="Public holidays of this country.")
    subdivision: str | None = None
    working_hours: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d-\d\d:\d\d$")] = (
        "09:00-17:00"
    )

    def calendar(self) -> BusinessCalendar:
        opening, closing = (dt.time.fromisoformat(t) for t in self.working_hours.split("-"))
        return BusinessCalendar(
            timezone=self.timezone,
            country=self.country,
            subdivision=self.subdivision,
            day_start=opening,
            day_end=closing,
        )


class MatrixPerson(_Item):
    id: Name
    name: str
    email: EmailStr
    roles: list[Name] = Field(min_length=1)
    teams: list[str] = Field(default_factory=lambda: ["*"], description='"*" means every team.')


class Gate(_Item):
    name: Name
    title: str
    role: Name
    remind_after_hours: list[float] = Field(
        default_factory=lambda: [8.0, 16.0],
        description="Business hours after the request at which the assignee is reminded.",
    )
    escalate_after_hours: float | None = Field(
        default=24.0, description="Business hours after the request at which it escalates."
    )
    escalate_to: Name | None = Field(default=None, description="Role that takes over then.")

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
        for rule in self.rules():
            fired, reason = rule.verdict(deal)
            if fired:
                return rule, reason
        raise MatrixError(f"no routing rule of matrix {self.version} applies to {deal.deal_id}")

    def role_title(self, role: str) -> str:
        return self.roles[role]

    def gate_title(self, name: str) -> str:
        """The gate's title, or its name for a gate this version of the matrix dropped."""
        return next((gate.title for gate in self.gates if gate.name == name), name)

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

    def calendar(self, team: str) -> BusinessCalendar:
        self.check_team(team)
        return self.teams[team].calendar()

    def check_team(self, team: str) -> None:
        if team not in self.teams:
            known = ", ".join(sorted(self.teams))
            raise MatrixError(f"team {team!r} is not in the matrix (known teams: {known})")


def _cross_check(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    for key, team in matrix.teams.items():
        try:
            team.calendar().is_business_day(dt.date(2026, 1, 1))
        except Exception as exc:  # zoneinfo, holidays and time parsing each raise their own
            problems.append(f"teams.{key}: invalid calendar: {exc}")
    seen_ids: set[str] = set()
    for index, person in enumerate(matrix.people):
        where = f"people[{index}] ({person.id})"
        if person.id in seen_ids:
            problems.append(f"{where}: duplicate person id")
        seen_ids.add(person.id)
        problems += [
            f"{where}.roles: unknown role {r!r}" for r in person.roles if r not in matrix.roles
        ]
        problems += [
            f"{where}.teams: unknown team {t!r}"
            for t in person.teams
            if t != "*" and t not in matrix.teams
        ]
    needed = [(f"gates[{i}].role", g.role) for i, g in enumerate(matrix.gates)]
    needed += [
        (f"gates[{i}].escalate_to", g.escalate_to)
        for i, g in enumerate(matrix.gates)
        if g.escalate_to
    ]
    for index, gate in enumerate(matrix.gates):
        hours = [after.total_seconds() / 3600 for _, after in gate.deadlines()]
        if hours != sorted(set(hours)) or any(h <= 0 for h in hours):
            problems.append(
                f"gates[{index}] ({gate.name}): reminders and escalation must come in "
                f"increasing order of hours above 0, got {hours}"
            )
    problems += [
        f"stages[{i}] ({stage.name}).{kind}: unknown role {role!r}"
        for i, stage in enumerate(matrix.stages)
        for kind, role in stage.roles()
        if role not in matrix.roles
    ]
    needed += [
        ("handoff.delivery_role", matrix.handoff.delivery_role),
        ("handoff.finance_role", matrix.handoff.finance_role),
    ]
    for index, level in enumerate(matrix.dunning.levels):
        for who in level.notify:
            where = f"dunning.levels[{index}] ({level.name}).notify"
            if who == SALES_REP:
                continue  # the deal's own rep, named on the deal
            if who != CUSTOMER and who not in matrix.roles:
                problems.append(f"{where}: unknown role {who!r} (or '{CUSTOMER}')")
            elif who != CUSTOMER:
                needed.append((where, who))
    for where, role in needed:
        if role not in matrix.roles:
            problems.append(f"{where}: unknown role {role!r}")
            continue
        problems += [
            f"{where}: nobody holds role {role!r} for team {team!r}"
            for team in matrix.teams
            if not matrix.people_for(role, team)
        ]
    problems += _check_reports(matrix)
    problems += _check_routing(matrix)
    problems += _check_delegations(matrix)
    problems += _delegation_loops(matrix)
    gate_names = [g.name for g in matrix.gates]
    problems += [
        f"gates: gate {name!r} is listed twice"
        for name in set(gate_names)
        if gate_names.count(name) > 1
    ]
    return problems


def _check_reports(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    try:
        ZoneInfo(matrix.reports.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        problems.append(f"reports.timezone: unknown time zone {matrix.reports.timezone!r}")
    for index, role in enumerate(matrix.reports.weekly_recipients):
        where = f"reports.weekly_recipients[{index}]"
        if role not in matrix.roles:
            problems.append(f"{where}: unknown role {role!r}")
        elif not any(role in person.roles for person in matrix.people):
            problems.append(f"{where}: nobody holds role {role!r}")
    return problems


def _check_delegations(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    ids = {p.id for p in matrix.people}
    for index, delegation in enumerate(matrix.delegations):
        where = f"delegations[{index}]"
        for field, person in (("from", delegation.from_person), ("to", delegation.to_person)):
            if person not in ids:
                problems.append(f"{where}.{field}: unknown person {person!r}")
        if delegation.from_person == delegation.to_person:
            problems.append(f"{where}: {delegation.from_person} delegates to themselves")
        if delegation.end < delegation.start:
            problems.append(
                f"{where}: ends ({delegation.end}) before it starts ({delegation.start})"
            )
        for other_index, other in enumerate(matrix.delegations[:index]):
            overlaps = other.start <= delegation.end and delegation.start <= other.end
            if overlaps and other.from_person == delegation.from_person:
                problems.append(
                    f"{where}: overlaps delegations[{other_index}] of {delegation.from_person} "
                    f"({other.start} to {other.end})"
                )
    return problems


def _delegation_loops(matrix: Matrix) -> list[str]:
    """Chains of delegations that lead back to where they started on some day."""
    loops: list[str] = []
    seen: set[frozenset[int]] = set()

    def walk(path: list[int], start: dt.date, end: dt.date) -> None:
        last = matrix.delegations[path[-1]]
        for index, step in enumerate(matrix.delegations):
            common = (max(start, step.start), min(end, step.end))
            if step.from_person != last.to_person or common[0] > common[1] or index in path:
                continue
            if step.to_person == matrix.delegations[path[0]].from_person:
                cycle = [*path, index]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    people = [matrix.delegations[i].from_person for i in cycle]
                    loops.append(
                        f"delegations[{cycle[0]}]: delegations go round in a loop "
                        f"({' -> '.join([*people, people[0]])}) from {common[0]} to {common[1]}"
                    )
            else:
                walk([*path, index], *common)

    for index, delegation in enumerate(matrix.delegations):
        walk([index], delegation.start, delegation.end)
    return loops


def _check_routing(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    known = {g.name for g in matrix.gates}
    last = len(matrix.routing) - 1
    for index, rule in enumerate(matrix.routing):
        where = f"routing[{index}] ({rule.name})"
        problems += [f"{where}.gates: unknown gate {g!r}" for g in rule.gates if g not in known]
        if rule.when is None and index < last:
            later = ", ".join(r.name for r in matrix.routing[index + 1 :])
            problems.append(
                f"{where}: has no conditions, so the rules after it never fire: {later}"
            )
        elif rule.when is not None:
            reason = rule.when.contradiction()
            if reason:
                problems.append(f"{where}.when: can never fire: {reason}")
            if index == last:
                problems.append(
                    f"{where}: the last rule must have no conditions, so that every deal has a route"
                )
    return problems


def parse_matrix(text: str, source: str = "<matrix>") -> Matrix:
    """Parse and validate a matrix document; every problem is listed with its place."""
    try:
        data = yaml.safe_load(text)
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
    problems = _cross_check(matrix)
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

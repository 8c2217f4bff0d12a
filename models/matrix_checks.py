"""The responsibility matrix's checks across its sections, once each entry passed its
own validation: every role it names exists and someone holds it in every team, the
calendars and time zones are valid, follow-ups come in order, every routing rule can
fire, and delegations neither overlap nor go round in a loop. Each problem is reported
with its place in the file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.finance import CUSTOMER, SALES_REP

if TYPE_CHECKING:
    from models.matrix import Matrix


def cross_check(matrix: Matrix) -> list[str]:
    return [
        *_check_teams(matrix),
        *_check_people(matrix),
        *_check_gate_deadlines(matrix),
        *_check_stages(matrix),
        *_check_dunning(matrix),
        *_check_role_holders(matrix),
        *_check_reports(matrix),
        *_check_routing(matrix),
        *_check_delegations(matrix),
        *_delegation_loops(matrix),
        *_check_gate_names(matrix),
    ]


def _check_teams(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    for key, team in matrix.teams.items():
        try:
            team.calendar().is_business_day(dt.date(2026, 1, 1))
        except Exception as exc:  # zoneinfo, holidays and time parsing each raise their own
            problems.append(f"teams.{key}: invalid calendar: {exc}")
        for field in ("days_off", "extra_working_days"):
            days: list[dt.date] = getattr(team, field)
            problems += [
                f"teams.{key}.{field}[{index}]: {day} is listed twice"
                for index, day in enumerate(days)
                if day in days[:index]
            ]
        problems += [
            f"teams.{key}: {day} is both in days_off and in extra_working_days"
            for day in sorted(set(team.days_off) & set(team.extra_working_days))
        ]
    return problems


def calendar_warnings(matrix: Matrix, years: Iterable[int] = ()) -> list[str]:
    """What may be wrong with the teams' calendars yet is no error: a team day that
    changes nothing, and a year of ``years`` without the country's published schedule.

    Not errors, because both follow from the data of the ``holidays`` package: an update
    of it may make a listed extra working day one of the country's, and it has a year's
    schedule only once the government published it. A team that lists extra working
    days in a year has entered that year's schedule itself."""
    warnings: list[str] = []
    for key, team in matrix.teams.items():
        try:
            calendar = team.calendar()
        except ValueError:
            continue  # reported by _check_teams
        warnings += [
            f"teams.{key}.days_off[{index}]: {day} is a day off of this calendar already"
            for index, day in enumerate(team.days_off)
            if not calendar.is_public_working_day(day)
        ]
        warnings += [
            f"teams.{key}.extra_working_days[{index}]: {day} is a working day of this "
            "calendar already"
            for index, day in enumerate(team.extra_working_days)
            if calendar.is_public_working_day(day)
        ]
        own_years = {day.year for day in team.extra_working_days}
        for year in sorted(set(years) - own_years):
            reason = calendar.missing_schedule(year)
            if reason:
                warnings.append(f"teams.{key}: {reason}")
    return warnings


def _check_people(matrix: Matrix) -> list[str]:
    problems: list[str] = []
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
    return problems


def _check_gate_deadlines(matrix: Matrix) -> list[str]:
    problems: list[str] = []
    for index, gate in enumerate(matrix.gates):
        hours = [after.total_seconds() / 3600 for _, after in gate.deadlines()]
        if hours != sorted(set(hours)) or any(h <= 0 for h in hours):
            problems.append(
                f"gates[{index}] ({gate.name}): reminders and escalation must come in "
                f"increasing order of hours above 0, got {hours}"
            )
    return problems


def _check_stages(matrix: Matrix) -> list[str]:
    return [
        f"stages[{i}] ({stage.name}).{kind}: unknown role {role!r}"
        for i, stage in enumerate(matrix.stages)
        for kind, role in stage.roles()
        if role not in matrix.roles
    ]


def _dunning_roles(matrix: Matrix) -> list[tuple[str, str]]:
    """Who each dunning level notifies besides the customer and the deal's own rep, with
    where it names them."""
    return [
        (f"dunning.levels[{index}] ({level.name}).notify", who)
        for index, level in enumerate(matrix.dunning.levels)
        for who in level.notify
        if who not in (SALES_REP, CUSTOMER)
    ]


def _check_dunning(matrix: Matrix) -> list[str]:
    return [
        f"{where}: unknown role {who!r} (or '{CUSTOMER}')"
        for where, who in _dunning_roles(matrix)
        if who not in matrix.roles
    ]


def _check_role_holders(matrix: Matrix) -> list[str]:
    """The roles that get work (gates, escalations, the handoff, dunning letters): each
    must exist and be held by someone in every team."""
    needed = [(f"gates[{i}].role", g.role) for i, g in enumerate(matrix.gates)]
    needed += [
        (f"gates[{i}].escalate_to", g.escalate_to)
        for i, g in enumerate(matrix.gates)
        if g.escalate_to
    ]
    needed += [
        ("handoff.delivery_role", matrix.handoff.delivery_role),
        ("handoff.finance_role", matrix.handoff.finance_role),
    ]
    needed += [
        (f"handoff.{field}", role)
        for field in (
            "archive_role",
            "archive_escalate_to",
            "success_role",
            "complaint_escalate_to",
        )
        if (role := getattr(matrix.handoff, field))
    ]
    if matrix.handoff.progress_escalate_to:
        needed.append(("handoff.progress_escalate_to", matrix.handoff.progress_escalate_to))
    # An unknown role in a dunning level is reported by _check_dunning.
    needed += [(where, who) for where, who in _dunning_roles(matrix) if who in matrix.roles]
    problems: list[str] = []
    for where, role in needed:
        if role not in matrix.roles:
            problems.append(f"{where}: unknown role {role!r}")
            continue
        problems += [
            f"{where}: nobody holds role {role!r} for team {team!r}"
            for team in matrix.teams
            if not matrix.people_for(role, team)
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
    problems: list[str] = _check_routing_currencies(matrix)
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


def _check_gate_names(matrix: Matrix) -> list[str]:
    gate_names = [g.name for g in matrix.gates]
    return [
        f"gates: gate {name!r} is listed twice"
        for name in set(gate_names)
        if gate_names.count(name) > 1
    ]


def _check_routing_currencies(matrix: Matrix) -> list[str]:
    """Every amount threshold names every currency any threshold names, unless its rule
    is limited to some currencies (then it names those): a deal in a currency the matrix
    prices is routed by every rule it reaches, never refused by one that forgot it."""
    priced = {
        currency
        for rule in matrix.routing
        if rule.when is not None
        for amounts in rule.when.amounts().values()
        for currency in amounts
    }
    problems: list[str] = []
    for index, rule in enumerate(matrix.routing):
        if rule.when is None:
            continue
        needed = set(rule.when.currencies) if rule.when.currencies is not None else priced
        for name, amounts in rule.when.amounts().items():
            missing = sorted(needed - set(amounts))
            if missing:
                problems.append(
                    f"routing[{index}] ({rule.name}).when.{name}: no amount for "
                    f"{', '.join(missing)}: deals in {', '.join(missing)} reaching this "
                    "rule would be refused"
                )
    return problems

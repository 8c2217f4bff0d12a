"""The matrix in words: ``dealflow matrix show`` and ``dealflow matrix explain``."""

from __future__ import annotations

from dealflow.reports.tables import Table
from models.deal import DealIntake
from models.matrix import Matrix, MatrixError
from models.routing import UnpricedCurrency


def show(matrix: Matrix) -> str:
    lines = [f"Responsibility matrix {matrix.label}", "", "Gates, in order:"]
    lines += [f"  {g.name:<10} {g.title:<28} role {g.role}" for g in matrix.gates]
    lines += ["", "Who holds each role, per team:"]
    roles = sorted(
        {g.role for g in matrix.gates} | {matrix.handoff.delivery_role, matrix.handoff.finance_role}
    )
    width = max(len(matrix.role_title(r)) for r in roles)
    for team_key, team in matrix.teams.items():
        calendar = f"{team.timezone}, {team.working_hours}" + (
            f", holidays {team.country}" if team.country else ""
        )
        calendar += "".join(
            f", {label} {', '.join(day.isoformat() for day in days)}"
            for label, days in (
                ("days off", team.days_off),
                ("extra working days", team.extra_working_days),
            )
            if days
        )
        lines.append(f"  {team_key} ({team.name}; {calendar})")
        for role in roles:
            people = ", ".join(f"{p.name} <{p.email}>" for p in matrix.people_for(role, team_key))
            lines.append(f"    {matrix.role_title(role):<{width}}  {people or '-- nobody --'}")
    lines += _channels(matrix)
    if matrix.stages:
        lines += ["", "Stages (R responsible, A accountable, C consulted, I informed):"]
        for stage in matrix.stages:
            raci = "; ".join(
                f"{letter} {matrix.role_title(role)}"
                if role in matrix.roles
                else f"{letter} {role}"
                for letter, role in stage.roles()
            )
            lines.append(f"  {stage.title}: {raci}" + (f" - {stage.limit}" if stage.limit else ""))
    lines += ["", "Routing rules, first match wins:"]
    for number, rule in enumerate(matrix.rules(), start=1):
        when = (
            ", ".join(
                f"{k}={_words(v)}" for k, v in rule.when.model_dump(exclude_none=True).items()
            )
            if rule.when
            else "every other deal"
        )
        lines.append(f"  {number}. {rule.name}: {when} -> {' -> '.join(rule.gates)}")
        if rule.description:
            lines.append(f"     {rule.description}")
    return "\n".join(lines)


def _channels(matrix: Matrix) -> list[str]:
    """Who has a messaging-app channel, by service only: a URL may hold a token."""
    named = [(f"team {key} ({team.name})", team.channel) for key, team in matrix.teams.items()]
    named += [(f"{person.name} <{person.email}>", person.channel) for person in matrix.people]
    shown = [f"  {who}: {channel.split('://', 1)[0]}" for who, channel in named if channel]
    if not shown:
        return []
    return ["", "Messaging-app channels (a person's own wins over their team's):", *shown]


def _words(value: object) -> str:
    """A condition's value as the matrix file writes it: amounts as ``50000 EUR / ...``."""
    if isinstance(value, dict):
        return " / ".join(f"{amount} {currency}" for currency, amount in value.items())
    return str(value)


def explain(matrix: Matrix, deal: DealIntake) -> str:
    lines = [
        f"Deal {deal.deal_id}: {deal.amount} {deal.currency}, {deal.discount_percent}% discount, "
        f"{'non-standard' if deal.non_standard_terms else 'standard'} terms, team {deal.team}, "
        f"submitted by {deal.sales_rep.email}",
        f"Matrix {matrix.label}",
        "",
        "Routing rules, in order:",
    ]
    chosen = None
    for number, rule in enumerate(matrix.rules(), start=1):
        if chosen is not None:
            lines.append(f"  {number}. {rule.name}: not reached")
            continue
        try:
            fired, reason = rule.verdict(deal)
        except UnpricedCurrency as exc:
            lines.append(f"  {number}. {rule.name}: CANNOT TELL - {exc}")
            break
        if fired:
            chosen = rule
            lines.append(f"  {number}. {rule.name}: FIRES - {reason}")
        else:
            lines.append(f"  {number}. {rule.name}: no - {reason}")
    try:
        route = matrix.route(deal)
    except MatrixError as exc:
        lines += ["", f"The deal cannot be routed: {exc}"]
        return "\n".join(lines)
    skipped = [g.name for g in matrix.gates if g.name not in route.rule.gates]
    lines += ["", "Approvals:"]
    lines += [
        f"  {gate.name:<10} {gate.title:<28} {person.name} <{person.email}>"
        for gate, person in route.steps
    ]
    if skipped:
        lines.append(f"  skipped: {', '.join(skipped)} (rule {route.rule.name})")
    lines.append("  (the submitter approves nothing; one person approves at most one gate)")
    return "\n".join(lines)


def raci_table(matrix: Matrix, team: str, sales_rep: str) -> Table:
    """The deal's stages with the people behind each RACI role, for one team."""

    def who(roles: list[str]) -> str:
        names = []
        for role in roles:
            if role == "sales_rep":
                names.append(f"{sales_rep} (sales rep)")
            else:
                people = matrix.people_for(role, team) or []
                names += [f"{p.name} ({matrix.role_title(role).lower()})" for p in people]
        return ", ".join(dict.fromkeys(names)) or "-"

    return Table(
        "Who is responsible, accountable, consulted and informed",
        ["stage", "responsible", "accountable", "consulted", "informed", "time limit"],
        [
            [
                stage.title,
                who(stage.responsible),
                who(stage.accountable),
                who(stage.consulted),
                who(stage.informed),
                stage.limit or "-",
            ]
            for stage in matrix.stages
        ],
    )

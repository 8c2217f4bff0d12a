"""The matrix in words: ``dealflow matrix show`` and ``dealflow matrix explain``."""

from __future__ import annotations

from models.deal import DealIntake
from models.matrix import Matrix, MatrixError


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
        lines.append(f"  {team_key} ({team.name}; {calendar})")
        for role in roles:
            people = ", ".join(f"{p.name} <{p.email}>" for p in matrix.people_for(role, team_key))
            lines.append(f"    {matrix.role_title(role):<{width}}  {people or '-- nobody --'}")
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
            ", ".join(f"{k}={v}" for k, v in rule.when.model_dump(exclude_none=True).items())
            if rule.when
            else "every other deal"
        )
        lines.append(f"  {number}. {rule.name}: {when} -> {' -> '.join(rule.gates)}")
        if rule.description:
            lines.append(f"     {rule.description}")
    return "\n".join(lines)


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
        fired, reason = rule.verdict(deal)
        if chosen is None and fired:
            chosen = rule
            lines.append(f"  {number}. {rule.name}: FIRES - {reason}")
        elif chosen is None:
            lines.append(f"  {number}. {rule.name}: no - {reason}")
        else:
            lines.append(f"  {number}. {rule.name}: not reached")
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


def raci_table(matrix: Matrix, team: str, sales_rep: str) -> list[dict[str, str]]:
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

    return [
        {
            "stage": stage.title,
            "responsible": who(stage.responsible),
            "accountable": who(stage.accountable),
            "consulted": who(stage.consulted),
            "informed": who(stage.informed),
            "time limit": stage.limit or "-",
        }
        for stage in matrix.stages
    ]

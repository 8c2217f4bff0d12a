"""The deal the load benchmarks submit many times over, and what they need to know of it.

Every deal of a run is a copy of one example under an id of its own, so that all take
the same route through the approval matrix and their figures compare. The benchmarks
also need the route's gates and approvers, the deployment the deals run as, and which
of a deal's emails is which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from bench.script import PROJECT_ROOT

DEFAULT_EXAMPLE = "examples/initech.json"
SMALL_SEATS = 20  # 20 x 420.00 = 8,400.00: below the matrix's small-standard limit of 10,000


def load_example(example: str | None) -> tuple[dict[str, Any], str]:
    """The deal every submission copies, and how the report names it.

    Without ``--example``: examples/initech.json with 20 seats instead of 25 (8,400.00
    USD), since no example deal is small enough for the matrix's small-standard rule,
    the route with the manager's gate only."""
    path = PROJECT_ROOT / (example or DEFAULT_EXAMPLE)
    import yaml

    data: dict[str, Any] = yaml.safe_load(path.read_text())  # JSON is YAML too
    if example is not None:
        return data, str(path.relative_to(PROJECT_ROOT))
    item = data["line_items"][0]
    item["quantity"] = SMALL_SEATS
    data["amount"] = f"{SMALL_SEATS * float(item['unit_price']):.2f}"
    return data, f"{DEFAULT_EXAMPLE} with {SMALL_SEATS} seats ({data['amount']} {data['currency']})"


@dataclass(frozen=True)
class RouteInfo:
    rule: str
    gates: list[str]
    approvers: list[str]


def route_of(deal: dict[str, Any], source: str) -> RouteInfo:
    """The gates the matrix gives the deal, as ``dealflow matrix explain`` shows them."""
    from dealflow.intake.submit import parse_deal
    from models.matrix import load_matrix
    from models.settings import get_settings

    route = load_matrix(get_settings().matrix_path).route(parse_deal(deal, source))
    return RouteInfo(
        rule=route.rule.name,
        gates=[gate.name for gate, _person in route.steps],
        approvers=[person.email for _gate, person in route.steps],
    )


def fresh_copies(template: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` copies of the deal, each under an id of its own."""
    run = uuid.uuid4().hex[:6].upper()
    return [{**template, "deal_id": f"L{run}-{number:05d}"} for number in range(count)]


def email_kind(subject: str) -> str | None:
    """What a deal's email is to this benchmark, from its subject (tasks/*.py)."""
    if subject.startswith("Approval needed:"):
        return "approval request"
    if subject.startswith("Record the signed contract:"):
        return "signing request"
    if subject.startswith("Delivery kickoff:"):
        return "kickoff"
    if subject.startswith("Record acceptance when delivered:"):
        return "acceptance request"
    return None


def deal_deployment_name() -> str:
    from models.settings import get_settings

    return get_settings().deployment.split("/")[-1]


def deal_deployment_id() -> uuid.UUID:
    from prefect.client.orchestration import get_client

    from models.settings import get_settings

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(get_settings().deployment).id

"""Submitting a won deal: validate it, store it once, start its one flow run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.echo import echo
from dealflow.infra.records import add_transition
from models import keys
from models.deal import DealIntake
from models.matrix import Matrix, MatrixError, load_matrix
from models.settings import Settings, get_settings
from models.tables import Deal


class IntakeError(ValueError):
    """The deal cannot be accepted; ``problems`` lists each reason with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DealConflict(IntakeError):
    pass


class OrchestratorUnavailable(RuntimeError):
    pass


FieldName = Callable[[tuple[int | str, ...]], str]


def dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(deal)"


def describe_errors(exc: ValidationError, source: str, field_name: FieldName = dotted) -> list[str]:
    """One line per problem; ``field_name`` names a field's place as the source shows it."""
    problems = []
    for error in exc.errors():
        where = field_name(tuple(error["loc"]))
        got = error.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {echo(got)})"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{source}: {where}: {message}{shown}")
    return problems


def staffing_problem(matrix: Matrix, deal: DealIntake) -> str | None:
    """Why the matrix cannot staff this deal's approval route, or None."""
    try:
        matrix.route(deal)
    except MatrixError as exc:
        return f"team: {exc}"
    return None


def parse_deal(
    data: Any, source: str, matrix: Matrix | None = None, field_name: FieldName = dotted
) -> DealIntake:
    """The validated deal; with ``matrix``, also whether its approvals can be staffed.
    Every problem is reported at once, each with its field."""
    try:
        intake = DealIntake.model_validate(data)
    except ValidationError as exc:
        problems = describe_errors(exc, source, field_name)
        team = data.get("team") if isinstance(data, dict) else None
        if matrix is not None and isinstance(team, str):
            try:
                matrix.check_team(team)
            except MatrixError as team_error:
                problems.append(f"{source}: {field_name(('team',))}: {team_error}")
        raise IntakeError(problems) from exc
    staffing = staffing_problem(matrix, intake) if matrix is not None else None
    if staffing:
        raise IntakeError([f"{source}: {field_name(('team',))}: {staffing.removeprefix('team: ')}"])
    return intake


def load_deal_file(path: Path, matrix: Matrix | None = None) -> DealIntake:
    """Read a deal from a JSON or YAML file, with errors that name the file and the field;
    with ``matrix``, also whether its approvals can be staffed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IntakeError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise IntakeError([f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"]) from exc
    except yaml.YAMLError as exc:
        raise IntakeError([f"{path}: not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise IntakeError([f"{path}: expected one deal (an object), got {type(data).__name__}"])
    return parse_deal(data, str(path), matrix)


def payload_hash(intake: DealIntake) -> str:
    canonical = json.dumps(intake.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    deal_id: str
    flow_run_id: str
    flow_run_url: str
    new_deal: bool


def store_deal(intake: DealIntake, submitted_via: str = "") -> bool:
    """Store the deal once; True if it is new. The same deal again is fine, a changed one is not.
    ``submitted_via`` (e.g. the API client) goes on the deal's timeline."""
    digest = payload_hash(intake)
    try:
        return _store_once(intake, digest, submitted_via)
    except IntegrityError:
        # submitted twice at once: the other one won
        return _store_once(intake, digest, submitted_via)


def _store_once(intake: DealIntake, digest: str, submitted_via: str) -> bool:
    with session_scope() as session:
        existing = session.get(Deal, intake.deal_id)
        if existing is not None:
            if existing.payload_hash != digest:
                raise DealConflict(
                    [
                        f"deal {intake.deal_id} was already submitted with different content "
                        f"on {existing.created_at:%Y-%m-%d %H:%M} UTC; a submitted deal cannot be "
                        "changed: reject it and submit it under a new id"
                    ]
                )
            return False
        now = utcnow()
        deal = Deal(
            id=intake.deal_id,
            title=intake.title,
            team=intake.team,
            customer_name=intake.customer.name,
            amount=intake.amount,
            currency=intake.currency,
            sales_rep_email=intake.sales_rep.email,
            sales_rep_name=intake.sales_rep.name,
            payload=intake.model_dump(mode="json"),
            payload_hash=digest,
            stage="submitted",
            created_at=now,
            updated_at=now,
        )
        session.add(deal)
        add_transition(
            session,
            deal,
            key=keys.SUBMITTED,
            stage="submitted",
            event=f"Won deal submitted: {intake.amount} {intake.currency} for {intake.customer.name}"
            + (f" (via {submitted_via})" if submitted_via else ""),
            actor=intake.sales_rep.email,
            at=now,
        )
    return True


@contextmanager
def _orchestrator_errors(settings: Settings, *, deal_saved: bool) -> Iterator[None]:
    import httpx
    from prefect.exceptions import ObjectNotFound

    try:
        yield
    except ObjectNotFound as exc:
        raise OrchestratorUnavailable(
            f"deployment {settings.deployment!r} is not on the Prefect server at "
            f"{settings.prefect_api_url}: is the stack running (make demo)?"
        ) from exc
    except httpx.HTTPError as exc:
        raise OrchestratorUnavailable(
            f"cannot reach the Prefect server at {settings.prefect_api_url} ({exc}); "
            + (
                "the deal is saved: submit it again once Prefect is up"
                if deal_saved
                else "nothing was stored: submit it again once Prefect is up"
            )
        ) from exc


def check_orchestrator(settings: Settings) -> None:
    """Raise OrchestratorUnavailable unless Prefect answers and knows the deal deployment:
    asked before storing anything, so that an unreachable Prefect leaves nothing half-done."""
    from prefect.client.orchestration import get_client

    with _orchestrator_errors(settings, deal_saved=False), get_client(sync_client=True) as client:
        client.read_deployment_by_name(settings.deployment)


def start_run(intake: DealIntake, settings: Settings) -> str:
    """The deal's flow run id; Prefect returns the existing run for a deal started before."""
    from prefect.client.orchestration import get_client

    with _orchestrator_errors(settings, deal_saved=True), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(settings.deployment)
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"deal_id": intake.deal_id},
            name=f"deal-{intake.deal_id}",
            tags=["dealflow", f"team:{intake.team}"],
            idempotency_key=keys.flow_run_idempotency(intake.deal_id),
        )
    return str(run.id)


def submit(
    intake: DealIntake, settings: Settings | None = None, submitted_via: str = ""
) -> Submission:
    settings = settings or get_settings()
    staffing = staffing_problem(load_matrix(settings.matrix_path), intake)
    if staffing:
        raise IntakeError([staffing])
    check_orchestrator(settings)
    new_deal = store_deal(intake, submitted_via)
    run_id = start_run(intake, settings)
    with session_scope() as session:
        deal = session.get(Deal, intake.deal_id)
        assert deal is not None
        deal.flow_run_id = run_id
    return Submission(
        deal_id=intake.deal_id,
        flow_run_id=run_id,
        flow_run_url=f"{settings.prefect_ui_url}/runs/flow-run/{run_id}",
        new_deal=new_deal,
    )

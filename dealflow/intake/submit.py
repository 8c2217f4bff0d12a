"""Submitting a won deal: validate it, store it once, start its one flow run."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.echo import echo
from dealflow.infra.prefect_api import cancel_run, prefect_client
from dealflow.infra.records import add_transition, earlier_revisions, stored_intake, wait_on
from models import keys
from models.deal import DealIntake
from models.matrix import Matrix, MatrixError, UnroutableCurrency, load_matrix
from models.revisions import changed_fields, superseded_message
from models.settings import Settings, get_settings
from models.tables import Deal, DealOutcome, DealRevision

log = logging.getLogger(__name__)


class IntakeError(ValueError):
    """The deal cannot be accepted; ``problems`` lists each reason with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DealConflict(IntakeError):
    pass


class RevisionRefused(DealConflict):
    """A revision cannot be submitted: the deal is not rejected, or nothing changed."""


class UnknownDeal(IntakeError):
    """A revision of a deal that was never submitted."""


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
    except UnroutableCurrency as exc:
        return f"currency: {exc}"
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
    """What tells a retry (the same content) from a different deal under the same id.

    Fields added since deals were first stored leave the hash alone while unset, so a
    deal sent again after an upgrade is still the same deal."""
    content = intake.model_dump(mode="json")
    for added_since in ("language",):
        if content["customer"].get(added_since) is None:
            content["customer"].pop(added_since, None)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    deal_id: str
    flow_run_id: str
    flow_run_url: str
    new_deal: bool  # the deal (or, for a revision, the revision) is new
    revision: int = 1


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
                        "changed: once it is rejected, submit the changed deal as its next "
                        "revision (dealflow deal resubmit)"
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
    with _orchestrator_errors(settings, deal_saved=False), prefect_client() as client:
        client.read_deployment_by_name(settings.deployment)


def start_run(intake: DealIntake, settings: Settings, revision: int = 1) -> str:
    """The flow run id of the deal's ``revision``; Prefect returns the existing run for a
    revision started before. Revision 1's run is started as before revisions existed
    (its one parameter, its name), so that a deployment not yet updated still takes it."""
    parameters: dict[str, Any] = {"deal_id": intake.deal_id}
    if revision > 1:
        parameters["revision"] = revision
    with _orchestrator_errors(settings, deal_saved=True), prefect_client() as client:
        deployment = client.read_deployment_by_name(settings.deployment)
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters=parameters,
            name=keys.deal_run_name(intake.deal_id, revision),
            tags=["dealflow", f"team:{intake.team}"]
            + ([f"revision:{revision}"] if revision > 1 else []),
            idempotency_key=keys.flow_run_idempotency(intake.deal_id, revision),
        )
    return str(run.id)


def _current_revision(deal_id: str) -> int:
    with session_scope() as session:
        deal = session.get(Deal, deal_id)
        return deal.revision if deal is not None else 1


def _run_started(deal_id: str, revision: int, run_id: str) -> None:
    """Note the run on the deal, unless a later revision replaced it meanwhile."""
    with session_scope() as session:
        deal = session.get(Deal, deal_id)
        assert deal is not None
        if deal.revision == revision:
            deal.flow_run_id = run_id


def submit(
    intake: DealIntake, settings: Settings | None = None, submitted_via: str = ""
) -> Submission:
    settings = settings or get_settings()
    staffing = staffing_problem(load_matrix(settings.matrix_path), intake)
    if staffing:
        raise IntakeError([staffing])
    check_orchestrator(settings)
    new_deal = store_deal(intake, submitted_via)
    # The same content as a revision submitted since: that revision's run.
    return _run_of(intake, settings, _current_revision(intake.deal_id), new_deal)


def _run_of(intake: DealIntake, settings: Settings, revision: int, new: bool) -> Submission:
    """The run of ``revision`` of the deal, started now or found started before."""
    run_id = start_run(intake, settings, revision)
    _run_started(intake.deal_id, revision, run_id)
    return Submission(
        deal_id=intake.deal_id,
        flow_run_id=run_id,
        flow_run_url=f"{settings.prefect_ui_url}/runs/flow-run/{run_id}",
        new_deal=new,
        revision=revision,
    )


def store_revision(intake: DealIntake, submitted_via: str = "") -> tuple[int, bool]:
    """Store ``intake`` as the next revision of its rejected deal: ``(revision, new)``.
    The revision the deal already is, sent again (a retry), is ``(revision, False)``.
    Refused (RevisionRefused) when the deal is not rejected or nothing changed, and
    (UnknownDeal) when there is no such deal."""
    digest = payload_hash(intake)
    try:
        return _store_revision_once(intake, digest, submitted_via)
    except IntegrityError:
        # the same revision submitted twice at once: the other one stored it
        return _store_revision_once(intake, digest, submitted_via)


def _store_revision_once(intake: DealIntake, digest: str, submitted_via: str) -> tuple[int, bool]:
    with session_scope() as session:
        deal = session.scalar(select(Deal).where(Deal.id == intake.deal_id).with_for_update())
        retry = _is_retry(deal, intake.deal_id, digest)
        assert deal is not None  # a missing deal was refused
        if retry:
            return deal.revision, False
        return _replace_revision(session, deal, intake, digest, submitted_via), True


def _is_retry(deal: Deal | None, deal_id: str, digest: str) -> bool:
    """True if content ``digest`` is the revision ``deal`` already is (a retry); False if
    it may be its next revision; raises UnknownDeal or RevisionRefused otherwise."""
    if deal is None:
        raise UnknownDeal(
            [f"there is no deal {deal_id} to revise: submit it first (dealflow deal submit)"]
        )
    rejected = deal.outcome == DealOutcome.REJECTED
    if deal.payload_hash == digest:
        if rejected:
            raise RevisionRefused(
                [
                    f"deal {deal_id} is unchanged since revision {deal.revision}, which was "
                    "rejected: change what the approvers asked for, then submit it again"
                ]
            )
        if deal.revision > 1:
            return True
    if not rejected:
        where = (deal.outcome or deal.stage).replace("_", " ")
        raise RevisionRefused(
            [
                f"deal {deal_id} is not rejected (it is {where}, revision {deal.revision}): "
                "only a rejected deal can be revised and submitted again"
            ]
        )
    return False


def check_revision(intake: DealIntake) -> None:
    """Raise UnknownDeal or RevisionRefused if ``intake`` cannot be its deal's next
    revision (nor a retry of it): asked before Prefect is, so a refusal needs no server."""
    with session_scope() as session:
        _is_retry(session.get(Deal, intake.deal_id), intake.deal_id, payload_hash(intake))


def _replace_revision(
    session: Session, deal: Deal, intake: DealIntake, digest: str, submitted_via: str
) -> int:
    """Keep the rejected revision in ``deal_revisions``; make ``intake`` the deal's next
    revision, back at the start of its way (its route is planned again by its run)."""
    now = utcnow()
    earlier = stored_intake(deal.payload)
    submitted_at = (
        deal.created_at
        if deal.revision == 1
        else session.scalar(
            select(DealRevision.replaced_at).where(
                DealRevision.deal_id == deal.id, DealRevision.revision == deal.revision - 1
            )
        )
        or deal.created_at
    )
    session.add(
        DealRevision(
            deal_id=deal.id,
            revision=deal.revision,
            payload=deal.payload,
            payload_hash=deal.payload_hash,
            amount=deal.amount,
            currency=deal.currency,
            flow_run_id=deal.flow_run_id,
            outcome=deal.outcome,
            outcome_reason=deal.outcome_reason,
            submitted_at=submitted_at,
            replaced_at=now,
        )
    )
    session.flush()  # a second writer of the same revision fails here (unique)
    revision = deal.revision + 1
    changes = changed_fields(earlier, intake)
    deal.revision = revision
    deal.title = intake.title
    deal.team = intake.team
    deal.customer_name = intake.customer.name
    deal.amount = intake.amount
    deal.currency = intake.currency
    deal.sales_rep_email = intake.sales_rep.email
    deal.sales_rep_name = intake.sales_rep.name
    deal.payload = intake.model_dump(mode="json")
    deal.payload_hash = digest
    deal.outcome = None
    deal.outcome_reason = None
    deal.flow_run_id = None
    deal.matrix_version = None
    wait_on(deal, None, None, None)
    add_transition(
        session,
        deal,
        key=keys.revision_submitted(revision),
        stage="submitted",
        event=f"Revision {revision} submitted after revision {revision - 1} was rejected: "
        f"{intake.amount} {intake.currency}; changed "
        + "; ".join(changes)
        + (f" (via {submitted_via})" if submitted_via else ""),
        actor=intake.sales_rep.email,
        at=now,
    )
    return revision


def resubmit(
    intake: DealIntake, settings: Settings | None = None, submitted_via: str = ""
) -> Submission:
    """Submit a rejected deal again, changed, as its next revision with a run of its own.
    The same revision sent twice starts one run."""
    settings = settings or get_settings()
    staffing = staffing_problem(load_matrix(settings.matrix_path), intake)
    if staffing:
        raise IntakeError([staffing])
    check_revision(intake)
    check_orchestrator(settings)
    revision, new = store_revision(intake, submitted_via)
    stop_replaced_runs(intake.deal_id)  # on a retry too: the first may not have reached Prefect
    return _run_of(intake, settings, revision, new)


def stop_replaced_runs(deal_id: str) -> list[str]:
    """Cancel in Prefect the runs of the deal's earlier revisions that have not ended (a
    run that crashed after its rejection was recorded, say), so that the Prefect UI shows
    them ended and no sweep starts them again; what became of each, one line per run.

    Never raises for Prefect: the revision is stored by then, and a replaced run that
    is started again ends by itself without acting (the deal-handoff flow checks which
    revision it carries), so a run left uncancelled here costs nothing but its look."""
    import httpx
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    with session_scope() as session:
        deal = session.get(Deal, deal_id)
        current = deal.revision if deal is not None else 1
        runs = [
            (row.revision, row.flow_run_id)
            for row in earlier_revisions(session, deal_id)
            if row.flow_run_id is not None
        ]
    said = []
    for revision, run_id in runs:
        try:
            state = cancel_run(run_id, superseded_message(deal_id, revision, current)).lower()
        except ObjectNotFound:
            state = "gone from Prefect"
        except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
            log.warning(
                "deal %s: revision %s's run %s was not cancelled (%s); if it is started "
                "again it ends without acting",
                deal_id,
                revision,
                run_id,
                f"{type(exc).__name__}: {exc}".splitlines()[0],
            )
            state = "not reached"
        said.append(f"revision {revision}'s run {run_id}: {state}")
    return said

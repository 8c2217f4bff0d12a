"""A sales rep reports a stage before the contract as done: ``dealflow deal report``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.answers.waiting_run import Earlier, Outcome, Patience, answer_waiting_run
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import get_deal, intake_of
from models import keys
from models.deal import EARLY_STAGES
from models.matrix import load_matrix
from models.settings import get_settings
from models.stage_report import StageReport
from models.tables import Deal, StageTransition


class ReportError(ValueError):
    pass


REQUIRED = {
    "lead_screening": ("score", "--score"),
    "needs_discovery": ("visit_date", "--visit-date"),
}


def _reported(session: Session, deal_id: str, stage: str) -> StageTransition | None:
    return session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal_id, StageTransition.key == keys.stage_reported(stage)
        )
    )


def _stage_to_report(session: Session, deal: Deal) -> str | None:
    """The stage the deal is at before the contract: the first of those it was submitted
    before whose report is not in (the flow waits at them in order); None past them."""
    if deal.outcome in {"lost", "rejected"}:
        return None
    submitted_at = intake_of(deal).stage
    if submitted_at not in EARLY_STAGES:
        return None
    for stage in EARLY_STAGES[EARLY_STAGES.index(submitted_at) :]:
        if _reported(session, deal.id, stage.value) is None:
            return stage.value
    return None


def report_stage(
    deal_id: str,
    *,
    score: int | None = None,
    visit_date: dt.date | None = None,
    note: str = "",
    lost: bool = False,
    reported_by: str | None = None,
    patience: Patience | None = None,
) -> Outcome:
    """Resume the deal's run, waiting at a stage, with the rep's report of it; on RESUMED
    the outcome's answer is the StageReport. The flow records it on the timeline: the
    answer is its own record until then. ReportError if the report cannot be right."""
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        stage = _stage_to_report(session, deal)
        stage_now, rep, team = deal.stage, deal.sales_rep_email, deal.team
    if stage is None:
        raise ReportError(
            f"deal {deal_id} is not waiting for a stage report (it is at {stage_now})"
        )
    field, option = REQUIRED.get(stage, ("", ""))
    given = {"score": score, "visit_date": visit_date}
    if field and not lost and given[field] is None:
        raise ReportError(f"{stage}: give {option} (or --lost if the deal is lost)")
    now = utcnow()
    today = now.astimezone(load_matrix(get_settings().matrix_path).calendar(team).zone).date()
    if visit_date is not None and visit_date > today:
        raise ReportError(f"--visit-date {visit_date} is in the future")
    report = StageReport(
        stage=stage,
        reported_by=reported_by or rep,
        reported_at=now,
        note=note,
        score=score,
        visit_date=visit_date,
        lost=lost,
    )

    def earlier(session: Session, deal: Deal) -> Earlier | None:
        entry = _reported(session, deal.id, stage)
        return Earlier(entry.actor, entry.at, stage) if entry is not None else None

    return answer_waiting_run(
        deal_id,
        keys.stage_wait(stage),
        record=lambda _session, _deal: report,
        earlier=earlier,
        patience=patience,
    )

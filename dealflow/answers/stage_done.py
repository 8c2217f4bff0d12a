"""A sales rep reports a stage before the contract as done: ``dealflow deal report``."""

from __future__ import annotations

import datetime as dt

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.prefect_api import pause_state, resume_with_answer
from dealflow.infra.records import get_deal
from models import keys
from models.deal import EARLY_STAGES
from models.keys import base_key, stage_wait
from models.matrix import load_matrix
from models.settings import get_settings
from models.stage_report import StageReport


class ReportError(ValueError):
    pass


REQUIRED = {
    "lead_screening": ("score", "--score"),
    "needs_discovery": ("visit_date", "--visit-date"),
}


def report_stage(
    deal_id: str,
    *,
    score: int | None = None,
    visit_date: dt.date | None = None,
    note: str = "",
    lost: bool = False,
    reported_by: str | None = None,
) -> StageReport:
    """Resume the deal's run, waiting at a stage, with the rep's report of it."""
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        run_id, stage_now, rep, team = (
            deal.flow_run_id,
            deal.stage,
            deal.sales_rep_email,
            deal.team,
        )
    if run_id is None:
        raise ReportError(f"deal {deal_id} has no flow run yet: submit it again")
    state, key = pause_state(run_id)
    if state != "PAUSED" or not key or not keys.is_stage_wait(key):
        raise ReportError(
            f"deal {deal_id} is not waiting for a stage report (it is at {stage_now})"
        )
    step = base_key(key)
    stage = next((s.value for s in EARLY_STAGES if stage_wait(s.value) == step), step)
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
    resume_with_answer(run_id, step, report)
    return report
